"""The worker's heartbeat, on a thread and a database connection of its own.

Other workers take over a worker's tasks once its heartbeat is older than
``HEARTBEAT_TIMEOUT`` by the database's clock, so a heartbeat must never
wait behind task work: a result write stuck on a row lock, or a huge result,
would otherwise let a live worker be failed over while its tasks still run.

Each beat also fences: it checks that the rows this worker runs are still
its own, and reports those that are not (taken over, or deleted), so that
their runs stop at once instead of completing a second time.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any
from uuid import UUID

from django.db import connections

from django_qtasks.models import Task, TaskStatus, WorkerHeartbeat, task_db
from django_qtasks.store import DatabaseNow

logger = logging.getLogger("django_qtasks.worker")


class Heartbeat(threading.Thread):
    """Writes ``worker_id``'s heartbeat every ``interval`` seconds until stopped.

    ``under_way`` returns the keys of the runs under way (read from this
    thread: it must be safe to call from any thread); ``on_lost`` is called,
    from this thread, with those whose rows are no longer this worker's,
    each mapped to what the row says now (``None``: it was deleted).
    """

    def __init__(
        self,
        *,
        worker_id: str,
        queues: list[str],
        concurrency: int,
        supervisor: str,
        interval: float,
        under_way: Callable[[], list[UUID]],
        on_lost: Callable[[dict[UUID, tuple[str, str] | None]], object],
    ) -> None:
        super().__init__(name="qtasks-heartbeat", daemon=True)
        self.worker_id = worker_id
        self.queues = queues
        self.concurrency = concurrency
        self.supervisor = supervisor
        self.interval = interval
        self.under_way = under_way
        self.on_lost = on_lost
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopping.wait(self.interval):
                try:
                    self.beat()
                except Exception:
                    logger.exception("Worker %s could not write its heartbeat", self.worker_id)
                    connections.close_all()  # this thread's: replaced at the next beat
        finally:
            connections.close_all()

    def stop(self) -> None:
        self.stopping.set()
        # A beat stuck on an unreachable database does not hold up the exit
        # (the thread is a daemon).
        self.join(timeout=5)

    def beat(self) -> None:
        """Write the heartbeat, then report the rows taken from this worker."""
        keys = self.under_way()
        write_heartbeat(
            self.worker_id,
            keys,
            queues=self.queues,
            concurrency=self.concurrency,
            supervisor=self.supervisor,
        )
        if keys:
            lost = rows_not_held(self.worker_id, keys)
            if lost:
                self.on_lost(lost)


def write_heartbeat(
    worker_id: str,
    running: list[UUID],
    *,
    queues: list[str],
    concurrency: int,
    supervisor: str = "",
) -> None:
    """Record that ``worker_id`` is alive now, by the database's clock, and what it runs.

    ``running`` is read just before: ``fail_over`` takes a row claimed
    before the heartbeat's time and not in it for one that was only
    prefetched (one that started since the read cannot be told apart).
    """
    fields: dict[str, Any] = {
        "last_heartbeat": DatabaseNow(),
        "running": [str(key) for key in running],
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "queues": queues,
        "concurrency": concurrency,
        "supervisor": supervisor,
    }
    # One statement at a time, not update_or_create(): on SQLite a
    # transaction that reads then writes fails at once with "database is
    # locked" while another worker writes, without waiting for the timeout.
    if not WorkerHeartbeat.objects.filter(worker_id=worker_id).update(**fields):
        WorkerHeartbeat.objects.create(worker_id=worker_id, **fields)


def rows_not_held(worker_id: str, keys: list[UUID]) -> dict[UUID, tuple[str, str] | None]:
    """Of the rows ``keys``, those no longer in ``process`` for ``worker_id``, with their state."""
    rows = {
        pk: (status, worker)
        for pk, status, worker in Task.objects.using(task_db())
        .filter(pk__in=keys)
        .values_list("pk", "status", "worker")
    }
    return {key: rows.get(key) for key in keys if rows.get(key) != (TaskStatus.PROCESS, worker_id)}
