"""Tasks written for django.tasks (Django 6+): QTasksBackend runs them on qtasks_worker.

Only tasks_backend.py imports this module, and only on Django 6+.
"""

from __future__ import annotations

import asyncio
from typing import Any

import django
from django.tasks import TaskContext, task


class Boom(Exception):
    """Raised by the failing tasks: its class path shows in TaskResult.errors."""


@task
def add(a: int, b: int) -> int:
    return a + b


@task
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@task
def double(value: int) -> int:
    """Also registered as the qtasks task ``backend_double`` (tasks_backend.py)."""
    return value * 2


@task
def record_order(label: str) -> str:
    return label


@task(takes_context=True)
def context_report(context: TaskContext, fail_first: bool) -> dict[str, Any]:
    if fail_first and context.attempt == 1:
        raise Boom("the first attempt fails")
    result = context.task_result
    return {
        "context": type(context).__name__,
        "attempt": context.attempt,
        "id": result.id,
        "status": str(result.status),
        "worker_ids": result.worker_ids,
        "args": result.args,
    }


@task(takes_context=True)
async def async_context_report(context: TaskContext, value: str) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"attempt": context.attempt, "id": context.task_result.id, "value": value}


@task
def fails(message: str) -> None:
    raise Boom(message)


@task
async def sleeper(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "woke up"


@task
def returns_tuple() -> tuple[int, str]:
    return (1, "two")


@task
def returns_object() -> object:
    return object()


@task
def upsets_a_receiver() -> str:
    """A task_started receiver (tasks_backend.py) raises for this task."""
    return "ran anyway"


@task
def signals_probe(fail: bool) -> str:
    """The worker's signal receivers (tasks_backend.py) note their calls on this task's row."""
    if fail:
        raise Boom("probe failed")
    return "probed"


if django.VERSION >= (6, 1):
    # Django 6.1 passes other @task keywords to the backend's task class.

    @task(takes_context=True, retry=2, retry_on_exc=[KeyError], tags=["billing", "urgent"])
    def flaky(context: TaskContext, fail_times: int) -> int:
        if context.attempt <= fail_times:
            raise KeyError(f"attempt {context.attempt}")
        return context.attempt

    @task(retry=2, retry_on_exc=[KeyError])
    def wrong_exception() -> None:
        raise ValueError("not retried")

    @task(max_time=0.5)
    async def too_slow() -> str:
        await asyncio.sleep(10)
        return "never"
