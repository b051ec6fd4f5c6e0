"""Tasks for tests/test_params.py and tests/test_context.py (run by real worker processes).

Most behaviours come as a quartet: a sync function, an async function, a sync
generator and an async generator, named ``<prefix>_<kind>`` (kinds in KINDS),
so each test can run the same check on all four.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from typing import Any
from uuid import UUID

import django_qtasks
from django_qtasks import AsyncTask, SyncTask, app, task
from django_qtasks.worker.executor import TaskExecutor

KINDS = ("sync", "async", "sync_gen", "async_gen")
MISSING_UUID = "00000000-0000-0000-0000-000000000000"


# --- name, priority, echo, tags, description, extra, retry/max_time on self ---

OPTIONS: dict[str, Any] = {
    "echo": True,
    "priority": 4,
    "tags": ["params", "options"],
    "retry": 2,
    "retry_on_exc": [KeyError, ValueError],
    "max_time": 30,
    # Not an option: goes to self.extra and the record's extra.
    "owner": "team-a",
    "limits": {"rows": 10},
}


def _options(self: Any) -> dict[str, Any]:
    return {
        "class": type(self).__name__,
        "task_name": self.task_name,
        "ctx_task_name": self.ctx.task_name,
        "priority": self.priority,
        "echo": self.echo,
        "tags": self.tags,
        "description": self.description,
        "extra": self.extra,
        "queue": self.queue,
        "max_time": self.max_time,
        "retry": self.retry,
        "retry_on_exc": [exc.__name__ for exc in self.retry_on_exc],
    }


@app.task(name="params.options.sync", description="Sync options", **OPTIONS)
def params_options_sync(self: SyncTask, value: Any) -> Any:
    return {"value": value, **_options(self)}


@app.task(name="params.options.async", **OPTIONS)
async def params_options_async(self: AsyncTask, value: Any) -> Any:
    """Async options, described by this docstring.

    Only the first line is the description.
    """
    await asyncio.sleep(0)
    return {"value": value, **_options(self)}


@app.task(name="params.options.sync_gen", description="Sync generator options", **OPTIONS)
def params_options_sync_gen(self: SyncTask, value: Any) -> Any:
    yield value
    yield _options(self)


@app.task(name="params.options.async_gen", description="Async generator options", **OPTIONS)
async def params_options_async_gen(self: AsyncTask, value: Any) -> Any:
    yield value
    await asyncio.sleep(0)
    yield _options(self)


# --- echo off: the function gets only its own arguments -----------------------


@task
def params_plain_sync(a: Any, b: Any = None) -> Any:
    return [a, b]


@task
async def params_plain_async(a: Any, b: Any = None) -> Any:
    await asyncio.sleep(0)
    return [a, b]


@task
def params_plain_sync_gen(a: Any, b: Any = None) -> Any:
    yield a
    yield b


@task
async def params_plain_async_gen(a: Any, b: Any = None) -> Any:
    yield a
    await asyncio.sleep(0)
    yield b


# --- max_time -----------------------------------------------------------------
# Each takes ``steps`` steps of 0.1 s: few steps end in time, many exceed 0.5 s.


@app.task(echo=True, max_time=0.5)
def params_max_time_sync(self: SyncTask, steps: int) -> str:
    for _ in range(steps):
        self.ctx.sleep(0.1)
    return "in time"


@app.task(max_time=0.5)
async def params_max_time_async(steps: int) -> str:
    for _ in range(steps):
        await asyncio.sleep(0.1)
    return "in time"


@app.task(echo=True, max_time=0.5)
def params_max_time_sync_gen(self: SyncTask, steps: int) -> Any:
    for step in range(steps):
        self.ctx.sleep(0.1)
        yield step


@app.task(max_time=0.5)
async def params_max_time_async_gen(steps: int) -> Any:
    for step in range(steps):
        await asyncio.sleep(0.1)
        yield step


# --- retry and retry_on_exc ---------------------------------------------------
# Fail with ``exc`` while the attempt number is <= fail_times. retry_on_exc
# lists LookupError: KeyError and IndexError (subclasses) are retried,
# ValueError is not.

ERRORS: dict[str, type[Exception]] = {
    "KeyError": KeyError,
    "IndexError": IndexError,
    "ValueError": ValueError,
}
FLAKY = {"echo": True, "retry": 2, "retry_on_exc": [LookupError], "flavour": "flaky"}


def _fail_or_go_on(self: Any, attempt: int, fail_times: int, exc: str) -> None:
    self.ctx.get_logger().info("attempt %s", attempt)
    if attempt <= fail_times:
        raise ERRORS[exc](f"attempt {attempt}")


@app.task(**FLAKY)
def params_flaky_sync(self: SyncTask, fail_times: int, exc: str = "KeyError") -> Any:
    attempt = self.ctx.get_metadata().attempts
    _fail_or_go_on(self, attempt, fail_times, exc)
    return f"a{attempt}"


@app.task(**FLAKY)
async def params_flaky_async(self: AsyncTask, fail_times: int, exc: str = "KeyError") -> Any:
    attempt = (await self.ctx.get_metadata()).attempts
    _fail_or_go_on(self, attempt, fail_times, exc)
    return f"a{attempt}"


@app.task(**FLAKY)
def params_flaky_sync_gen(self: SyncTask, fail_times: int, exc: str = "KeyError") -> Any:
    attempt = self.ctx.get_metadata().attempts
    yield f"a{attempt}-start"
    _fail_or_go_on(self, attempt, fail_times, exc)
    yield f"a{attempt}-end"


@app.task(**FLAKY)
async def params_flaky_async_gen(self: AsyncTask, fail_times: int, exc: str = "KeyError") -> Any:
    attempt = (await self.ctx.get_metadata()).attempts
    yield f"a{attempt}-start"
    _fail_or_go_on(self, attempt, fail_times, exc)
    yield f"a{attempt}-end"


# retry with no retry_on_exc: any exception is retried.


@app.task(retry=2)
def params_retry_any_sync() -> None:
    raise ZeroDivisionError("always")


@app.task(retry=2)
async def params_retry_any_async() -> None:
    raise ZeroDivisionError("always")


@app.task(retry=2)
def params_retry_any_sync_gen() -> Any:
    yield 1
    raise ZeroDivisionError("always")


@app.task(retry=2)
async def params_retry_any_async_gen() -> Any:
    yield 1
    raise ZeroDivisionError("always")


# --- decode -------------------------------------------------------------------


def describe(value: Any) -> str:
    """decode: the result's type and JSON; refuses results that contain "explode"."""
    if "explode" in value:
        raise ValueError("cannot decode an explosion")
    return f"{type(value).__name__}:{json.dumps(value)}"


