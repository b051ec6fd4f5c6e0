"""Task failures in Sentry, once each, with the task's name, uuid, attempt and tags.

Sentry's Django integration sees requests, not the worker: a task's
exception is caught by the worker, which stores it and logs one ERROR line.
``report_to_sentry()`` connects a receiver of ``task_failed``
(``django_qtasks.signals``) that sends the exception itself, tagged, and
keeps Sentry's logging integration from sending that line again as a second
event. Call it once, after ``sentry_sdk.init()`` (in settings, or in an app
config's ``ready()``); it needs ``sentry-sdk``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sentry_sdk
from sentry_sdk.scope import add_global_event_processor

from django_qtasks import signals
from django_qtasks.models import Task

if TYPE_CHECKING:
    from sentry_sdk._types import Event

#: The worker's log line for a task that ended in error (``worker.writer.log_outcome``).
FAILURE_LINE = "Task %s (%s) failed after %.3fs: %s"
WORKER_LOGGER = "django_qtasks.worker"

_connected = False


def report_to_sentry() -> None:
    """Send each task failure to Sentry once (idempotent)."""
    global _connected
    signals.task_failed.connect(capture_failure, dispatch_uid="django_qtasks.sentry")
    if not _connected:
        add_global_event_processor(drop_failure_lines)
        _connected = True


def capture_failure(
    sender: Any, task: Task, exception: BaseException | None, traceback: str, **kwargs: Any
) -> None:
    """The receiver: the task's exception, with the task in its tags and context."""
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("qtasks.task_name", task.task_name)
        scope.set_tag("qtasks.task_uuid", str(task.uuid))
        scope.set_tag("qtasks.attempt", str(task.attempts))
        scope.set_tag("qtasks.queue", task.queue)
        scope.set_context(
            "qtasks task",
            {
                "uuid": str(task.uuid),
                "task_name": task.task_name,
                "attempt": task.attempts,
                "max_attempts": task.max_attempts,
                "queue": task.queue,
                "tags": list(task.tags or []),
                "worker": task.worker,
            },
        )
        for tag in task.tags or []:
            scope.set_tag(f"qtasks.tag.{tag}", "yes")
        if exception is not None:
            sentry_sdk.capture_exception(exception)
        else:  # not an exception of the task's code (e.g. a result the database refused)
            summary = traceback.strip().splitlines()[-1] if traceback.strip() else ""
            sentry_sdk.capture_message(f"Task {task.task_name} failed: {summary}", level="error")


def drop_failure_lines(event: Event, hint: dict[str, Any]) -> Event | None:
    """Drop the worker's "failed" log line: ``capture_failure`` sent that failure."""
    logentry: Any = event.get("logentry") or {}
    if event.get("logger") == WORKER_LOGGER and logentry.get("message") == FAILURE_LINE:
        return None
    return event
