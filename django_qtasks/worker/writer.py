"""The result writer: how the worker's runs ended, written to their rows.

Runs hand their outcome over as an ``Ending`` and await its ``saved`` future;
the worker's database thread writes every ending waiting in as few statements
as they allow (``write``), or hands them to its next claim to carry on
PostgreSQL (``carried``). Every write is guarded by ``still_mine``: a row
failed over meanwhile is not overwritten. When the database refuses one
row's values, the others are written and that row ends in error, saying why.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import DataError, IntegrityError, connections, transaction

from django_qtasks.chains import next_step
from django_qtasks.conf import qtasks_settings
from django_qtasks.models import Task, TaskStatus, task_store
from django_qtasks.notify import Notifier
from django_qtasks.store import Carried, attempt_entry, still_mine
from django_qtasks.worker.executor import Outcome

logger = logging.getLogger("django_qtasks.worker")


@dataclass
class Ending:
    """A run's outcome on its way to the database."""

    record: Task
    outcome: Outcome
    #: The run's own log lines, kept with the row after those of earlier attempts.
    log_lines: list[dict[str, Any]]
    ended_at: datetime
    #: Resolved once written (or found no longer this worker's); an exception: try
    #: again. None when the caller writes it itself (immediate mode).
    saved: asyncio.Future[None] | None = None

    @property
    def starts_next_step(self) -> bool:
        """A chain's step that succeeded: its next step is written with its result."""
        return self.outcome.status == TaskStatus.SUCCESS and bool(self.record.chain_steps)


def refused_values(exc: Exception) -> bool:
    """Whether ``exc`` says the database refused the values written, not that it failed.

    A driver refuses text it cannot encode (ValueError, TypeError); the
    database a value it cannot store (DataError; a failed JSON check is an
    IntegrityError on MariaDB). A lost connection or a timeout is none of these.
    """
    return isinstance(exc, (DataError, IntegrityError, ValueError, TypeError))


def settle(endings: list[Ending], error: Exception | None) -> None:
    """From the database thread: resolve the endings' futures (of one loop) in one call to it."""
    futures = [ending.saved for ending in endings if ending.saved is not None]
    if not futures:
        return

    def resolve() -> None:
        for future in futures:
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    futures[0].get_loop().call_soon_threadsafe(resolve)


def log_outcome(record: Task, outcome: Outcome, took: float) -> None:
    """The log line of a run whose outcome was written."""
    log_extra = {"task_uuid": str(record.uuid), "task_name": record.task_name}
    if outcome.status == TaskStatus.CANCEL:
        logger.info(
            "Task %s was canceled due to: %s",
            record.uuid,
            outcome.cancel_reason,
            extra=log_extra,
        )
    elif outcome.status == TaskStatus.RETRY:
        logger.warning(
            "Task %s (%s) failed (%s) and will be retried at %s",
            record.uuid,
            record.task_name,
            outcome.summary,
            outcome.run_after,
            extra=log_extra,
        )
    elif outcome.status == TaskStatus.ERROR:
        logger.error(
            "Task %s (%s) failed after %.3fs: %s",
            record.uuid,
            record.task_name,
            took,
            outcome.summary,
            extra=log_extra,
        )
    else:
        logger.info(
            "Task %s (%s) ended with status %s in %.3fs",
            record.uuid,
            record.task_name,
            outcome.status,
            took,
            extra=log_extra,
        )


