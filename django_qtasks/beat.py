"""The beat: enqueues periodic tasks when their Schedule rows fall due.

Run by ``manage.py qtasks_beat`` or inside a worker (``qtasks_worker
--beat``); any number of beats may run. A due run is claimed by moving the
row's ``next_run_at`` forward with an UPDATE guarded by its old value, in the
same transaction as the new Task row: one beat wins, the others update
nothing, and a beat that dies in between leaves neither. Runs missed while no
beat was running are not made up one by one: the first look after a restart
enqueues one run and moves on to the next time still ahead.

A beat also deletes the tasks that ``QTASKS["RETENTION"]`` keeps no longer,
on a thread of its own (``django_qtasks.retention.Retention``).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from django_qtasks.conf import qtasks_settings
from django_qtasks.exceptions import QTasksError
from django_qtasks.models import Schedule, ScheduleSource, Task, task_db
from django_qtasks.registry import default_app
from django_qtasks.retention import Retention
from django_qtasks.scheduling import declared_schedules

logger = logging.getLogger("django_qtasks.beat")


def schedules() -> QuerySet[Schedule]:
    """Schedule rows on the database that takes their writes: the beat decides on them."""
    return Schedule.objects.using(task_db(Schedule))


class Beat:
    def __init__(self) -> None:
        self.stopping = False
        #: ``run`` waits on this socket pair, and ``stop`` wakes it with a byte.
        #: Not a ``threading.Event``: ``stop`` is called from a signal handler,
        #: which runs in the waiting thread and deadlocks on the lock that
        #: ``Event.wait`` may hold at that moment.
        self._wake: tuple[socket.socket, socket.socket] | None = None
        #: Deletes what RETENTION keeps no longer, from ``start`` to ``close``.
        self.retention = Retention()

    def run(self) -> None:
        """Enqueue due runs until ``stop()``."""
        wake = self._wake = socket.socketpair()
        try:
            self.start()
            while not self.stopping:
                try:
                    pause = self.tick()
                except Exception:
                    logger.exception("The beat could not look at the schedules; trying again")
                    pause = qtasks_settings.BEAT_INTERVAL
                if not self.stopping:
                    select.select([wake[0]], [], [], pause)
        finally:
            self._wake = None
            for end in wake:
                end.close()
            self.close()
        logger.info("Beat stopped")

    def stop(self) -> None:
        """Make ``run`` return after its current look; safe in a signal handler."""
        self.stopping = True
        wake = self._wake
        if wake is not None:
            with contextlib.suppress(OSError):  # closed meanwhile: run() has returned
                wake[1].send(b"\0")

    def start(self) -> None:
        sync_declared_schedules()
        count = schedules().filter(enabled=True).count()
        logger.info("Beat started: %s enabled schedules", count)
        self.retention.start()

    def close(self) -> None:
        """Stop the retention passes (after their batch under way); not from a signal handler."""
        self.retention.stop()

    def tick(self, now: datetime | None = None) -> float:
        """Enqueue what is due; return the seconds until the next look."""
        now = now or timezone.now()
        self.plan_new(now)
        due = schedules().filter(enabled=True, next_run_at__lte=now).order_by("next_run_at")
        for schedule in due:
            self.fire(schedule, now)
        upcoming = (
            schedules()
            .filter(enabled=True, next_run_at__isnull=False)
            .order_by("next_run_at")
            .values_list("next_run_at", flat=True)
            .first()
        )
        pause = float(qtasks_settings.BEAT_INTERVAL)
        if upcoming is not None:
            pause = min(pause, max((upcoming - timezone.now()).total_seconds(), 0.0))
        return pause

    def plan_new(self, now: datetime) -> None:
        """Give enabled schedules without a next run (created by code or the ORM) one.

        One that has none left (expired, or a one-off that ran) is disabled.
        """
        for schedule in schedules().filter(enabled=True, next_run_at__isnull=True):
            upcoming = None
            if not (schedule.one_off and schedule.run_count):
                upcoming = schedule.next_run_after(now)
            schedules().filter(pk=schedule.pk, next_run_at__isnull=True).update(
                next_run_at=upcoming, enabled=upcoming is not None
            )

    def fire(self, schedule: Schedule, now: datetime) -> Task | None:
        """Enqueue the due run of ``schedule`` unless another beat already did."""
        due_at = schedule.next_run_at
        expired = schedule.expires_at is not None and schedule.expires_at <= now
        following = None
        if not (schedule.one_off or expired):
            following = schedule.next_run_after(now, previous=due_at)
        with transaction.atomic(using=task_db(Schedule)):
            claimed = (
                schedules()
                .filter(pk=schedule.pk, enabled=True, next_run_at=due_at)
                .update(
                    next_run_at=following,
                    enabled=following is not None,
                    last_run_at=now if not expired else schedule.last_run_at,
                    run_count=F("run_count") + (0 if expired else 1),
                    updated_at=now,
                )
            )
            if not claimed or expired:
                if claimed:
                    logger.info("Schedule %s expired: disabled", schedule)
                return None
            task = enqueue_run(schedule)
        if task is not None:
            logger.info(
                "Schedule %s (due %s) enqueued task %s; next run %s",
                schedule,
                due_at,
                task.uuid,
                following or "none (disabled)",
            )
        return task


def enqueue_run(schedule: Schedule) -> Task | None:
    """Enqueue one run of ``schedule`` now and record it as its last task.

    Returns None, with an error logged, when its task is not registered here.
    """
    app = default_app()
    try:
        handle = app.get_task(schedule.task_name)
        task = app.enqueue(
            handle,
            schedule.args,
            schedule.kwargs,
            priority=schedule.priority,
            queue=schedule.queue or None,
            schedule=schedule,
        )
    except QTasksError as exc:
        logger.error("Schedule %s could not enqueue its task: %s", schedule, exc)
        return None
    schedules().filter(pk=schedule.pk).update(last_task=task)
    return task


def run_now(schedule: Schedule) -> Task | None:
    """Enqueue a run of ``schedule`` at once (the admin's "Run now"); its timing is kept."""
    with transaction.atomic(using=task_db(Schedule)):
        task = enqueue_run(schedule)
        if task is not None:
            schedules().filter(pk=schedule.pk).update(
                last_run_at=timezone.now(), run_count=F("run_count") + 1
            )
    return task


def sync_declared_schedules(now: datetime | None = None) -> None:
    """Write declared schedules to Schedule rows; remove rows no longer declared.

    What the admin may change on such a row (enabled, one-off, expiry) is
    kept; timing and arguments follow the code. A changed timing gets a new
    next run.
    """
    using = task_db(Schedule)
    now = now or timezone.now()
    declared = declared_schedules()
    for item in declared:
        values = {
            "task_name": item.task_name,
            "source": item.source,
            "cron": item.cron,
            "interval": item.interval,
            "args": item.args,
            "kwargs": item.kwargs,
            "queue": item.queue,
            "priority": item.priority,
            "description": item.description,
        }
        row = Schedule.objects.using(using).filter(name=item.name).first()
        if row is None:
            row = Schedule(name=item.name, **values)
            row.next_run_at = row.next_run_after(now)
            try:
                with transaction.atomic(using=using):
                    row.save(force_insert=True, using=using)
            except IntegrityError:
                pass  # another beat created it at the same moment
            continue
        # update(), not save(): a beat may be moving next_run_at meanwhile.
        if (row.cron, row.interval) != (item.cron, item.interval):
            row.cron, row.interval = item.cron, item.interval
            values["next_run_at"] = row.next_run_after(now) if row.enabled else None
        Schedule.objects.using(using).filter(pk=row.pk).update(**values, updated_at=now)
    gone = (
        Schedule.objects.using(using)
        .filter(source__in=[ScheduleSource.CODE, ScheduleSource.SETTINGS])
        .exclude(name__in=[item.name for item in declared])
    )
    for name in gone.values_list("name", flat=True):
        logger.info("Schedule %s is no longer declared: removed", name)
    gone.delete()