@app.task(decode=describe, retry=2)
def params_decode_sync(items: list[Any]) -> Any:
    return items


@app.task(decode=describe, retry=2)
async def params_decode_async(items: list[Any]) -> Any:
    await asyncio.sleep(0)
    return items


@app.task(decode=describe, retry=2)
def params_decode_sync_gen(items: list[Any]) -> Any:
    yield from items


@app.task(decode=describe, retry=2)
async def params_decode_async_gen(items: list[Any]) -> Any:
    for item in items:
        yield item


# --- generate_handler ---------------------------------------------------------


def tenfold(item: int) -> int:
    return item * 10


async def alabel(item: int) -> str:
    await asyncio.sleep(0)
    return f"item-{item}"


@app.task(generate_handler=alabel)
def params_gen_sync_ahandler(count: int) -> Any:
    yield from range(count)


@app.task(generate_handler=tenfold)
async def params_gen_async_handler(count: int) -> Any:
    for number in range(count):
        await asyncio.sleep(0)
        yield number


@app.task(echo=True, generate_handler=tenfold)
def params_slow_gen_sync(self: SyncTask, count: int, pause: float) -> Any:
    for number in range(count):
        yield number
        self.ctx.sleep(pause)


@app.task(echo=True, generate_handler=alabel)
async def params_slow_gen_async(self: AsyncTask, count: int, pause: float) -> Any:
    for number in range(count):
        yield number
        await self.ctx.sleep(pause)


# --- executor -----------------------------------------------------------------


class StampingExecutor(TaskExecutor):
    """Stores the result wrapped with its own name: proof that it ran the task."""

    def store(self, value: Any) -> Any:
        stored = super().store(value)
        return {"executor": type(self).__name__, "task": self.task.task_name, "result": stored}


@app.task(echo=True, executor=StampingExecutor)
def params_executor_sync(self: SyncTask, value: Any) -> Any:
    return [value, self.executor.__name__]


@app.task(echo=True, executor=StampingExecutor)
async def params_executor_async(self: AsyncTask, value: Any) -> Any:
    await asyncio.sleep(0)
    return [value, self.executor.__name__]


