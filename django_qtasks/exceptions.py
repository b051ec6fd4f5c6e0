"""Errors raised by django-qtasks. All derive from :class:`QTasksError`."""

from __future__ import annotations


class QTasksError(Exception):
    """Base class of every django-qtasks error."""


class UnknownTask(QTasksError, LookupError):
    """No task is registered under the given name."""


class DuplicateTask(QTasksError, ValueError):
    """A second task was registered under a name already taken."""


class TaskArgumentsError(QTasksError, TypeError):
    """Task arguments (or extra options) are not JSON, or do not fit the task's function."""


class TaskSignatureError(TaskArgumentsError):
    """A call's arguments do not fit the task's function: refused at enqueue.

    ``field`` is where the mistake is, ``"args"`` or ``"kwargs"`` (the API
    reports it under that key), and ``parameters`` the names it is about.
    """

    def __init__(self, message: str, *, field: str, parameters: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.field = field
        self.parameters = parameters


class BrokerError(QTasksError):
    """The broker could not be reached or refused a message."""


class TaskCancel(QTasksError):
    """Raised inside a task to end it with status ``cancel``.

    ``self.ctx.cancel(reason)`` raises it; a cancel requested from outside
    raises it at the task's next ``ctx.sleep`` or ``ctx.checkpoint``.
    """

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class TaskInterrupted(QTasksError):
    """The worker stopped this run before it ended.

    Raised at the task's next ``ctx.sleep`` or ``ctx.checkpoint`` (or, after
    a grace period, at its next Python instruction) when the worker shuts
    down past its shutdown timeout, or when another worker took the task
    over. The run is not recorded as the task's outcome.
    """


class TaskTimeout(QTasksError, TimeoutError):
    """The task ran longer than its ``max_time``."""


class WaitTimeout(QTasksError, TimeoutError):
    """``add_task(timeout=...)`` gave up before the task ended."""


class ResultError(QTasksError):
    """The task's return value could not be decoded or stored as JSON."""


class InvalidSchedule(QTasksError, ValueError):
    """A periodic schedule is malformed: a bad cron expression or interval."""
