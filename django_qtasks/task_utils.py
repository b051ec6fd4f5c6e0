"""Chains of pre-built tasks, waited for by the caller, as QTasks' task utils.

``await AsyncTaskUtils.chain(add(2, 2), add(4), add(8)).get(timeout=100)``
enqueues each pre-built task once the one before it has ended, with that
one's result appended to its arguments, and returns the list of ended
tasks (None for a wait that expired, after which the chain goes on with no
result to append, as in QTasks). The caller waits for every step; for a
chain that runs on its own, in the workers, see ``django_qtasks.chains``.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django_qtasks.models import Task
    from django_qtasks.task_cls import BaseTaskCls


def prepared(task_cls: BaseTaskCls, timeout: float, previous: Any, first: bool) -> BaseTaskCls:
    if not task_cls.timeout:
        task_cls.timeout = timeout
    if not first and previous is not None:
        task_cls.args = (*task_cls.args, previous)
    return task_cls


class SyncChain:
    def __init__(self, *tasks: BaseTaskCls) -> None:
        self.tasks = tasks

    def get(self, timeout: float = 50.0) -> list[Task | None]:
        results: list[Task | None] = []
        previous = None
        for index, task_cls in enumerate(self.tasks):
            task = prepared(task_cls, timeout, previous, index == 0).add_task()
            previous = task.returning if task is not None else None
            results.append(task)
        return results


class AsyncChain(SyncChain):
    async def get(self, timeout: float = 50.0) -> list[Task | None]:  # type: ignore[override]
        results: list[Task | None] = []
        previous = None
        for index, task_cls in enumerate(self.tasks):
            task = prepared(task_cls, timeout, previous, index == 0).add_task()
            if inspect.isawaitable(task):
                task = await task
            previous = task.returning if task is not None else None
            results.append(task)
        return results


class SyncTaskUtils:
    @staticmethod
    def chain(*tasks: BaseTaskCls) -> SyncChain:
        return SyncChain(*tasks)


class AsyncTaskUtils:
    @staticmethod
    def chain(*tasks: BaseTaskCls) -> AsyncChain:
        return AsyncChain(*tasks)


__all__ = ["AsyncChain", "AsyncTaskUtils", "SyncChain", "SyncTaskUtils"]
