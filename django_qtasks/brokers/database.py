"""``django://``: the queue is the Task table in the project's own database.

Workers claim due rows in priority order. On PostgreSQL one statement does it
(``UPDATE ... WHERE uuid IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING``),
so workers never wait on each other and a claim is one round trip; on MySQL
and MariaDB the rows are locked with ``SELECT ... FOR UPDATE SKIP LOCKED``
first; on SQLite, which has a single writer, the claiming ``UPDATE`` is
guarded by the status it leaves, so a row another worker took in between is
simply not ours.

Idle workers poll every ``POLL_INTERVAL``; on PostgreSQL with psycopg 3 they
also LISTEN for the NOTIFY that a trigger sends when a task becomes ready
(migration 0003), and wake at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from django.db import connections, transaction
from django.utils import timezone

from django_qtasks.brokers.base import Broker
from django_qtasks.models import READY_STATUSES, Task, TaskStatus, task_db
from django_qtasks.rows import WAITING, Carried, claim_returning, claim_values

logger = logging.getLogger("django_qtasks.broker")

#: The channel of migration 0003's trigger; its payload is the task's queue.
CHANNEL = "django_qtasks"


class DatabaseBroker(Broker):
    schemes = ("django",)

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._listener: Listener | None = None
        self._on_work: Callable[[], object] | None = None

    def publish(self, task: Task) -> None:
        # The committed row is the message: nothing to send.
        return None

    # Worker side --------------------------------------------------------------

    def start_consuming(
        self, queues: list[str], prefetch: int, on_work: Callable[[], object]
    ) -> None:
        self._on_work = on_work
        using = task_db()
        if connections[using].vendor != "postgresql":
            return
        from django.db.backends.postgresql.psycopg_any import (  # type: ignore[import-untyped]
            is_psycopg3,
        )

        if not is_psycopg3:
            logger.info("Polling %s: LISTEN/NOTIFY needs psycopg 3", self.safe_url)
            return
        self._listener = Listener(using, queues, on_work)
        self._listener.start()

    def stop_consuming(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None

    def close(self) -> None:
        self.stop_consuming()

    def claim(
        self, queues: list[str], limit: int, worker_id: str, carried: Carried | None = None
    ) -> list[Task]:
        using = task_db()
        now = timezone.now()
        if connections[using].vendor == "postgresql":
            return self.claim_returning(using, queues, limit, worker_id, now, carried)
        assert carried is None, "carried writes are PostgreSQL's"
        due = Task.objects.using(using).due(queues, now)
        claim = claim_values(worker_id, now)
        if connections[using].features.has_select_for_update_skip_locked:
            with transaction.atomic(using=using):
                rows = list(due.select_for_update(skip_locked=True)[:limit])
                if rows:
                    Task.objects.using(using).filter(pk__in=[row.pk for row in rows]).update(
                        **claim
                    )
        else:
            rows = list(due[:limit])
            if not rows:
                return []
            pks = [row.pk for row in rows]
            taken = (
                Task.objects.using(using)
                .filter(pk__in=pks, status__in=READY_STATUSES)
                .update(**claim)
            )
            if taken != len(rows):
                # Another worker claimed some of them first: keep only ours.
                mine = set(
                    Task.objects.using(using)
                    .filter(pk__in=pks, worker=worker_id, started_at=now)
                    .values_list("pk", flat=True)
                )
                rows = [row for row in rows if row.pk in mine]
                if self._on_work is not None:
                    self._on_work()  # more may be due: a short claim must not wait a poll
        for row in rows:
            row.status = TaskStatus.PROCESS
            row.worker = worker_id
            row.started_at = now
            row.finished_at = None
            row.attempts += 1
            row.updated_at = now
        return rows

    def claim_returning(
        self,
        using: str,
        queues: list[str],
        limit: int,
        worker_id: str,
        now: datetime,
        carried: Carried | None = None,
    ) -> list[Task]:
        """PostgreSQL: pick, lock and claim in one statement (one round trip)."""
        # Literal statuses and one queue by equality: the planner then walks
        # qtasks_waiting_idx in claim order instead of sorting every waiting row.
        in_queues = '"queue" = %s' if len(queues) == 1 else '"queue" = ANY(%s)'
        condition = f"""
            "uuid" IN (
                SELECT "uuid" FROM "{Task._meta.db_table}"
                WHERE "status" IN ({WAITING}) AND {in_queues}
                    AND ("run_after" IS NULL OR "run_after" <= %s)
                ORDER BY "priority", "created_at"
                LIMIT %s
                FOR UPDATE SKIP LOCKED
            )
        """
        params = [queues[0] if len(queues) == 1 else list(queues), now, limit]
        return claim_returning(using, condition, params, worker_id, now, carried)


class Listener(threading.Thread):
    """Holds a LISTEN connection and calls ``on_work`` when a task of our queues is ready."""

    def __init__(self, using: str, queues: list[str], on_work: Callable[[], object]) -> None:
        super().__init__(name="qtasks-listen", daemon=True)
        self.using = using
        self.queues = set(queues)
        self.on_work = on_work
        self.stopping = threading.Event()

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)

    def run(self) -> None:
        import psycopg

        wrapper = connections[self.using]
        pause = 1.0
        while not self.stopping.is_set():
            try:
                params = wrapper.get_connection_params()
                with psycopg.connect(**params, autocommit=True) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    # (Re)connected: a notification may have been missed.
                    self.on_work()
                    pause = 1.0
                    while not self.stopping.is_set():
                        for notice in connection.notifies(timeout=0.5):
                            if notice.payload in self.queues:
                                self.on_work()
            except Exception as exc:
                logger.warning(
                    "LISTEN on the database failed (%s); polling, and listening again in %.0fs",
                    exc,
                    pause,
                )
                self.stopping.wait(pause)
                pause = min(pause * 2, 30.0)
