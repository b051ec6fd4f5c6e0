"""Tasks the tests run in real worker processes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from datetime import timedelta
from typing import Any

from django_qtasks import AsyncTask, SyncTask, app, shared_task, task


@task
def echo(value: Any) -> Any:
    return value


@task
async def async_echo(value: Any) -> Any:
    await asyncio.sleep(0)
    return value


@app.task(echo=True)
def record_order(self: SyncTask, label: str) -> str:
    return label


@shared_task(name="renamed.shared")
def shared(value: int, note: Any = None) -> int:
    return value * 2


@app.task(echo=True)
async def ctx_report(self: AsyncTask) -> dict[str, Any]:
    """Report what the context answers inside a real run."""
    logger = self.ctx.get_logger()
    logger.info("ctx report for %s", self.ctx.task_uuid)
    record = await self.ctx.get_metadata()
    same = await self.ctx.get_task(self.ctx.task_uuid)
    return {
        "task_uuid": str(self.ctx.task_uuid),
        "task_name": self.ctx.task_name,
        "logger": logger.logger.name,
        "config_greeting": self.ctx.get_config()["GREETING"],
        "config_queue": self.ctx.get_config()["DEFAULT_QUEUE"],
        "components": {
            name: type(self.ctx.get_component(name)).__name__
            for name in ("app", "broker", "config", "storage", "worker")
        },
        "metadata_status": record.status,
        "get_task_same": same is not None and same.uuid == record.uuid,
        "get_task_missing": await self.ctx.get_task("00000000-0000-0000-0000-000000000000"),
    }


@app.task(echo=True)
def sync_ctx_report(self: SyncTask) -> dict[str, Any]:
    record = self.ctx.get_metadata()
    self.ctx.get_logger("custom.logger").warning("sync line")
    return {
        "task_uuid": str(self.ctx.task_uuid),
        "metadata_status": record.status,
        "attempts": record.attempts,
        "thread": threading.current_thread().name,
        "get_task_same": self.ctx.get_task(str(self.ctx.task_uuid)).uuid == record.uuid,
    }


@app.task(echo=True)
async def async_sleeper(self: AsyncTask, seconds: float) -> str:
    self.ctx.get_logger().info("going to sleep")
    await self.ctx.sleep(seconds)
    return "woke up"


@app.task(echo=True)
def sync_sleeper(self: SyncTask, seconds: float) -> str:
    self.ctx.get_logger().info("going to sleep")
    self.ctx.sleep(seconds)
    return "woke up"


@app.task(echo=True)
def wait_for_file(self: SyncTask, path: str) -> str:
    """Runs until ``path`` exists: a long run that ends when the test says so."""
    self.ctx.get_logger().info("waiting for %s", path)
    while not os.path.exists(path):
        self.ctx.sleep(0.02)
    return "released"


@app.task(echo=True)
async def async_wait_for_file(self: AsyncTask, path: str) -> str:
    """``wait_for_file``, as a coroutine."""
    self.ctx.get_logger().info("waiting for %s", path)
    while not os.path.exists(path):
        await self.ctx.sleep(0.02)
    return "released"


@task
def sync_busy(seconds: float) -> str:
    """Ignores cancel requests: never calls ctx.sleep (pure Python loop)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sum(range(1000))
    return "finished"


@app.task(echo=True)
def sync_blocked(self: SyncTask, seconds: float) -> str:
    """Blocked in C for ``seconds``: nothing can stop it sooner."""
    self.ctx.get_logger().info("blocking")
    time.sleep(seconds)
    return "slept"


@task
async def async_blocks_loop(seconds: float) -> str:
    """A coroutine that blocks the worker's event loop (the bug it should be told of)."""
    time.sleep(seconds)
    return "unblocked"


@app.task(max_time=0.5)
async def async_too_slow() -> str:
    await asyncio.sleep(10)
    return "never"


@app.task(max_time=0.5)
def sync_too_slow() -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sum(range(1000))
    return "never"


@app.task(echo=True, retry=3, retry_on_exc=[KeyError])
def retry_keyerror(self: SyncTask, fail_times: int) -> int:
    attempts = self.ctx.get_metadata().attempts
    if attempts <= fail_times:
        raise KeyError(f"attempt {attempts}")
    return attempts


