"""``django://``: the queue is the Task table in the project's own database.

Workers claim due rows in priority order. On PostgreSQL and MySQL/MariaDB the
claim locks rows with ``SELECT ... FOR UPDATE SKIP LOCKED``, so workers never
wait on each other; on SQLite, which has a single writer, the claiming
``UPDATE`` is guarded by the status it leaves, so a row another worker took in
between is simply not ours.
"""

from __future__ import annotations

from django.db import connections, transaction
from django.db.models import F
from django.utils import timezone

from django_qtasks.brokers.base import Broker
from django_qtasks.models import READY_STATUSES, Task, TaskStatus


class DatabaseBroker(Broker):
    schemes = ("django",)

    def publish(self, task: Task) -> None:
        # The committed row is the message: nothing to send.
        return None

    def claim(self, queues: list[str], limit: int, worker_id: str) -> list[Task]:
        using = Task.objects.db
        now = timezone.now()
        due = Task.objects.using(using).due(queues, now)
        claim = {
            "status": TaskStatus.PROCESS,
            "worker": worker_id,
            "started_at": now,
            "finished_at": None,
            "attempts": F("attempts") + 1,
            "updated_at": now,
        }
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
        for row in rows:
            row.status = TaskStatus.PROCESS
            row.worker = worker_id
            row.started_at = now
            row.finished_at = None
            row.attempts += 1
            row.updated_at = now
        return rows
