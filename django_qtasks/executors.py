"""QTasks-shaped task executors: ``executor=`` classes built as QTasks builds them.

``BaseTaskExecutor(task_func, task_broker, log=None, plugins=None)`` with
``execute(decode=True)`` and its steps (``execute_middlewares_before``,
``before_execute``, ``run_task``, ``after_execute``,
``execute_middlewares_after``, ``decode``): subclass ``SyncTaskExecutor`` or
``AsyncTaskExecutor`` and override a step. The worker builds one per run, in
the run (a constructor that raises fails that task, with its traceback), and
keeps what is its own: max_time, cancel, retry, storing the result.
``django_qtasks.worker.executor.TaskExecutor`` subclasses work as before.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from django_qtasks.awaitables import aresolve, resolve


@dataclass
class TaskExecSchema:
    """The registered task, with QTasks' field names; ``task`` is this run's ``self``."""

    priority: int
    name: str
    func: Any
    awaiting: bool = False
    generating: str | bool = False
    echo: bool = False
    max_time: float | None = None
    retry: int | None = None
    retry_on_exc: list[type[BaseException]] | None = None
    decode: Any = None
    tags: list[str] | None = None
    description: str | None = None
    generate_handler: Any = None
    executor: Any = None
    middlewares_before: list[Any] = field(default_factory=list)
    middlewares_after: list[Any] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    task: Any = None


@dataclass
class TaskPrioritySchema:
    """The queued run, with QTasks' field names."""

    priority: int
    uuid: UUID
    name: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0


def task_exec_schema(handle: Any, task: Any) -> TaskExecSchema:
    """``handle`` as QTasks' TaskExecSchema; ``task`` is the run's ``self``."""
    generating: str | bool = False
    if handle.is_generator:
        generating = "async" if handle.is_async else "sync"
    return TaskExecSchema(
        priority=handle.priority,
        name=handle.task_name,
        func=handle.func,
        awaiting=inspect.iscoroutinefunction(handle.func),
        generating=generating,
        echo=handle.echo,
        max_time=handle.max_time,
        retry=handle.retry,
        retry_on_exc=handle.retry_on_exc,
        decode=handle.decode,
        tags=handle.tags,
        description=handle.description,
        generate_handler=handle.generate_handler,
        executor=handle.executor,
        middlewares_before=handle.middlewares_before,
        middlewares_after=handle.middlewares_after,
        extra=handle.extra,
        task=task,
    )


def task_priority_schema(record: Any) -> TaskPrioritySchema:
    """A Task row as QTasks' TaskPrioritySchema."""
    return TaskPrioritySchema(
        priority=record.priority,
        uuid=record.uuid,
        name=record.task_name,
        args=list(record.args),
        kwargs=dict(record.kwargs),
        created_at=record.created_at.timestamp() if record.created_at else 0.0,
        updated_at=record.updated_at.timestamp() if record.updated_at else 0.0,
    )


class BaseTaskExecutor:
    def __init__(
        self,
        task_func: TaskExecSchema,
        task_broker: TaskPrioritySchema,
        log: logging.Logger | None = None,
        plugins: dict[str, list[Any]] | None = None,
    ) -> None:
        self.task_func = task_func
        self.task_broker = task_broker
        self._args: list[Any] = list(task_broker.args)
        self._kwargs: dict[str, Any] = dict(task_broker.kwargs)
        self._result: Any = None
        self.echo: Any = None
        self.log = log or logging.getLogger(f"django_qtasks.executor.{type(self).__name__}")
        self.plugins = plugins or {}

    def _middlewares(self, middlewares: list[Any]) -> Any:
        """Build and call each middleware; the executor to go on with."""
        executor = self
        for middleware in middlewares:
            replaced = resolve(middleware(executor)())
            if replaced is not None:
                executor = replaced
        return executor

    def _take(self, other: Any) -> None:
        if other is not self:
            self._args, self._kwargs, self._result = other._args, other._kwargs, other._result

    def execute_middlewares_before(self) -> Any:
        self._take(self._middlewares(self.task_func.middlewares_before))

    def execute_middlewares_after(self) -> Any:
        self._take(self._middlewares(self.task_func.middlewares_after))

    def before_execute(self) -> Any:
        if self.task_func.echo:
            self.echo = self.task_func.task
            self._args.insert(0, self.echo)

    def after_execute(self) -> Any:
        return None

    def run_task(self) -> Any:
        result = resolve(self.task_func.func(*self._args, **self._kwargs))
        if inspect.isgenerator(result):
            handler = self.task_func.generate_handler
            return [resolve(handler(item)) if handler else item for item in result]
        return result

    def decode(self) -> Any:
        decode = self.task_func.decode
        return resolve(decode(self._result)) if decode is not None else self._result

    def execute(self, decode: bool = True) -> Any:
        self.execute_middlewares_before()
        self.before_execute()
        self._result = self.run_task()
        self.after_execute()
        self.execute_middlewares_after()
        if decode:
            self._result = self.decode()
        return self._result


class SyncTaskExecutor(BaseTaskExecutor):
    """Runs in a worker thread."""


class AsyncTaskExecutor(BaseTaskExecutor):
    """Runs on the worker's event loop; its steps are coroutines."""

    async def _amiddlewares(self, middlewares: list[Any]) -> Any:
        executor: Any = self
        for middleware in middlewares:
            replaced = await aresolve(middleware(executor)())
            if replaced is not None:
                executor = replaced
        return executor

    async def execute_middlewares_before(self) -> Any:
        self._take(await self._amiddlewares(self.task_func.middlewares_before))

    async def execute_middlewares_after(self) -> Any:
        self._take(await self._amiddlewares(self.task_func.middlewares_after))

    async def before_execute(self) -> Any:
        super().before_execute()

    async def after_execute(self) -> Any:
        return None

    async def run_task(self) -> Any:
        result = await aresolve(self.task_func.func(*self._args, **self._kwargs))
        handler = self.task_func.generate_handler
        if inspect.isasyncgen(result):
            return [await aresolve(handler(item)) if handler else item async for item in result]
        if inspect.isgenerator(result):
            return [await aresolve(handler(item)) if handler else item for item in result]
        return result

    async def decode(self) -> Any:
        decode = self.task_func.decode
        return await aresolve(decode(self._result)) if decode is not None else self._result

    async def execute(self, decode: bool = True) -> Any:
        await self.execute_middlewares_before()
        await self.before_execute()
        self._result = await self.run_task()
        await self.after_execute()
        await self.execute_middlewares_after()
        if decode:
            self._result = await self.decode()
        return self._result


__all__ = [
    "AsyncTaskExecutor",
    "BaseTaskExecutor",
    "SyncTaskExecutor",
    "TaskExecSchema",
    "TaskPrioritySchema",
]
