"""The database's figures, read at scrape time: queues, running tasks, live workers.

They are the same whichever process asks and however many processes a
worker has, so they come from the task table, not from counters: two
statements per scrape. The first groups the rows of the active statuses
(``new``, ``retry``, ``process``: the status index, never the ended rows) by
queue; the second lists the live workers' queues and concurrency (one row
per live worker process).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db import DatabaseError, connections
from django.db.models import Count, Min, Q
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from django_qtasks.conf import qtasks_settings
from django_qtasks.models import Task, WorkerHeartbeat, task_db
from django_qtasks.statuses import READY_STATUSES, TaskStatus
from django_qtasks.store import heartbeat_cutoff

logger = logging.getLogger("django_qtasks.metrics")


@dataclass
class QueueState:
    #: Waiting tasks whose time has come (``new`` or ``retry``, ``run_after`` past or unset).
    depth: int = 0
    #: Waiting tasks whose time has not come (delayed, or a retry's backoff).
    scheduled: int = 0
    #: Seconds the oldest due task has waited since it became due.
    oldest_waiting: float = 0.0
    running: int = 0
    #: Live worker processes that take tasks from this queue.
    workers: int = 0


@dataclass
class Snapshot:
    queues: dict[str, QueueState]
    workers_alive: int
    worker_slots: int


def take_snapshot(now: datetime | None = None) -> Snapshot:
    """The figures, now (two statements, on the task database)."""
    now = now or timezone.now()
    waiting = Q(status__in=READY_STATUSES)
    due = waiting & (Q(run_after__isnull=True) | Q(run_after__lte=now))
    # A row is due from its run_after (a delay, a retry's backoff), if later than its creation.
    due_since = Greatest(Coalesce("run_after", "created_at"), "created_at")
    rows = (
        Task.objects.using(task_db())
        .filter(status__in=[*READY_STATUSES, TaskStatus.PROCESS])
        .order_by()
        .values("queue")
        .annotate(
            depth=Count("pk", filter=due),
            scheduled=Count("pk", filter=waiting & Q(run_after__gt=now)),
            oldest=Min(due_since, filter=due),
            running=Count("pk", filter=Q(status=TaskStatus.PROCESS)),
        )
    )
    queues: dict[str, QueueState] = {qtasks_settings.DEFAULT_QUEUE: QueueState()}
    for row in rows:
        oldest = row["oldest"]
        queues[row["queue"]] = QueueState(
            depth=row["depth"],
            scheduled=row["scheduled"],
            oldest_waiting=max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
            running=row["running"],
        )
    live = (
        WorkerHeartbeat.objects.using(task_db(WorkerHeartbeat))
        .filter(last_heartbeat__gte=heartbeat_cutoff())
        .values_list("queues", "concurrency")
    )
    alive = slots = 0
    for names, concurrency in live:
        alive += 1
        slots += concurrency
        for name in names if isinstance(names, list) else []:
            if isinstance(name, str):
                queues.setdefault(name, QueueState()).workers += 1
    return Snapshot(queues, alive, slots)


class DatabaseGauges:
    """A prometheus_client collector of ``take_snapshot()``'s figures.

    ``close_connections``: close this thread's connections after each
    scrape (a worker's scrape thread, a pool's supervisor), which no request
    cycle closes. A database that cannot be read gives no figures, and a
    warning in the log: the scrape still has the counters, and an alert on
    ``absent(qtasks_workers_alive)`` sees it.
    """

    def __init__(self, *, close_connections: bool) -> None:
        self.close_connections = close_connections

    def collect(self) -> Iterable[Metric]:
        try:
            snapshot = take_snapshot()
        except DatabaseError as exc:
            logger.warning("Metrics: could not read the task database: %s", exc)
            return []
        finally:
            if self.close_connections:
                connections.close_all()
        return list(families(snapshot))


def families(snapshot: Snapshot) -> Iterator[Metric]:
    per_queue = [
        ("qtasks_queue_depth", "Tasks waiting in the queue whose time has come.", "depth"),
        (
            "qtasks_queue_scheduled",
            "Tasks waiting in the queue for their time (a delay, a retry's backoff).",
            "scheduled",
        ),
        (
            "qtasks_queue_oldest_waiting_seconds",
            "Seconds the oldest due task of the queue has waited (0: none waits).",
            "oldest_waiting",
        ),
        ("qtasks_queue_running", "Tasks of the queue running now (status process).", "running"),
        ("qtasks_queue_workers", "Live worker processes taking tasks from the queue.", "workers"),
    ]
    for name, documentation, field in per_queue:
        family = GaugeMetricFamily(name, documentation, labels=["queue"])
        for queue, state in sorted(snapshot.queues.items()):
            family.add_metric([queue], getattr(state, field))
        yield family
    yield GaugeMetricFamily(
        "qtasks_workers_alive",
        "Worker processes whose heartbeat is fresh (a pool counts each child).",
        value=snapshot.workers_alive,
    )
    yield GaugeMetricFamily(
        "qtasks_worker_slots",
        "Tasks the live worker processes can run at once (their concurrency, summed).",
        value=snapshot.worker_slots,
    )
