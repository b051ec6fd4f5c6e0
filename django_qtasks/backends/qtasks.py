"""``QTasksBackend``: django.tasks tasks as django-qtasks Task rows.

``enqueue`` writes one row per call, named by the function's module path and
marked with ``extra["django_task"]``; ``qtasks_worker`` runs it (see
``runner.py``), and the admin and the API show and cancel it like any task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.apps import apps
from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured
from django.tasks import Task as DjangoTask  # type: ignore[import-untyped]
from django.tasks.backends.base import BaseTaskBackend  # type: ignore[import-untyped]
from django.tasks.exceptions import (  # type: ignore[import-untyped]
    InvalidTask,
    TaskResultDoesNotExist,
)
from django.tasks.signals import task_enqueued  # type: ignore[import-untyped]
from django.utils.json import normalize_json  # type: ignore[import-untyped]

from django_qtasks.backends.config import BackendConfig, Problem, read_config
from django_qtasks.backends.results import (
    backend_alias,
    load_task,
    marker,
    qtasks_priority,
    to_result,
)
from django_qtasks.signatures import call_shape
from django_qtasks.validation import is_max_time, is_retry


@dataclass(frozen=True, slots=True, kw_only=True)
class QTasksTask(DjangoTask):
    """A django.tasks Task with django-qtasks' own options.

    On Django 6.1+, ``@task(retry=3, retry_on_exc=[KeyError], max_time=60,
    tags=["mail"])`` makes one when the task's backend is a QTasksBackend.
    None means: the backend's ``OPTIONS`` decide.
    """

    retry: int | None = None
    retry_on_exc: Sequence[type[BaseException]] | None = None
    max_time: float | None = None
    tags: Sequence[str] | None = None

    def __post_init__(self) -> None:
        # Tuples, not lists: a Task is frozen, and hashable like Django's.
        for name in ("retry_on_exc", "tags"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        DjangoTask.__post_init__(self)  # not super(): slots=True makes a new class


@dataclass(frozen=True)
class RunOptions:
    """What a task gets from its own options and its backend's OPTIONS."""

    retry: int
    retry_on_exc: list[type[BaseException]]
    max_time: float | None
    tags: list[str]


class QTasksBackend(BaseTaskBackend):
    task_class = QTasksTask

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        self.config: BackendConfig = read_config(alias, params)
        # Django's own __init__ would take a str QUEUES for a set of letters.
        super().__init__(alias, {**params, "QUEUES": sorted(self.config.queues)})

    # Validation -------------------------------------------------------------

    def validate_task(self, task: Any) -> None:
        super().validate_task(task)
        self.run_options(task)  # raises InvalidTask for a bad retry, max_time, ...

    def run_options(self, task: Any) -> RunOptions:
        """The task's retry, retry_on_exc, max_time and tags, with OPTIONS as defaults."""
        where = f"Task {task.module_path!r}"
        retry = _own(task, "retry", self.config.retry)
        if not is_retry(retry):
            raise InvalidTask(f"{where}: retry must be an int >= 0, not {retry!r}.")
        retry_on_exc = _own(task, "retry_on_exc", ())
        if not isinstance(retry_on_exc, (list, tuple)) or not all(
            isinstance(e, type) and issubclass(e, BaseException) for e in retry_on_exc
        ):
            raise InvalidTask(
                f"{where}: retry_on_exc must list exception classes, not {retry_on_exc!r}."
            )
        max_time = _own(task, "max_time", self.config.max_time)
        if not is_max_time(max_time):
            raise InvalidTask(
                f"{where}: max_time must be a positive, finite number of seconds, not {max_time!r}."
            )
        tags = _own(task, "tags", self.config.tags)
        if isinstance(tags, str) or not all(isinstance(tag, str) for tag in tags):
            raise InvalidTask(f"{where}: tags must be a list of strings, not {tags!r}.")
        return RunOptions(retry, list(retry_on_exc), max_time, list(tags))

    def check(self, **kwargs: Any) -> list[CheckMessage]:
        return [
            Error(problem.message, hint=problem.hint, id=problem.id) for problem in self.problems()
        ]

    def problems(self) -> list[Problem]:
        problems = list(self.config.problems)
        if not apps.is_installed("django_qtasks"):
            problems.append(
                Problem(
                    "django_qtasks.E105",
                    f"TASKS[{self.alias!r}] uses the QTasks backend, but 'django_qtasks' is "
                    "not in INSTALLED_APPS.",
                    "Add 'django_qtasks' to INSTALLED_APPS and run migrate: its tables store "
                    "the tasks.",
                )
            )
        return problems

    def require_valid_config(self) -> None:
        problems = self.problems()
        if problems:
            raise ImproperlyConfigured(
                " ".join(f"({problem.id}) {problem.message}" for problem in problems)
            )

    # Enqueueing and results -------------------------------------------------

    def enqueue(self, task: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        from django_qtasks import app
        from django_qtasks.models import Task

        self.require_valid_config()
        self.validate_task(task)
        options = self.run_options(task)
        name = task.module_path
        # As for every task: arguments that do not fit the function are refused here
        # (TaskSignatureError, a TypeError), not at the run. Not ``context``: the worker gives it.
        shape = call_shape(task.func, name, skip_first=task.takes_context)
        if shape is not None:
            shape.check(args, kwargs)
        record = Task.new(
            name,
            args,
            kwargs,
            priority=qtasks_priority(task.priority),
            queue=task.queue_name,
            extra=marker(self.alias),
            tags=options.tags,
            max_attempts=options.retry + 1,
            run_after=task.run_after,
        )
        # As the worker will read them: tuples as lists, keys as strings.
        record.args, record.kwargs = normalize_json(record.args), normalize_json(record.kwargs)
        app.submit(record)
        result = to_result(record, task)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> Any:
        from django_qtasks.models import Task, task_db

        try:
            uuid = UUID(str(result_id))
        except ValueError:
            raise TaskResultDoesNotExist(result_id) from None
        record = Task.objects.using(task_db()).filter(pk=uuid).first()
        # Rows of qtasks tasks, or of another alias, are not this backend's results.
        if record is None or backend_alias(record) != self.alias:
            raise TaskResultDoesNotExist(result_id)
        return to_result(record, load_task(record))


def _own(task: Any, name: str, default: Any) -> Any:
    value = getattr(task, name, None)
    return default if value is None else value