@app.task(retry=3, retry_on_exc=[KeyError])
def retry_wrong_exc(previous: Any = None) -> None:
    raise ValueError("not retried")


@app.task(echo=True, retry=2)
async def retry_any(self: AsyncTask) -> None:
    raise RuntimeError(f"attempt {(await self.ctx.get_metadata()).attempts}")


@app.task(decode=json.dumps)
def decoded() -> dict[str, int]:
    return {"a": 1}


@app.task(decode=lambda value: value["missing"])
def bad_decode() -> dict[str, int]:
    return {"a": 1}


@task
def not_json() -> object:
    return object()


@app.task(generate_handler=lambda item: item * 10)
def sync_gen(count: int) -> Any:
    yield from range(count)


async def _async_handler(item: int) -> str:
    return f"item-{item}"


@app.task(echo=True, generate_handler=_async_handler)
async def async_gen(self: AsyncTask, count: int) -> Any:
    for number in range(count):
        await self.ctx.sleep(0.01)
        yield number


@app.task(echo=True)
def slow_gen(self: SyncTask, count: int, pause: float) -> Any:
    for number in range(count):
        self.ctx.sleep(pause)
        yield number


def add_one_before(task: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return [args[0] + 1], kwargs


async def double_after(task: Any, result: Any) -> Any:
    return result * 2


@app.task(middlewares_before=[add_one_before], middlewares_after=[double_after])
def with_middlewares(value: int) -> int:
    return value


@app.task(echo=True, tags=["a", "b"], priority=3, description="Shows its options", color="blue")
def options_report(self: SyncTask) -> dict[str, Any]:
    return {
        "task_name": self.task_name,
        "priority": self.priority,
        "tags": self.tags,
        "description": self.description,
        "extra": self.extra,
        "echo": self.echo,
        "queue": self.queue,
        "middlewares": len(self.middlewares),
    }


@app.task(queue="other")
def on_other_queue() -> str:
    return "other"


@app.task(echo=True)
async def spawns_child(self: AsyncTask, value: int) -> str:
    by_handle = await echo_child.aadd_task(value)
    by_name = await self.add_task(value + 1, task_name="echo_child")
    return f"{by_handle.uuid}|{by_name.uuid}"


@task
def echo_child(value: int) -> int:
    return value


@task
def returns_nan() -> float:
    return float("nan")


# Autodiscovery imports this module only: bring in the other test task modules.
import tests.testapp.tasks_backend  # noqa: E402, F401  (django.tasks tasks, Django 6+)
from tests.testapp import (  # noqa: E402, F401
    tasks_lifecycle,
    tasks_params,
    tasks_qtcore,
    tasks_testing,
    tasks_tracing,
    tasks_unstorable,
)


@task
def push(value: Any, items: list[Any]) -> list[Any]:
    """A chain step: ``items`` is the previous step's result (the last argument)."""
    return [*items, value]


@task
def fails_with(message: str, previous: Any = None) -> None:
    raise ValueError(message)


@app.task(schedule=timedelta(hours=1))
def hourly() -> str:
    return "hourly"


@app.task(echo=True)
def log_line(self: SyncTask, message: str) -> int:
    self.ctx.get_logger().info(message)
    return len(message)


@app.task(echo=True)
def log_config(self: SyncTask) -> dict[str, Any]:
    """The seed example's line: task code logs its config at INFO, and returns it."""
    config = self.ctx.get_config()
    self.ctx.get_logger().info(config)
    return config


#: What ``leak`` keeps: memory that its worker process never gives back.
_leaked: list[bytes] = []


@task
def leak(megabytes: int) -> int:
    """Keep ``megabytes`` of touched memory for the process's life; its pid."""
    _leaked.append(b"x" * (megabytes * 1024 * 1024))
    return os.getpid()


@task
def process_id(pause: float = 0.0) -> int:
    """The pid of the worker process that ran it."""
    time.sleep(pause)
    return os.getpid()


@task
def cpu_bound(n: int) -> int:
    return sum(range(n))


@task
def module_loaded(name: str) -> bool:
    """Whether the worker process that runs it has imported the module ``name``."""
    return name in sys.modules