class ResultWriter:
    """The endings of one worker's runs: waiting ones (any thread), and their writes (one)."""

    def __init__(self, worker_id: str, notifier: Notifier) -> None:
        self.worker_id = worker_id
        self.notifier = notifier
        self._waiting: list[Ending] = []
        self._lock = threading.Lock()

    def add(self, ending: Ending) -> None:
        with self._lock:
            self._waiting.append(ending)

    def has_waiting(self) -> bool:
        with self._lock:
            return bool(self._waiting)

    def take(self) -> list[Ending]:
        with self._lock:
            endings, self._waiting = self._waiting, []
        return endings

    def write_waiting(self) -> None:
        """Write every ending waiting, in as few statements as they allow."""
        self.write(self.take())

    def write(self, endings: list[Ending]) -> None:
        """Store these outcomes; a failure goes back to each run (its ``saved`` raises)."""
        if not endings:
            return
        try:
            saved = self.finish(endings)
        except Exception as exc:
            connections.close_all()
            if not refused_values(exc):
                settle(endings, exc)
                return
            # One row's values were refused: each goes alone, so that only
            # that row is affected.
            saved = set()
            for ending in endings:
                try:
                    saved |= self.write_alone(ending)
                except Exception as error:
                    connections.close_all()
                    settle([ending], error)
        self.written(endings, saved)

    def write_alone(self, ending: Ending) -> set[uuid.UUID]:
        """Store one outcome; if the database refuses its values, store an error instead.

        The error says why, and is final: writing the same values again
        would fail again, and running the task again would give them again.
        """
        try:
            return self.finish([ending])
        except Exception as exc:
            if not refused_values(exc):
                raise
            connections.close_all()
            logger.exception(
                "Task %s: the database refused its outcome (%s); it ends in error",
                ending.record.uuid,
                ending.outcome.status,
            )
            # The run's own outcome object, so that the run reports what was stored.
            ending.outcome.unwritable(f"{type(exc).__name__}: {exc}")
            return self.finish([ending])

    def written(self, endings: list[Ending], saved: set[uuid.UUID]) -> None:
        """These endings were written, but for rows not in ``saved`` (no longer this worker's)."""
        for ending in endings:
            record = ending.record
            if record.pk not in saved:
                logger.error(
                    "Task %s: its outcome (%s) was not stored: its row is no longer this "
                    "worker's (it was taken over or deleted while the task ran).",
                    record.uuid,
                    ending.outcome.status,
                    extra={"task_uuid": str(record.uuid), "task_name": record.task_name},
                )
            elif ending.outcome.status != TaskStatus.RETRY:
                self.notifier.task_ended(record.pk)
        settle(endings, None)

    def finish(self, endings: list[Ending]) -> set[uuid.UUID]:
        """Store outcomes; the keys of the rows written (a row failed over is no longer ours)."""
        mine = still_mine(self.worker_id)
        store = task_store()
        saved: set[uuid.UUID] = set()
        changes = []
        for ending in endings:
            record, outcome = ending.record, ending.outcome
            fields = self.fields(ending)
            if ending.starts_next_step:
                # The next step is written with this result, or not at all.
                with transaction.atomic(using=store.using):
                    if store.update(record.pk, mine, fields):
                        saved.add(record.pk)
                        record.returning = outcome.returning
                        next_step(record)
            else:
                changes.append((record.pk, fields))
        return saved | store.update_many(mine, changes)

    def carried(self, endings: list[Ending]) -> Carried | None:
        """The outcomes as one statement for a claim to carry, if they fit in one (``finish``)."""
        store = task_store()
        # First: on other databases every claim asks, and the changes would go unused.
        if not store.carries_writes:
            return None
        if not endings or any(ending.starts_next_step for ending in endings):
            return None
        changes = [(ending.record.pk, self.fields(ending)) for ending in endings]
        return store.update_statement(still_mine(self.worker_id), changes)

    def fields(self, ending: Ending) -> dict[str, Any]:
        """The columns that record how this run ended."""
        record, outcome, now = ending.record, ending.outcome, ending.ended_at
        error = outcome.summary if outcome.status != TaskStatus.SUCCESS else ""
        attempt = attempt_entry(record, outcome.status, error, now)
        limit = qtasks_settings.LOG_LINES
        fields: dict[str, Any] = {
            "status": outcome.status,
            "returning": outcome.returning,
            "traceback": outcome.traceback,
            "logs": [*record.logs, *ending.log_lines][-limit:],
            "attempt_log": [*record.attempt_log, attempt],
            "started_at": record.started_at,
            "updated_at": now,
            "finished_at": now,
        }
        if outcome.wall_time is not None and outcome.cpu_time is not None:
            # Rounded to the microsecond: what a clock of this kind can tell.
            wall, cpu = round(outcome.wall_time, 6), round(outcome.cpu_time, 6)
            attempt.update(run_time=wall, cpu_time=cpu)
            fields["run_time"] = round((record.run_time or 0.0) + wall, 6)
            fields["cpu_time"] = round((record.cpu_time or 0.0) + cpu, 6)
        if outcome.status == TaskStatus.RETRY:
            fields.update(finished_at=None, run_after=outcome.run_after, published_at=None)
        if outcome.status == TaskStatus.CANCEL:
            fields["cancel_reason"] = outcome.cancel_reason
        return fields