@app.task(echo=True, executor=StampingExecutor)
def params_executor_sync_gen(self: SyncTask, value: Any) -> Any:
    yield value
    yield self.executor.__name__


@app.task(echo=True, executor=StampingExecutor)
async def params_executor_async_gen(self: AsyncTask, value: Any) -> Any:
    yield value
    yield self.executor.__name__


# --- middlewares_before / middlewares_after -----------------------------------
# before: (x + 1), then (x * 2), then one that keeps the arguments (returns None).
# after: wrapped by a sync middleware, then by an async one.


def add_one(task: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return [args[0] + 1], {**kwargs, "seen_by": [*kwargs.get("seen_by", []), "add_one"]}


async def atimes_two(task: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    await asyncio.sleep(0)
    return [args[0] * 2], {**kwargs, "seen_by": [*kwargs["seen_by"], "atimes_two"]}


def keep_arguments(task: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
    return None


def wrap_after(task: Any, result: Any) -> Any:
    return {"wrap_after": task.task_name, "result": result}


async def awrap_after(task: Any, result: Any) -> Any:
    await asyncio.sleep(0)
    return {"awrap_after": str(task.ctx.task_uuid), "result": result}


MIDDLEWARES: dict[str, Any] = {
    "echo": True,
    "middlewares_before": [add_one, atimes_two, keep_arguments],
    "middlewares_after": [wrap_after, awrap_after],
}


def _names(self: Any) -> list[str]:
    return [middleware.__name__ for middleware in self.middlewares]


@app.task(**MIDDLEWARES)
def params_mw_sync(self: SyncTask, value: int, seen_by: list[str]) -> Any:
    return {"value": value, "seen_by": seen_by, "middlewares": _names(self)}


@app.task(**MIDDLEWARES)
async def params_mw_async(self: AsyncTask, value: int, seen_by: list[str]) -> Any:
    await asyncio.sleep(0)
    return {"value": value, "seen_by": seen_by, "middlewares": _names(self)}


@app.task(**MIDDLEWARES)
def params_mw_sync_gen(self: SyncTask, value: int, seen_by: list[str]) -> Any:
    yield value
    yield seen_by
    yield _names(self)


@app.task(**MIDDLEWARES)
async def params_mw_async_gen(self: AsyncTask, value: int, seen_by: list[str]) -> Any:
    yield value
    yield seen_by
    yield _names(self)


# --- queue --------------------------------------------------------------------


@app.task(echo=True, queue="other")
def params_queue_sync(self: SyncTask) -> Any:
    return [self.queue, self.ctx.get_metadata().queue]


@app.task(echo=True, queue="other")
async def params_queue_async(self: AsyncTask) -> Any:
    return [self.queue, (await self.ctx.get_metadata()).queue]


@app.task(echo=True, queue="other")
def params_queue_sync_gen(self: SyncTask) -> Any:
    yield self.queue
    yield self.ctx.get_metadata().queue


@app.task(echo=True, queue="other")
async def params_queue_async_gen(self: AsyncTask) -> Any:
    yield self.queue
    yield (await self.ctx.get_metadata()).queue


@app.task(queue="params-nobody")
def params_unserved_queue() -> str:
    return "never"


# --- results that are not JSON ------------------------------------------------


@app.task(retry=2)
def params_not_json_sync() -> Any:
    return {"when": object()}


@app.task(retry=2)
async def params_not_json_async() -> Any:
    return {1, 2}


@app.task(retry=2)
def params_not_json_sync_gen() -> Any:
    yield 1
    yield object()


@app.task(retry=2)
async def params_not_json_async_gen() -> Any:
    yield b"bytes"


@app.task(echo=True)
def params_slow_not_json_gen(self: SyncTask, count: int, pause: float) -> Any:
    """Yields a value that is not JSON, slowly: its progress cannot be saved."""
    for _ in range(count):
        yield object()
        self.ctx.sleep(pause)


# =========================== self.ctx ========================================================


def keep_item(item: Any) -> Any:
    return item


PROBE: dict[str, Any] = {"echo": True, "generate_handler": keep_item}


def _probe_report(
    self: Any, in_storage: bool, record: Any, own: Any, other: Any, missing: Any, garbage: Any
) -> Any:
    """What the context answered (database answers are passed in: async needs awaits)."""
    ctx = self.ctx
    unknown = repr(ctx.get_component("scheduler-that-does-not-exist"))
    worker = ctx.get_component("worker")
    config = ctx.get_config()
    return {
        "ctx_class": type(ctx).__name__,
        "task_uuid": str(ctx.task_uuid),
        "task_name": ctx.task_name,
        "generate_handler": getattr(ctx.generate_handler, "__name__", None),
        "config": {
            key: config[key]
            for key in ("GREETING", "BROKER_URL", "DEFAULT_QUEUE", "CONCURRENCY", "POLL_INTERVAL")
        },
        "app_is_the_app": ctx.get_component("app") is django_qtasks.app,
        "app_knows_me": ctx.task_name in ctx.get_component("app").tasks,
        "broker": [type(ctx.get_component("broker")).__name__, ctx.get_component("broker").url],
        "config_component": ctx.get_component("config").GREETING,
        "storage_has_me": in_storage,
        "worker_id": worker.worker_id,
        "worker_runs_me": ctx.task_uuid in worker.running,
        "unknown_component": unknown,
        "metadata": {
            "uuid": str(record.uuid),
            "status": record.status,
            "attempts": record.attempts,
            "args": record.args,
            "worker": record.worker,
        },
        "get_task_own": [str(own.uuid), own.status],
        "get_task_other": [other.task_name, other.returning],
        "get_task_missing": missing,
        "get_task_garbage": garbage,
    }


def _probe_log(self: Any) -> None:
    logger = self.ctx.get_logger()
    logger.debug("debug lines are not kept")
    logger.info("probe %s", self.ctx.task_uuid)
    self.ctx.get_logger("django_qtasks.custom_probe").warning("custom %s", self.ctx.task_name)
    self.ctx.get_logger("outside.probe").error("outside %s", self.ctx.task_name)


def _logger_names(self: Any) -> list[str]:
    return [
        self.ctx.get_logger().logger.name,
        self.ctx.get_logger("django_qtasks.custom_probe").logger.name,
    ]


def _sync_probe(self: SyncTask, other: str, pause: float) -> Any:
    _probe_log(self)
    self.ctx.sleep(pause)
    report = _probe_report(
        self,
        self.ctx.get_component("storage").filter(pk=self.ctx.task_uuid, status="process").exists(),
        self.ctx.get_metadata(),
        self.ctx.get_task(self.ctx.task_uuid),
        self.ctx.get_task(UUID(other)),
        self.ctx.get_task(MISSING_UUID),
        self.ctx.get_task("not-a-uuid"),
    )
    return {**report, "loggers": _logger_names(self)}


async def _async_probe(self: AsyncTask, other: str, pause: float) -> Any:
    _probe_log(self)
    await self.ctx.sleep(pause)
    pending = [
        self.ctx.get_metadata(),
        self.ctx.get_task(self.ctx.task_uuid),
        self.ctx.get_task(other),
        self.ctx.get_task(MISSING_UUID),
        self.ctx.get_task("not-a-uuid"),
    ]
    awaitable = all(inspect.isawaitable(call) for call in pending)
    results = [await call for call in pending]
    storage = self.ctx.get_component("storage")
    in_storage = await storage.filter(pk=self.ctx.task_uuid, status="process").aexists()
    report = _probe_report(self, in_storage, *results)
    return {**report, "loggers": _logger_names(self), "awaitable": awaitable}


@app.task(**PROBE)
def probe_sync(self: SyncTask, other: str, pause: float) -> Any:
    return _sync_probe(self, other, pause)


@app.task(**PROBE)
async def probe_async(self: AsyncTask, other: str, pause: float) -> Any:
    return await _async_probe(self, other, pause)


@app.task(**PROBE)
def probe_sync_gen(self: SyncTask, other: str, pause: float) -> Any:
    yield "first"
    yield _sync_probe(self, other, pause)


@app.task(**PROBE)
async def probe_async_gen(self: AsyncTask, other: str, pause: float) -> Any:
    yield "first"
    yield await _async_probe(self, other, pause)


@app.task(echo=True)
def probe_unknown_component(self: SyncTask) -> Any:
    return self.ctx.get_component("nope")


# --- ctx.sleep, and cancel from outside while sleeping ------------------------

SLEEPER: dict[str, Any] = {"echo": True, "kind": "sleeper"}


@app.task(**SLEEPER)
def probe_sleep_sync(self: SyncTask, seconds: float, label: str = "") -> Any:
    self.ctx.get_logger().info("sleeping %s", seconds)
    self.ctx.sleep(seconds)
    return "woke up"


@app.task(**SLEEPER)
async def probe_sleep_async(self: AsyncTask, seconds: float, label: str = "") -> Any:
    self.ctx.get_logger().info("sleeping %s", seconds)
    await self.ctx.sleep(seconds)
    return "woke up"


@app.task(**SLEEPER)
def probe_sleep_sync_gen(self: SyncTask, seconds: float, label: str = "") -> Any:
    self.ctx.get_logger().info("sleeping %s", seconds)
    yield "before"
    self.ctx.sleep(seconds)
    yield "woke up"


@app.task(**SLEEPER)
async def probe_sleep_async_gen(self: AsyncTask, seconds: float, label: str = "") -> Any:
    self.ctx.get_logger().info("sleeping %s", seconds)
    yield "before"
    await self.ctx.sleep(seconds)
    yield "woke up"


# --- ctx.cancel(reason) -------------------------------------------------------
# retry is set: a cancel must not be retried.

CANCELER: dict[str, Any] = {"echo": True, "retry": 2, "kind": "canceler"}


@app.task(**CANCELER)
def probe_cancel_sync(self: SyncTask, reason: str | None, label: str = "") -> Any:
    self.ctx.get_logger().info("about to cancel")
    if reason is None:
        self.ctx.cancel()
    self.ctx.cancel(reason)
    return "not reached"


@app.task(**CANCELER)
async def probe_cancel_async(self: AsyncTask, reason: str | None, label: str = "") -> Any:
    self.ctx.get_logger().info("about to cancel")
    await asyncio.sleep(0)
    if reason is None:
        self.ctx.cancel()
    self.ctx.cancel(reason)
    return "not reached"


@app.task(**CANCELER)
def probe_cancel_sync_gen(self: SyncTask, reason: str | None, label: str = "") -> Any:
    self.ctx.get_logger().info("about to cancel")
    yield "before"
    if reason is None:
        self.ctx.cancel()
    self.ctx.cancel(reason)
    yield "not reached"


@app.task(**CANCELER)
async def probe_cancel_async_gen(self: AsyncTask, reason: str | None, label: str = "") -> Any:
    self.ctx.get_logger().info("about to cancel")
    yield "before"
    if reason is None:
        self.ctx.cancel()
    self.ctx.cancel(reason)
    yield "not reached"


# --- self.add_task: nested tasks ----------------------------------------------


@task
def probe_child(value: Any) -> Any:
    return {"child": value}


@app.task(echo=True)
def probe_nest_sync(self: SyncTask, depth: int) -> Any:
    if depth == 0:
        return "leaf"
    again = self.add_task(depth - 1)
    named = self.add_task(f"named-{depth}", task_name="probe_child", priority=2, queue="other")
    by_handle = probe_child.add_task(f"handle-{depth}")
    return {"again": str(again.uuid), "named": str(named.uuid), "handle": str(by_handle.uuid)}


@app.task(echo=True)
async def probe_nest_async(self: AsyncTask, depth: int) -> Any:
    if depth == 0:
        return "leaf"
    pending = self.add_task(depth - 1)
    awaitable = inspect.isawaitable(pending)
    again = await pending
    named = await self.add_task(
        f"named-{depth}", task_name="probe_child", priority=2, queue="other"
    )
    by_handle = await probe_child.aadd_task(f"handle-{depth}")
    return {
        "again": str(again.uuid),
        "named": str(named.uuid),
        "handle": str(by_handle.uuid),
        "awaitable": awaitable,
    }


@app.task(echo=True)
def probe_nest_sync_gen(self: SyncTask, depth: int) -> Any:
    if depth == 0:
        yield "leaf"
        return
    yield {"again": str(self.add_task(depth - 1).uuid)}
    named = self.add_task(f"named-{depth}", task_name="probe_child", priority=2, queue="other")
    yield {"named": str(named.uuid)}
    yield {"handle": str(probe_child.add_task(f"handle-{depth}").uuid)}


@app.task(echo=True)
async def probe_nest_async_gen(self: AsyncTask, depth: int) -> Any:
    if depth == 0:
        yield "leaf"
        return
    yield {"again": str((await self.add_task(depth - 1)).uuid)}
    named = await self.add_task(
        f"named-{depth}", task_name="probe_child", priority=2, queue="other"
    )
    yield {"named": str(named.uuid)}
    yield {"handle": str((await probe_child.aadd_task(f"handle-{depth}")).uuid)}
