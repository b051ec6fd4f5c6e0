"""``self.ctx``: what a running task can ask of django-qtasks.

A context belongs to one run. Outside a worker (a handle's own ``ctx``, or a
direct call) it has no ``task_uuid`` and no run state, and the methods that
need a run say so.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import MutableMapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NoReturn
from uuid import UUID

from asgiref.sync import sync_to_async

from django_qtasks.conf import qtasks_settings
from django_qtasks.exceptions import QTasksError, TaskCancel, TaskInterrupted, TaskTimeout
from django_qtasks.masking import masked
from django_qtasks.plugins import TaskPluginTriggerError
from django_qtasks.validation import storable_text

if TYPE_CHECKING:
    from django_qtasks.models import Task
    from django_qtasks.task import BaseTask
    from django_qtasks.worker.worker import Worker

COMPONENTS = ("app", "broker", "config", "storage", "worker")


class RunState:
    """The mutable state of one run, shared by the task and its worker.

    The worker sets ``cancel_reason`` (a cancel) or ``interrupted`` (the run
    is not this worker's to finish: it shuts down, or the task was taken
    over) and the ``stop`` event to ask the task to stop; the task's logger
    appends to ``log_lines``, each tagged with ``attempt``; a generator task
    publishes what it has yielded so far in ``progress``.
    """

    def __init__(
        self,
        task_uuid: UUID,
        *,
        log_limit: int,
        worker: Worker | None = None,
        attempt: int | None = None,
    ) -> None:
        self.task_uuid = task_uuid
        self.worker = worker
        self.attempt = attempt
        self.stop = threading.Event()
        self.stop_error: BaseException | None = None
        self.cancel_reason: str | None = None
        self.interrupted: str | None = None
        self.log_limit = log_limit
        self.log_lines: list[dict[str, Any]] = []
        self.dropped_lines = 0
        self.progress: list[Any] | None = None
        self.progress_version = 0
        #: Its sync thread went on after it was stopped (blocked in C): the
        #: worker's pool counts one thread less until that call returns.
        self.thread_left = False
        self._lock = threading.Lock()

    def request_cancel(self, reason: str) -> None:
        self.cancel_reason = reason
        self.stop_error = TaskCancel(reason)
        self.stop.set()

    def request_interrupt(self, reason: str) -> None:
        if self.interrupted is None:
            self.interrupted = reason
            self.stop_error = TaskInterrupted(reason)
            self.stop.set()

    def request_timeout(self, max_time: float) -> None:
        self.stop_error = TaskTimeout(f"Task exceeded its max_time of {max_time:g}s")
        self.stop.set()

    def raise_if_stopped(self) -> None:
        if self.stop.is_set() and self.stop_error is not None:
            raise self.stop_error

    def add_log_line(self, level: int, message: str) -> None:
        limit = qtasks_settings.LOG_LINE_MAX_CHARS
        if len(message) > limit:
            message = f"{message[:limit]} [... {len(message) - limit} more characters not kept]"
        line: dict[str, Any] = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "level": logging.getLevelName(level),
            # Escaped, not refused: a line is kept as the task logged it.
            "message": storable_text(message),
        }
        if self.attempt is not None:
            line["attempt"] = self.attempt
        with self._lock:
            self.log_lines.append(line)
            if len(self.log_lines) > self.log_limit:
                # Keep the newest lines: the end of a log explains how it ended.
                del self.log_lines[0]
                self.dropped_lines += 1

    def stored_log(self) -> list[dict[str, Any]]:
        with self._lock:
            lines = list(self.log_lines)
        if self.dropped_lines:
            note = f"({self.dropped_lines} earlier lines not kept)"
            lines.insert(0, {**lines[0], "level": "INFO", "message": note})
        return lines

    def set_progress(self, items: list[Any]) -> None:
        self.progress = items
        self.progress_version += 1


if TYPE_CHECKING:
    _LoggerAdapter = logging.LoggerAdapter[logging.Logger]
else:  # not subscriptable at run time before Python 3.11
    _LoggerAdapter = logging.LoggerAdapter


class TaskLogger(_LoggerAdapter):
    """A logger that also keeps INFO+ lines with the task's record."""

    def __init__(self, logger: logging.Logger, ctx: BaseContext) -> None:
        super().__init__(logger, {"task_uuid": ctx.task_uuid, "task_name": ctx.task_name})
        self.run = ctx.run

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if self.run is not None and level >= logging.INFO:
            try:
                text = str(msg) % args if args else str(msg)
            except (TypeError, ValueError):
                text = f"{msg} {args}"
            self.run.add_log_line(level, text)
        super().log(level, msg, *args, **kwargs)


