"""Task records: every task's whole life, one row per task.

The row is the truth; brokers only carry its uuid. Each state change is one
``UPDATE`` guarded by the state it leaves, so two processes can never both
make the same transition.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.db import models, router
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_qtasks import signals
from django_qtasks.conf import qtasks_settings
from django_qtasks.cron import next_cron_time
from django_qtasks.exceptions import WaitTimeout
from django_qtasks.notify import get_notifier
from django_qtasks.registry import default_app
from django_qtasks.scheduling import check_schedule
from django_qtasks.statuses import FINAL_STATUSES, READY_STATUSES, TaskStatus
from django_qtasks.store import TaskStore, store_for
from django_qtasks.validation import (
    CANCEL_REASON_MAX_LENGTH as CANCEL_REASON_MAX_LENGTH,  # its documented place
)
from django_qtasks.validation import ensure_json, kept_cancel_reason, storable_text

#: Where a wait for a result that ran out of time is logged (QTasks' results logger).
results_logger = logging.getLogger("django_qtasks.results")


def task_db(model: type[models.Model] | None = None) -> str:
    """The database alias for the task tables (``Task`` unless ``model`` says otherwise).

    ``router.db_for_write``: every write goes there, and so does every read
    that decides what to write (claims, heartbeats, cancels, waits). A read
    replica may lag behind, and a write and the read that follows it must
    meet on one database. Only views for people (the admin's and the API's
    lists) read through ``router.db_for_read``.
    """
    return router.db_for_write(model or Task)


class TaskQuerySet(models.QuerySet["Task"]):
    def ready(self) -> TaskQuerySet:
        return self.filter(status__in=READY_STATUSES)

    def running(self) -> TaskQuerySet:
        return self.filter(status=TaskStatus.PROCESS)

    def finished(self) -> TaskQuerySet:
        return self.filter(status__in=FINAL_STATUSES)

    def back_to_outbox(self) -> int:
        """Mark the waiting ones unpublished: their messages may be lost. How many changed.

        A worker's outbox sweep publishes them again; a message that did
        survive becomes a duplicate, dropped at its claim (``TaskStore.back_to_outbox``).
        """
        return task_store().back_to_outbox(self)

    def due(self, queues: list[str], now: Any = None) -> TaskQuerySet:
        """Ready tasks of ``queues`` whose time has come, best first."""
        now = now or timezone.now()
        return (
            self.ready()
            .filter(queue__in=queues)
            .filter(models.Q(run_after__isnull=True) | models.Q(run_after__lte=now))
            .order_by("priority", "created_at")
        )


#: Task columns that hold a list the worker extends (``logs``, ``attempt_log``) or takes
#: the next chain step from (``chain_steps``).
LIST_COLUMNS = ("logs", "attempt_log", "chain_steps")


class Task(models.Model):
    uuid = models.UUIDField(_("uuid"), primary_key=True, default=uuid.uuid4, editable=False)
    task_name = models.CharField(_("task name"), max_length=200)
    status = models.CharField(
        _("status"), max_length=10, choices=TaskStatus.choices, default=TaskStatus.NEW
    )
    priority = models.IntegerField(_("priority"), default=0, help_text=_("Lower runs first."))
    queue = models.CharField(_("queue"), max_length=100, default="default")
    args = models.JSONField(_("args"), default=list, blank=True)
    kwargs = models.JSONField(_("kwargs"), default=dict, blank=True)
    extra = models.JSONField(_("extra"), default=dict, blank=True)
    tags = models.JSONField(_("tags"), default=list, blank=True)
    returning = models.JSONField(_("result"), null=True, blank=True)
    traceback = models.TextField(_("traceback"), blank=True)
    logs = models.JSONField(_("log lines"), default=list, blank=True)

    cancel_reason = models.TextField(_("cancel reason"), blank=True)
    canceled_by = models.CharField(_("canceled by"), max_length=200, blank=True)
    cancel_requested_at = models.DateTimeField(_("cancel requested at"), null=True, blank=True)

    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    max_attempts = models.PositiveIntegerField(_("max attempts"), default=1)
    attempt_log = models.JSONField(_("attempt log"), default=list, blank=True)
    retry_of = models.ForeignKey(
        "self",
        verbose_name=_("retry of"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="retries",
    )
    worker = models.CharField(_("worker"), max_length=200, blank=True, db_index=True)
    #: Seconds of wall-clock and of CPU time its attempts took, summed; each
    #: attempt's own are in ``attempt_log``. None until an attempt ends.
    run_time = models.FloatField(_("run time (s)"), null=True, blank=True)
    cpu_time = models.FloatField(_("CPU time (s)"), null=True, blank=True)
    #: The trace context of the code that enqueued it (W3C ``traceparent``,
    #: ...), when OpenTelemetry is on (``django_qtasks.tracing``).
    trace_context = models.JSONField(_("trace context"), default=dict, blank=True)
    #: The periodic schedule that enqueued this task, if any.
    schedule = models.ForeignKey(
        "Schedule",
        verbose_name=_("schedule"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="tasks",
    )
    #: In a chain: the step before this one, whose result this one received.
    chain_previous = models.ForeignKey(
        "self",
        verbose_name=_("previous in chain"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="chain_next",
    )
    #: In a chain: the steps still to run after this one (see ``django_qtasks.chains``).
    chain_steps = models.JSONField(_("next chain steps"), default=list, blank=True)

    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    run_after = models.DateTimeField(_("run after"), null=True, blank=True)
    #: When a message broker (kombu) accepted this task's message; None until
    #: then, so that the worker's outbox sweep publishes what never arrived.
    published_at = models.DateTimeField(_("published at"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    objects = TaskQuerySet.as_manager()

    class Meta:
        verbose_name = _("task")
        verbose_name_plural = _("tasks")
        ordering = ["-created_at"]
        indexes = [
            # The claim query: waiting tasks of a queue, best priority first. Partial,
            # so it holds only waiting rows and its scan comes out in claim order.
            models.Index(
                fields=["queue", "priority", "created_at"],
                name="qtasks_waiting_idx",
                condition=models.Q(status__in=["new", "retry"]),
            ),
            # The admin's changelist: newest first within a status or a task name.
            models.Index(fields=["status", "-created_at"], name="qtasks_status_created_idx"),
            models.Index(fields=["task_name", "-created_at"], name="qtasks_name_created_idx"),
            # The dashboard: tasks that ended within a recent window.
            models.Index(fields=["finished_at"], name="qtasks_finished_idx"),
        ]
        permissions = [
            ("cancel_task", _("Can cancel tasks")),
            ("retry_task", _("Can retry tasks")),
        ]

    def __str__(self) -> str:
        return f"{self.task_name} {self.uuid} ({self.status})"

    def __repr__(self) -> str:
        fields: dict[str, Any] = {
            # str(): a fresh record holds the TaskStatus member, whose repr is not 'new'.
            "status": str(self.status),
            "uuid": self.uuid,
            "task_name": self.task_name,
            "priority": self.priority,
            "args": self.args,
            "kwargs": self.kwargs,
            "returning": self.returning,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if self.traceback:
            fields["traceback"] = self.traceback.strip().splitlines()[-1]
        if self.status == TaskStatus.CANCEL or self.cancel_reason:
            fields["cancel_reason"] = self.cancel_reason
        inner = ", ".join(f"{key}={value!r}" for key, value in fields.items())
        return f"Task({inner})"

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any, **kwargs: Any) -> Task:
        """A row as read, its lists that hold something else (a row written by hand, or
        by another program) read as empty: workers extend them and pages list them."""
        record = super().from_db(db, field_names, values, **kwargs)
        loaded = record.__dict__
        for name in LIST_COLUMNS:
            if name in loaded and not isinstance(loaded[name], list):
                loaded[name] = []
        return record

    @classmethod
    def new(
        cls,
        task_name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        queue: str | None = None,
        priority: int = 0,
        max_attempts: int = 1,
        extra: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        run_after: datetime | None = None,
        **links: Any,
    ) -> Task:
        """A new task's row, unsaved: every way of enqueueing builds its rows here.

        The arguments must be JSON that every database stores
        (``TaskArgumentsError`` otherwise); the queue is ``DEFAULT_QUEUE``
        unless given. ``links``: ``schedule``, ``retry_of``, ``chain_previous``
        (or their ``_id``) and ``chain_steps``.
        """
        return cls(
            uuid=uuid.uuid4(),
            task_name=task_name,
            priority=priority,
            queue=queue or qtasks_settings.DEFAULT_QUEUE,
            args=ensure_json(task_name, "args", list(args)),
            kwargs=ensure_json(task_name, "kwargs", dict(kwargs)),
            extra=extra or {},
            tags=tags or [],
            max_attempts=max_attempts,
            run_after=run_after,
            **links,
        )

    @property
    def is_finished(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    def wait_result(self, timeout: float = 100.0) -> Task | None:
        """This task once it has ended, fresh from the database; None if it does not end
        within ``timeout`` seconds (QTasks' ``Task.wait_result``)."""
        app = default_app()
        try:
            return wait_for_end(
                self.uuid, timeout, app.wait_pause_with_messages, app.wait_pause_polling
            )
        except WaitTimeout:
            results_logger.warning("Task %s timed out after %s seconds!", self.uuid, timeout)
            return None

    async def wait_result_async(self, timeout: float = 100.0) -> Task | None:
        return await sync_to_async(self.wait_result)(timeout)

    def cancel(self, reason: str = "", by: str = "") -> bool:
        """Cancel this task; return False when it had already ended (``cancel_with_outcome``)."""
        return self.cancel_with_outcome(reason, by) is not None

    def cancel_with_outcome(self, reason: str = "", by: str = "") -> str | None:
        """Cancel this task: ``"ended"`` if it was waiting, ``"requested"`` if it was
        running, None if it had already ended. The record is read again afterwards.

        What the cancel did, not what the row says once read again: a worker
        may end a running task as cancelled in between.

        A ``reason`` longer than CANCEL_REASON_MAX_LENGTH is kept cut, ending with "…".

        A waiting task ends at once with status ``cancel`` and never starts. A
        running one gets a cancel request that its worker acts on (see
        DESIGN: async tasks stop at their next await, sync ones at their next
        ``ctx.sleep``/``ctx.checkpoint`` or after the grace period).
        """
        # A reason typed by a user keeps what it says, escaped where a
        # database would refuse it (NUL, surrogates).
        reason, by = kept_cancel_reason(reason), storable_text(by)
        using = task_db()
        done = task_store(using).cancel(self.pk, reason, by)
        if done == "ended":
            get_notifier().task_ended(self.pk)
        elif done == "requested":
            get_notifier().cancel_requested(self.pk)
        self.refresh_from_db(using=using)
        if done == "ended":
            self.send_cancelled()
        return done

    def send_cancelled(self) -> None:
        """The signals of a task that a cancel ended before it started (no worker sends them)."""
        sender = default_app().tasks.get(self.task_name)
        if signals.task_cancelled.has_listeners(sender):
            signals.send(signals.task_cancelled, sender, task=self, reason=self.cancel_reason)
        if signals.task_finished.has_listeners(sender):
            signals.send(signals.task_finished, sender, task=self)

    def retry(self) -> Task | None:
        """Enqueue a new run of this ended task; None if it has not ended.

        The new task copies the name, arguments and options, and links back
        through ``retry_of``; this one keeps its history unchanged.
        """
        if not self.is_finished:
            return None
        copy = Task.new(
            self.task_name,
            self.args,
            self.kwargs,
            priority=self.priority,
            queue=self.queue,
            extra=self.extra,
            tags=self.tags,
            max_attempts=self.max_attempts,
            retry_of=self,
            schedule_id=self.schedule_id,
            # A retried chain step goes on with the rest of its chain.
            chain_previous_id=self.chain_previous_id,
            chain_steps=self.chain_steps,
        )
        return default_app().submit(copy)

    async def acancel(self, reason: str = "", by: str = "") -> bool:
        return await sync_to_async(self.cancel)(reason, by)


def task_store(using: str | None = None) -> TaskStore:
    """The task store (every change of state of the task table) of ``using``,
    by default the task database."""
    return store_for(Task, WorkerHeartbeat, using or task_db())


def task_by_uuid(key: uuid.UUID | str) -> Task | None:
    """The Task record with this uuid, or None (also for a string that is no uuid)."""
    try:
        key = key if isinstance(key, uuid.UUID) else uuid.UUID(str(key))
    except ValueError:
        return None
    # The write database: a replica may not have the row that was just added.
    return Task.objects.using(task_db()).filter(pk=key).first()


def wait_for_end(
    key: uuid.UUID, timeout: float, pause_with_messages: float, pause_polling: float
) -> Task:
    """Wait until the task ends and return its record; raise WaitTimeout after ``timeout``.

    The pauses are the app's (``QTasksApp.wait_pause_with_messages`` and
    ``wait_pause_polling``).
    """
    notifier = get_notifier()
    deadline = time.monotonic() + timeout
    # With Redis the "ended" message wakes us; the pause is only a safety net.
    pause = pause_with_messages if notifier.fast else 0.01
    # Listen before the first look, so that an end in between is not missed.
    status = "not looked at"
    with notifier.listen_ended(key) as listener:
        # A timeout already past when the wait starts looks no more
        # (``timeout=0.000001`` gives None, as in QTasks, however fast a
        # worker is).
        while time.monotonic() < deadline:
            record = Task.objects.using(task_db()).get(pk=key)
            if record.status in FINAL_STATUSES:
                return record
            status = record.status
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            listener.wait(min(pause, remaining))
            if not notifier.fast:
                pause = min(pause * 1.5, pause_polling)
    raise WaitTimeout(
        f"Task {key} did not end within {timeout:g}s (status {status!r}); it goes on, "
        "and app.get(uuid) shows how it ends."
    )


class WorkerHeartbeat(models.Model):
    """One row per live ``qtasks_worker`` process, refreshed every few seconds."""

    worker_id = models.CharField(_("worker"), max_length=200, primary_key=True)
    hostname = models.CharField(_("hostname"), max_length=200)
    pid = models.PositiveIntegerField(_("pid"))
    queues = models.JSONField(_("queues"), default=list)
    concurrency = models.PositiveIntegerField(_("concurrency"))
    #: The ``--processes`` pool this worker is a child of, blank for a lone worker.
    supervisor = models.CharField(_("supervisor"), max_length=200, blank=True, default="")
    running = models.JSONField(_("running tasks"), default=list, blank=True)
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    last_heartbeat = models.DateTimeField(_("last heartbeat"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("worker")
        verbose_name_plural = _("workers")
        ordering = ["worker_id"]

    def __str__(self) -> str:
        return self.worker_id

    def queue_names(self) -> list[str]:
        """The names listed in ``queues``. Anything else there (a row written by hand, or
        by another program) is left out rather than break what reads them."""
        if not isinstance(self.queues, list):
            return []
        return [name for name in self.queues if isinstance(name, str)]

    def running_uuids(self) -> list[str]:
        """The uuids listed in ``running``, as text. Anything else there (a row written
        by hand, or by another program) is left out rather than break the pages that list it."""
        found = []
        for entry in self.running if isinstance(self.running, list) else []:
            try:
                found.append(str(uuid.UUID(str(entry))))
            except ValueError:
                continue
        return found


class ScheduleSource(models.TextChoices):
    ADMIN = "admin", _("admin")
    CODE = "code", _("code (@app.task(schedule=...))")
    SETTINGS = "settings", _("settings (QTASKS['SCHEDULES'])")


class Schedule(models.Model):
    """A periodic task: which task, with what arguments, and when (cron or interval).

    Rows come from the admin, or from code and settings (synchronised by the
    beat when it starts). The beat enqueues a due run by moving
    ``next_run_at`` forward with an UPDATE guarded by its old value, in the
    same transaction as the new Task row: with several beats, each run is
    enqueued exactly once.
    """

    name = models.CharField(_("name"), max_length=200, unique=True)
    task_name = models.CharField(_("task name"), max_length=200)
    cron = models.CharField(
        _("cron expression"),
        max_length=200,
        blank=True,
        help_text=_(
            "Five fields: minute hour day-of-month month day-of-week, in the project's "
            "time zone. Example: */5 * * * * (every five minutes)."
        ),
    )
    interval = models.DurationField(
        _("interval"),
        null=True,
        blank=True,
        help_text=_("Instead of a cron expression: run every so long, e.g. 00:05:00."),
    )
    args = models.JSONField(_("args"), default=list, blank=True)
    kwargs = models.JSONField(_("kwargs"), default=dict, blank=True)
    queue = models.CharField(
        _("queue"), max_length=100, blank=True, help_text=_("Empty: the task's own queue.")
    )
    priority = models.IntegerField(
        _("priority"), null=True, blank=True, help_text=_("Empty: the task's own priority.")
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    one_off = models.BooleanField(
        _("one-off"), default=False, help_text=_("Run once, at the next due time, then disable.")
    )
    expires_at = models.DateTimeField(
        _("expires at"), null=True, blank=True, help_text=_("No run is enqueued after this.")
    )
    next_run_at = models.DateTimeField(_("next run at"), null=True, blank=True, db_index=True)
    last_run_at = models.DateTimeField(_("last run at"), null=True, blank=True)
    last_task = models.ForeignKey(
        Task,
        verbose_name=_("last task"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    run_count = models.PositiveIntegerField(_("runs"), default=0)
    source = models.CharField(
        _("declared in"), max_length=10, choices=ScheduleSource.choices, default="admin"
    )
    description = models.TextField(_("description"), blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("schedule")
        verbose_name_plural = _("schedules")
        ordering = ["name"]
        permissions = [("run_schedule", _("Can run schedules now"))]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        problems = check_schedule(self)
        if problems:
            raise ValidationError(problems)

    def next_run_after(self, now: Any, previous: Any = None) -> Any:
        """The first run time after ``now``, or None when the schedule has expired.

        An interval keeps its phase: runs fall on ``previous + k * interval``
        (missed ones are skipped, not made up), so a restart does not shift them.
        """
        if self.cron:
            upcoming = next_cron_time(self.cron, now)
        elif self.interval:
            if previous is None or previous > now:
                upcoming = previous or now + self.interval
            else:
                skipped = (now - previous) // self.interval
                upcoming = previous + (skipped + 1) * self.interval
        else:
            return None
        if self.expires_at is not None and upcoming > self.expires_at:
            return None
        return upcoming
