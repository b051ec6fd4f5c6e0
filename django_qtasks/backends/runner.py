"""How ``qtasks_worker`` runs a django.tasks row.

``QTasksApp.handle_for`` calls :func:`django_task_handle` for a row that the
backend wrote. The handle runs through :class:`DjangoTaskExecutor`, our usual
pipeline (retries, max_time, cancel) plus what django.tasks promises: a
``TaskContext`` first argument for ``takes_context`` tasks, and the
``task_started`` / ``task_finished`` signals, sent from a task thread where
the ORM may be used.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.tasks import TaskContext  # type: ignore[import-untyped]
from django.tasks.signals import task_finished, task_started  # type: ignore[import-untyped]
from django.utils.json import normalize_json  # type: ignore[import-untyped]

from django_qtasks.backends.qtasks import QTasksBackend
from django_qtasks.backends.results import load_task, to_result
from django_qtasks.exceptions import ResultError
from django_qtasks.models import FINAL_STATUSES, Task, TaskStatus, task_db
from django_qtasks.task import BaseTask, handle_class_for
from django_qtasks.worker.executor import Outcome, TaskExecutor

if TYPE_CHECKING:
    from collections.abc import Callable

    from django_qtasks.app import QTasksApp

logger = logging.getLogger("django_qtasks.worker")


def django_task_handle(app: QTasksApp, record: Task) -> BaseTask:
    """A handle (not registered) that runs the row's django.tasks function."""
    task = load_task(record)
    backend = task.get_backend()
    if not isinstance(backend, QTasksBackend):
        raise ImproperlyConfigured(
            f"Task {record.uuid} was enqueued through TASKS[{task.backend!r}], which is "
            f"{type(backend).__name__} in this worker, not QTasksBackend. Give the worker "
            "the same TASKS setting as the processes that enqueue."
        )
    options = backend.run_options(task)
    return handle_class_for(task.func)(
        app,
        task.func,
        name=record.task_name,
        retry=options.retry,
        retry_on_exc=options.retry_on_exc,
        max_time=options.max_time,
        tags=options.tags,
        executor=DjangoTaskExecutor,
    )


class DjangoTaskExecutor(TaskExecutor):
    django_task: Any = None
    #: This attempt's TaskResult (RUNNING), once ``task_started`` was sent.
    task_result: Any = None

    async def execute(self) -> Outcome:
        self.django_task = load_task(self.record)
        result = to_result(self.record, self.django_task)
        await self.run_in_thread(
            self.thread_main, functools.partial(self.send, task_started, result)
        )
        self.task_result = result
        return await super().execute()

    async def outcome_saved(self, outcome: Outcome) -> None:
        # A failed attempt that will be retried has not finished: the next
        # attempt sends task_started again.
        if self.task_result is None or outcome.status == TaskStatus.RETRY:
            return
        try:
            await self.run_in_thread(self.thread_main, self.send_finished)
        except Exception:
            logger.exception("Could not send task_finished for task %s", self.record.uuid)

    def send_finished(self) -> None:
        record = Task.objects.using(task_db()).filter(pk=self.record.pk).first()
        if record is not None and record.status in FINAL_STATUSES:
            self.send(task_finished, to_result(record, self.django_task))

    def send(self, signal: Any, task_result: Any) -> None:
        """Send like Django's backends; a failing receiver is logged, the task goes on."""
        sender = type(self.django_task.get_backend())
        for receiver, response in signal.send_robust(sender, task_result=task_result):
            if isinstance(response, Exception):
                logger.error(
                    "Receiver %r of a django.tasks signal failed for task %s",
                    receiver,
                    self.record.uuid,
                    exc_info=response,
                )

    # The pipeline: a TaskContext first, Django's JSON normalisation last ------

    def before(self, resolver: Callable[[Any], Any]) -> tuple[list[Any], dict[str, Any]]:
        args, kwargs = super().before(resolver)
        return self.with_context(args), kwargs

    async def abefore(self) -> tuple[list[Any], dict[str, Any]]:
        args, kwargs = await super().abefore()
        return self.with_context(args), kwargs

    def with_context(self, args: list[Any]) -> list[Any]:
        if self.django_task.takes_context:
            return [TaskContext(task_result=self.task_result), *args]
        return args

    def store(self, value: Any) -> Any:
        try:
            value = normalize_json(value)
        except (TypeError, ValueError) as exc:
            raise ResultError(
                f"The task's return value is not JSON ({exc}); return plain values "
                "(str, int, float, bool, None, list, dict)."
            ) from exc
        return super().store(value)