class BaseContext:
    """Shared by SyncContext and AsyncContext."""

    def __init__(self, task: BaseTask, run: RunState | None = None) -> None:
        self.task = task
        self.run = run
        self._metadata: Task | None = None

    @property
    def task_uuid(self) -> UUID | None:
        return self.run.task_uuid if self.run else None

    @property
    def task_name(self) -> str:
        return self.task.task_name

    @property
    def generate_handler(self) -> Any:
        return self.task.generate_handler

    def get_logger(self, name: str | None = None) -> TaskLogger:
        """A logger under Django's LOGGING, ``django_qtasks.task.<task name>`` by default.

        A plain name (QTasks' subname, ``"mailer"``) is a child of the task's
        logger, so its lines go where the task's go; a dotted name
        (``"myapp.mail"``) is that logger.
        """
        base = f"django_qtasks.task.{self.task_name}"
        if name and "." not in name:
            name = f"{base}.{name}"
        return TaskLogger(logging.getLogger(name or base), self)

    def get_config(self) -> dict[str, Any]:
        """The effective QTASKS settings: defaults plus every key the project set.

        Secrets are masked (URL passwords, keys named like PASSWORD, SECRET,
        TOKEN or KEY), since task code logs this; ``qtasks_settings`` (the
        "config" component) has the real values.
        """
        config: dict[str, Any] = masked(qtasks_settings.as_dict())
        return config

    def get_component(self, name: str) -> Any:
        """One of the running components: app, broker, config, storage, worker; another
        name is the app's attribute of that name (``tasks``, ...), or None."""
        from django_qtasks.brokers import get_broker

        if name == "app":
            return self.task.app
        if name == "broker":
            return get_broker()
        if name == "config":
            return qtasks_settings
        if name == "storage":
            from django_qtasks.models import Task, task_db

            return Task.objects.db_manager(task_db())
        if name == "worker":
            return self.run.worker if self.run else None
        # As in QTasks: any other attribute of the app, else None.
        return getattr(self.task.app, name, None) if not name.startswith("_") else None

    def cancel(self, reason: str = "") -> NoReturn:
        """End this task now with status ``cancel`` and this reason
        (``"<task_name>.cancel"`` when none is given, as in QTasks)."""
        raise TaskCancel(reason or f"{self.task_name}.cancel")

    def plugin_error(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Hand the task to the plugins (``task_executor_run_task_trigger_error``).

        A plugin that answers ``{"result": value}`` ends the task with that
        result; otherwise the task fails with ``TaskPluginTriggerError``.
        """
        raise TaskPluginTriggerError(*args, **kwargs)

    def checkpoint(self) -> None:
        """Stop here if the task was cancelled from outside or ran out of time."""
        if self.run is not None:
            self.run.raise_if_stopped()

    def _require_run(self, what: str) -> RunState:
        if self.run is None:
            raise QTasksError(f"ctx.{what}() only works while the task runs in a worker.")
        return self.run

    def _get_task(self, uuid: UUID | str) -> Task | None:
        from django_qtasks.models import task_by_uuid

        return task_by_uuid(uuid)

    def _get_metadata(self, cache: bool) -> Task:
        run = self._require_run("get_metadata")
        if cache and self._metadata is not None:
            return self._metadata
        from django_qtasks.models import Task, task_db

        self._metadata = Task.objects.using(task_db()).get(pk=run.task_uuid)
        return self._metadata


class SyncContext(BaseContext):
    def sleep(self, seconds: float) -> None:
        """Sleep, waking early to stop the task if it is cancelled or timed out."""
        if self.run is None:
            time.sleep(seconds)
            return
        self.run.stop.wait(seconds)
        self.run.raise_if_stopped()

    def get_task(self, uuid: UUID | str) -> Task | None:
        """The stored record of any task, or None."""
        return self._get_task(uuid)

    def get_metadata(self, cache: bool = True) -> Task:
        """The stored record of this run: read once and kept, as in QTasks;
        ``cache=False`` reads it fresh from the database."""
        return self._get_metadata(cache)


class AsyncContext(BaseContext):
    async def sleep(self, seconds: float) -> None:
        """Sleep; a cancel from outside interrupts it (the task is cancelled at its await)."""
        await asyncio.sleep(seconds)
        self.checkpoint()

    async def get_task(self, uuid: UUID | str) -> Task | None:
        return await sync_to_async(self._get_task)(uuid)

    async def get_metadata(self, cache: bool = True) -> Task:
        return await sync_to_async(self._get_metadata)(cache)
