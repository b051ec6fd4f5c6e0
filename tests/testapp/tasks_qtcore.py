"""Tasks written as QTasks programs write them: the async app, QTasks-shaped
middlewares and executors, pre-built tasks (tests/test_qtasks_core.py)."""

from __future__ import annotations

import json
from typing import Any

from django_qtasks import app
from django_qtasks.asyncio import app as async_app
from django_qtasks.executors import AsyncTaskExecutor, SyncTaskExecutor
from django_qtasks.middlewares import TaskMiddleware
from django_qtasks.task import AsyncTask, SyncTask
from django_qtasks.worker.executor import TaskExecutor


@async_app.task("qt_named", echo=True)
async def qt_async_report(self: AsyncTask, value: Any) -> dict[str, Any]:
    self.ctx.get_logger("mailer").info("sub line %s", value)
    first = await self.ctx.get_metadata()
    again = await self.ctx.get_metadata()
    fresh = await self.ctx.get_metadata(cache=False)
    return {
        "self": type(self).__name__,
        "value": value,
        "cached_is_same": first is again,
        "fresh_is_new": fresh is not first and fresh.uuid == first.uuid,
        "status": fresh.status,
    }


@async_app.task(echo=True)
def qt_sync_in_async_app(self: SyncTask, value: int) -> list[Any]:
    # A plain def of the async app runs in a thread; its self is a SyncTask.
    return [type(self).__name__, type(self.ctx).__name__, value * 2]


@async_app.task(echo=True)
async def qt_spawner(self: AsyncTask, value: int) -> str:
    child = await qt_sync_in_async_app.add_task(value)
    return str(child.uuid)


@app.task(decode=json.dumps)
def qt_decoded() -> dict[str, int]:
    return {"a": 1}


class AddTen(TaskMiddleware):
    def __call__(self) -> Any:
        self.task_executor._args[0] += 10
        return self.task_executor


class Wrap(TaskMiddleware):
    def __call__(self) -> Any:
        self.task_executor._result = {
            "wrapped": self.task_executor._result,
            "task": self.task_executor.task_func.name,
        }


class AsyncAddTen(TaskMiddleware):
    async def __call__(self) -> Any:
        self.task_executor._args[0] += 10


@app.task(middlewares_before=[AddTen], middlewares_after=[Wrap])
def qt_middlewares(value: int) -> int:
    return value


@app.task(middlewares_before=[AsyncAddTen], middlewares_after=[Wrap])
async def qt_async_middlewares(value: int) -> int:
    return value


class Bracketed(SyncTaskExecutor):
    def after_execute(self) -> None:
        self._result = f"<{self._result}>"


class Tagged(AsyncTaskExecutor):
    async def before_execute(self) -> None:
        await super().before_execute()
        self._kwargs["tag"] = self.task_broker.name


@app.task(executor=Bracketed, echo=True, middlewares_before=[AddTen])
def qt_sync_executor(self: SyncTask, value: int) -> str:
    return f"{self.task_name}:{value}"


@app.task(executor=Tagged)
async def qt_async_executor(value: int, tag: str = "") -> list[Any]:
    return [value, tag]


class TwoArgs(SyncTaskExecutor):
    def __init__(self, task_func: Any, task_broker: Any) -> None:  # QTasks passes four
        super().__init__(task_func, task_broker)


class KeywordsExecutor(SyncTaskExecutor):
    """Takes what it does not name as keywords, which QTasks' workers pass."""

    def __init__(self, task_func: Any, task_broker: Any, log: Any = None, **kwargs: Any) -> None:
        super().__init__(task_func, task_broker, log, **kwargs)
        self.given = sorted(kwargs)

    def execute(self, decode: bool = True) -> Any:
        return [self.given, self.task_broker.name, type(self.plugins).__name__]


class KeywordOnlyExecutor(AsyncTaskExecutor):
    def __init__(self, *, task_func: Any, task_broker: Any, log: Any, plugins: Any) -> None:
        super().__init__(task_func, task_broker, log, plugins)

    async def execute(self, decode: bool = True) -> Any:
        return self.task_func.name


class Unbuildable(TaskExecutor):
    def __init__(self, *args: Any) -> None:
        raise TypeError("this executor cannot be built")


@app.task(executor=TwoArgs)
def qt_two_args_executor() -> str:
    return "never"


@app.task(executor=KeywordsExecutor)
def qt_keywords_executor() -> str:
    return "not run: the executor's execute() answers"


@app.task(executor=KeywordOnlyExecutor)
async def qt_keyword_only_executor() -> str:
    return "not run: the executor's execute() answers"


@app.task(executor=Unbuildable)
async def qt_unbuildable_executor() -> str:
    return "never"
