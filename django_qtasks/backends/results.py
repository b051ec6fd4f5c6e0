"""Task rows read as django.tasks: the Task they run and their TaskResult.

The row is the truth. A TaskResult is built from it every time it is asked
for, so it shows what the worker, the admin and the API did to the task.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.tasks import Task as DjangoTask  # type: ignore[import-untyped]
from django.tasks import TaskResult, TaskResultStatus
from django.tasks.base import (  # type: ignore[import-untyped]
    TASK_MAX_PRIORITY,
    TASK_MIN_PRIORITY,
    TaskError,
)
from django.utils.module_loading import import_string

from django_qtasks.app import DJANGO_TASK_KEY
from django_qtasks.exceptions import UnknownTask

if TYPE_CHECKING:
    from django_qtasks.models import Task

logger = logging.getLogger("django_qtasks.backends")

#: Our statuses as Django's. A cancelled task reads as FAILED, with a
#: TaskCancel error that says who cancelled it and why.
STATUSES: dict[str, Any] = {
    "new": TaskResultStatus.READY,
    "retry": TaskResultStatus.READY,
    "process": TaskResultStatus.RUNNING,
    "success": TaskResultStatus.SUCCESSFUL,
    "error": TaskResultStatus.FAILED,
    "cancel": TaskResultStatus.FAILED,
}
CANCEL_ERROR = "django_qtasks.exceptions.TaskCancel"
#: The class of an error whose text names no exception (e.g. a dead worker).
UNNAMED_ERROR = "django_qtasks.exceptions.QTasksError"

_HEADER = "Traceback (most recent call last):"
_EXCEPTION_LINE = re.compile(r"([A-Za-z_][\w.]*)(?::|$)")


def qtasks_priority(django_priority: int) -> int:
    """Django runs higher priorities first, we run lower ones first."""
    return -django_priority


def django_priority(priority: int) -> int:
    return max(TASK_MIN_PRIORITY, min(TASK_MAX_PRIORITY, -priority))


def marker(alias: str) -> dict[str, Any]:
    """The ``extra`` entry that makes a row a django.tasks task of backend ``alias``."""
    return {DJANGO_TASK_KEY: {"backend": alias}}


def backend_alias(record: Task) -> str | None:
    info = record.extra.get(DJANGO_TASK_KEY) if isinstance(record.extra, dict) else None
    return info.get("backend") if isinstance(info, dict) else None


def load_task(record: Task) -> Any:
    """The row's django.tasks Task, imported by its module path, with the row's options."""
    path = record.task_name
    if not importable(path):
        # A row names any path it likes: importing it would run that module's code.
        logger.warning(
            "Task %s names the django.tasks task %r, whose module is neither imported nor "
            "part of an installed app: refused, nothing imported.",
            record.uuid,
            path,
        )
        raise UnknownTask(
            f"Task {record.uuid} runs the django.tasks task {path!r}, which was refused: "
            "a django.tasks task must be defined in a module of an installed app (or one "
            "already imported), and this module is neither. Nothing was imported."
        )
    try:
        task = import_string(path)
    except ImportError as exc:
        raise UnknownTask(
            f"Task {record.uuid} runs the django.tasks task {path!r}, which cannot be "
            f"imported here: {exc}"
        ) from exc
    if not isinstance(task, DjangoTask):
        raise UnknownTask(
            f"Task {record.uuid} runs {path!r}, which is a {type(task).__name__}, not a "
            "django.tasks Task: was its @task decorator removed?"
        )
    return task.using(
        priority=django_priority(record.priority),
        queue_name=record.queue,
        run_after=record.run_after,
        backend=backend_alias(record),
    )


def importable(path: str) -> bool:
    """Whether ``path`` ("package.module.task") may be imported to find a task: its
    module is imported already, or belongs to an installed app."""
    module = path.rpartition(".")[0]
    if not module:
        return False
    if module in sys.modules:
        return True
    return any(
        module == config.name or module.startswith(f"{config.name}.")
        for config in apps.get_app_configs()
    )


def to_result(record: Task, task: Any) -> Any:
    """The TaskResult of a row, as it is now."""
    status = STATUSES[str(record.status)]
    result = TaskResult(
        task=task,
        id=str(record.uuid),
        status=status,
        enqueued_at=record.created_at,
        started_at=first_start(record),
        finished_at=record.finished_at,
        last_attempted_at=record.started_at,
        args=list(record.args),
        kwargs=dict(record.kwargs),
        backend=task.backend,
        errors=errors_of(record),
        worker_ids=worker_ids(record),
    )
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", record.returning)
    return result


def worker_ids(record: Task) -> list[str]:
    """One worker per attempt, so that ``TaskResult.attempts`` is our ``attempts``."""
    ids = [str(entry.get("worker", "")) for entry in record.attempt_log]
    if str(record.status) == "process" and record.worker:
        ids.append(record.worker)
    return ids


def first_start(record: Task) -> datetime | None:
    for entry in record.attempt_log[:1]:
        if entry.get("started_at"):
            return datetime.fromisoformat(entry["started_at"])
    return record.started_at


def errors_of(record: Task) -> list[Any]:
    """One error per failed attempt; the latest has the full traceback."""
    status = str(record.status)
    failed = [entry for entry in record.attempt_log if entry.get("status") in ("retry", "error")]
    texts = [str(entry.get("error", "")) for entry in failed]
    if record.traceback and status in ("retry", "error"):
        # The stored traceback is the latest failure's: it replaces that summary.
        texts[-1:] = [record.traceback]
    errors = [task_error(text) for text in texts]
    if status == "cancel":
        by = f" by {record.canceled_by}" if record.canceled_by else ""
        reason = f": {record.cancel_reason}" if record.cancel_reason else " (no reason given)"
        errors.append(
            TaskError(exception_class_path=CANCEL_ERROR, traceback=f"Cancelled{by}{reason}")
        )
    return errors


def task_error(text: str) -> Any:
    return TaskError(exception_class_path=exception_class_path(text), traceback=text)


def exception_class_path(text: str) -> str:
    """The exception class a formatted traceback (or its last line) ends with.

    In a traceback, the exception line is the first unindented line after the
    last header; a one-line summary is that line alone.
    """
    lines = text.strip().splitlines()
    if _HEADER in lines:
        last = len(lines) - 1 - lines[::-1].index(_HEADER)
        lines = lines[last + 1 :]
    line = next((line for line in lines if line and not line[0].isspace()), "")
    match = _EXCEPTION_LINE.match(line)
    if not match:
        return UNNAMED_ERROR
    name = match.group(1)
    return name if "." in name else f"builtins.{name}"
