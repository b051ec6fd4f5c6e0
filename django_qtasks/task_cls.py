"""Pre-built tasks: what calling a handle returns, as in QTasks.

``echo("Hello", timeout=50)`` runs nothing: it keeps the arguments and the
call's options, and ``.add_task()`` enqueues them later (awaited when the
handle's ``add_task`` is a coroutine). The function itself is ``handle.func``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django_qtasks.task import BaseTask


@dataclass
class BaseTaskCls:
    """A task ready to be enqueued: QTasks' ``BaseTaskCls``."""

    task_name: str | None = None
    priority: int | None = None
    timeout: float | None = None
    args: tuple[Any, ...] = field(default_factory=tuple, compare=False)
    kwargs: dict[str, Any] = field(default_factory=dict, compare=False)
    _task_deco: BaseTask | None = field(default=None, init=False, repr=False, compare=False)

    def bind(self, deco: BaseTask) -> None:
        self._task_deco = deco

    def add_task(self) -> Any:
        """Enqueue it: the handle's ``add_task`` with the kept arguments and options."""
        if self._task_deco is None:
            raise RuntimeError(f"{type(self).__name__} is not bound to a task.")
        return self._task_deco.add_task(
            *self.args,
            task_name=self.task_name,
            priority=self.priority,
            timeout=self.timeout,
            **self.kwargs,
        )


class SyncTaskCls(BaseTaskCls):
    """Made by calling a SyncTask: ``.add_task()`` returns the Task."""


class AsyncTaskCls(BaseTaskCls):
    """Made by calling an AsyncTask: ``.add_task()`` is what the handle's is (awaitable
    in the async app and inside a running event loop)."""
