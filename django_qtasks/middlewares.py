"""QTasks-shaped task middlewares: ``from django_qtasks.middlewares import TaskMiddleware``.

A middleware class in ``middlewares_before``/``middlewares_after`` is built
with the run's executor and then called, as in QTasks. Before the task it
may change ``task_executor._args``/``_kwargs``, after it ``_result``; what it
returns, when not None, is the executor to read them from. Plain callables
(``middleware(task, args, kwargs)``) keep working: see docs/tasks.md.
"""

from __future__ import annotations

from typing import Any


class BaseMiddleware:
    def __init__(self, name: str) -> None:
        self.name = name


class TaskMiddleware(BaseMiddleware):
    def __init__(self, task_executor: Any) -> None:
        super().__init__(name=type(self).__name__)
        self.task_executor = task_executor

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return None


__all__ = ["BaseMiddleware", "TaskMiddleware"]
