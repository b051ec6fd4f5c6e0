"""Immediate mode (``QTASKS["IMMEDIATE"]``): tasks run in the process that enqueues them.

Meant for tests. A task enqueued in immediate mode runs before ``add_task``
returns or, inside ``transaction.atomic()``, when that transaction commits.
It runs in the caller's thread, on its database connection, so that it sees
a test's uncommitted data (``TestCase``). Its row goes through the states a
worker gives it: claimed (``process``, its attempt counted), run by the
worker's executor (middlewares, ``self.ctx``, logs, ``max_time``, decode),
its outcome written by the worker's result writer. A retry runs again at
once, without backoff; a chain's next step runs once its step succeeded.
No broker is used. ``run_pending`` runs what waits, with or without it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

from asgiref.sync import async_to_sync, sync_to_async
from django.db import transaction
from django.utils import timezone

from django_qtasks.conf import qtasks_settings
from django_qtasks.context import RunState
from django_qtasks.models import Task, TaskStatus, task_db, task_store
from django_qtasks.notify import Notifier
from django_qtasks.registry import default_app
from django_qtasks.worker.executor import Outcome, TaskExecutor, executor_for
from django_qtasks.worker.writer import Ending, ResultWriter, log_outcome

logger = logging.getLogger("django_qtasks.immediate")

#: The ``worker`` of the rows run here: the caller's process.
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:immediate"

#: Statuses of a row that waits to run.
WAITING = (TaskStatus.NEW, TaskStatus.RETRY)


def run_delivered(records: list[Task], using: str) -> None:
    """Run new rows now, or when the caller's transaction commits (from ``app.deliver``).

    A test case's own transaction does not count: in a ``TestCase`` a task
    enqueued outside ``transaction.atomic()`` runs at once. One enqueued
    inside runs at that block's commit, which a ``TestCase`` never makes:
    it waits for ``run_pending()`` (or ``captureOnCommitCallbacks``).
    """
    if in_callers_transaction(using):
        transaction.on_commit(lambda: run_records(records), using=using)
    else:
        run_records(records)


def in_callers_transaction(using: str) -> bool:
    """Whether an atomic block other than a test case's own is open on ``using``."""
    connection = transaction.get_connection(using)
    return any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


def run_records(records: list[Task]) -> None:
    """Run these rows, and refresh each from the database once it ended."""
    for record in records:
        run_task(record.pk)
        record.refresh_from_db(using=task_db())


def run_pending(
    queues: Iterable[str] | None = None, *, include_delayed: bool = False
) -> list[Task]:
    """Run every task that waits, in this process, until none is left; the rows run.

    Tasks enqueued by those it runs are run too. ``queues`` limits it to
    those queues; ``include_delayed`` also runs tasks whose ``delay``/``eta``
    has not come, as if it had (their ``run_after`` becomes now). The rows
    are returned in the order they were run, refreshed.
    """
    queues = list(queues) if queues is not None else None
    ran: dict[UUID, None] = {}
    while True:
        rows = Task.objects.using(task_db()).filter(status__in=WAITING)
        if queues is not None:
            rows = rows.filter(queue__in=queues)
        if not include_delayed:
            rows = rows.exclude(run_after__gt=timezone.now())
        pks = list(rows.order_by("priority", "created_at").values_list("pk", flat=True)[:1])
        if not pks:
            break
        if include_delayed:
            Task.objects.using(task_db()).filter(pk=pks[0], run_after__gt=timezone.now()).update(
                run_after=timezone.now()
            )
        ran.update(dict.fromkeys(run_task(pks[0])))
        if pks[0] not in ran:
            # Waiting, yet it could not be claimed: leave it rather than loop.
            break
    by_pk = Task.objects.using(task_db()).in_bulk(list(ran))
    return [by_pk[pk] for pk in ran if pk in by_pk]


def run_task(pk: UUID) -> list[UUID]:
    """Run the row ``pk`` if it waits and is due: every attempt, then a chain's next step.

    Returns the keys of the rows run (none when it was not waiting).
    """
    store = task_store()
    ran: list[UUID] = []
    while True:
        claimed = store.claim_by_id([pk], WORKER_ID)
        if not claimed:
            return ran
        record = claimed[0]
        if pk not in ran:
            ran.append(pk)
        outcome = run_claimed(record)
        if outcome.status == TaskStatus.RETRY:
            continue
        if outcome.status == TaskStatus.SUCCESS and record.chain_steps:
            following = Task.objects.using(task_db()).filter(chain_previous=record.pk)
            for step in following.values_list("pk", flat=True):
                ran += run_task(step)
        return ran


def run_claimed(record: Task) -> Outcome:
    """Run one attempt of a claimed row and write how it ended."""
    started = time.monotonic()
    run = RunState(record.uuid, log_limit=qtasks_settings.LOG_LINES, attempt=record.attempts)
    if record.cancel_requested_at is not None:
        run.request_cancel(record.cancel_reason)
    prepared = prepare(record, run)
    if isinstance(prepared, TaskExecutor):
        return async_to_sync(run_and_write)(prepared, record, run, started)
    write_outcome(record, prepared, run, started)
    return prepared


async def run_and_write(
    executor: TaskExecutor, record: Task, run: RunState, started: float
) -> Outcome:
    """The executor's run, its outcome written in the caller's thread, and its hook."""
    outcome = await executor.execute()
    await sync_to_async(write_outcome, thread_sensitive=True)(record, outcome, run, started)
    await executor.outcome_saved(outcome)
    await executor.send_ended(outcome)
    return outcome


def write_outcome(record: Task, outcome: Outcome, run: RunState, started: float) -> None:
    if outcome.status == TaskStatus.RETRY:
        outcome.run_after = timezone.now()  # no backoff: the next attempt runs now
    ending = Ending(record, outcome, run.stored_log(), timezone.now())
    ResultWriter(WORKER_ID, Notifier()).write_alone(ending)
    log_outcome(record, outcome, time.monotonic() - started)


def prepare(record: Task, run: RunState) -> TaskExecutor | Outcome:
    """The executor of this run, or the error outcome that says why there is none."""
    try:
        handle = default_app().handle_for(record)
    except Exception:  # a django.tasks row whose function cannot be loaded
        return Outcome(TaskStatus.ERROR, traceback=traceback.format_exc())
    if handle is None:
        return Outcome(
            TaskStatus.ERROR,
            traceback=f"No task named {record.task_name!r} is registered in this process "
            "(immediate mode); is its module an installed app's tasks.py?",
        )
    try:
        executor = executor_for(handle, record, run, in_callers_thread)
    except Exception:  # a custom executor that cannot be built
        return Outcome(TaskStatus.ERROR, traceback=traceback.format_exc())
    executor.closes_connections = False
    return executor


def in_callers_thread(function: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """The executor's ``run_in_thread``: a sync task runs in the thread that enqueued it.

    ``async_to_sync`` runs the executor's loop in a thread of its own and
    lets the caller's thread serve thread-sensitive calls: the task's, and
    the ORM calls of async tasks.
    """
    return asyncio.ensure_future(sync_to_async(function, thread_sensitive=True)(*args))
