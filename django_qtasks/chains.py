"""Chains: tasks run one after another, each given the previous one's result.

``chain(fetch.s(url), parse.s(), store.s(key="x")).add_task()`` enqueues the
first step. As in QTasks, a step receives the previous step's result as its
last positional argument. The rest of the chain is stored on the running
task's row (``chain_steps``); when a step succeeds, its worker enqueues the
next one in the same transaction that saves the result, linked back through
``chain_previous``. A step that ends in ``error`` or ``cancel`` stops the
chain; the steps that did not run stay listed on its row. Each step's
arguments, with the previous result counted for every step but the first,
are checked against its function when the chain is built (``Chain.check``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.apps import apps

from django_qtasks.exceptions import QTasksError, WaitTimeout
from django_qtasks.registry import default_app

# Step lives with the task handles (``handle.s()`` makes one); importable from here as before.
from django_qtasks.task import BaseTask, Step

if TYPE_CHECKING:
    from django_qtasks.models import Task

__all__ = ["Chain", "Step", "chain", "chain_of", "next_step", "wait_for_chain"]


class Chain:
    def __init__(self, *steps: Step | BaseTask) -> None:
        if not steps:
            raise QTasksError("A chain needs a step at least: chain(add.s(1, 2), double.s()).")
        self.steps = [
            Step(step.task_name) if isinstance(step, BaseTask) else step for step in steps
        ]
        for step in self.steps:
            if not isinstance(step, Step):
                raise TypeError(
                    f"Chain steps are tasks or task.s(...) steps, not {step!r}; e.g. "
                    "chain(add.s(1, 2), double.s())."
                )
        # Once Django is set up: a chain built while the tasks modules are still
        # being imported is checked by add_task, when every task is registered.
        if apps.ready:
            self.check(known_only=True)

    def check(self, *, known_only: bool = False) -> None:
        """Raise TaskSignatureError when a step's arguments do not fit its function.

        A step after the first also receives the previous step's result, as
        its last positional argument. An unknown task raises UnknownTask,
        unless ``known_only``: then it is left to ``add_task``.
        """
        app = default_app()
        for index, step in enumerate(self.steps):
            handle = app.tasks.get(step.task_name) if known_only else app.get_task(step.task_name)
            if handle is not None:
                handle.check_call(
                    step.args, step.kwargs, step=f"chain step {index + 1}", appended=index > 0
                )

    def add_task(self, *, timeout: float | None = None) -> list[Task]:
        """Enqueue the first step; return the chain's tasks so far.

        Without ``timeout`` that is ``[first]``. With it, wait until the chain
        ends (its last step, or a step that failed) and return every step's
        record in order, like QTasks' ``chain.get()``.
        """
        app = default_app()
        # An unknown name or arguments that do not fit fail here, not mid-chain.
        self.check()
        first, *rest = self.steps
        handle = app.get_task(first.task_name)
        start = first.as_json()
        record = app.enqueue(
            handle, start["args"], start["kwargs"], chain_steps=[step.as_json() for step in rest]
        )
        if timeout is None:
            return [record]
        return wait_for_chain(record, timeout)

    async def aadd_task(self, *, timeout: float | None = None) -> list[Task]:
        return await sync_to_async(self.add_task)(timeout=timeout)

    def __repr__(self) -> str:
        return "chain(" + ", ".join(step.task_name for step in self.steps) + ")"


def chain(*steps: Step | BaseTask) -> Chain:
    """A chain of steps: ``chain(add.s(1, 2), double.s(), notify)``."""
    return Chain(*steps)


def next_step(record: Task) -> Task:
    """Enqueue the step after ``record`` (which succeeded) with its result appended.

    Called by the worker inside the transaction that saves ``record``'s result.
    """
    from django_qtasks.models import Task

    app = default_app()
    step, *rest = record.chain_steps
    task_name, args, kwargs = step_parts(step)
    handle = app.tasks.get(task_name)
    # A step whose task this worker does not know still gets its row: it
    # then ends in error like any unknown task, and the chain shows where.
    following = Task.new(
        task_name,
        [*args, record.returning],
        kwargs,
        priority=handle.priority if handle else 0,
        queue=handle.queue if handle else None,
        extra=handle.extra if handle else {},
        tags=handle.tags if handle else [],
        max_attempts=handle.retry + 1 if handle else 1,
        chain_previous=record,
        chain_steps=rest,
    )
    # With tracing on, its enqueue span joins the chain's trace (django_qtasks.tracing).
    following.trace_context = record.trace_context
    return app.submit(following)


def step_parts(step: Any) -> tuple[str, list[Any], dict[str, Any]]:
    """The task name, arguments and keyword arguments of a chain step (``Step.as_json()``).

    A step written by hand may leave out its arguments; one that is no step
    raises ValueError, which ends the task before it in error, saying so.
    """
    if isinstance(step, dict):
        name, args, kwargs = step.get("task_name"), step.get("args", []), step.get("kwargs", {})
        if isinstance(name, str) and isinstance(args, list) and isinstance(kwargs, dict):
            return name, args, kwargs
    raise ValueError(
        f"The next step of the chain is not a step: {step!r}; a step is "
        '{"task_name": ..., "args": [...], "kwargs": {...}}.'
    )


def chain_of(record: Task) -> list[Task]:
    """Every step of ``record``'s chain so far, first to last (one query a step)."""
    from django_qtasks.models import Task

    steps = [record]
    while steps[0].chain_previous_id is not None:
        previous = Task.objects.filter(pk=steps[0].chain_previous_id).first()
        if previous is None:
            break
        steps.insert(0, previous)
    while True:
        following = Task.objects.filter(chain_previous=steps[-1]).order_by("-created_at").first()
        if following is None:
            return steps
        steps.append(following)


def wait_for_chain(first: Task, timeout: float) -> list[Task]:
    """Wait until the chain that starts at ``first`` ends; every step's record."""
    from django_qtasks.models import Task, TaskStatus, task_db

    app = default_app()

    deadline = time.monotonic() + timeout
    steps: list[Task] = []
    current = first
    while True:
        try:
            current = app.wait(current.uuid, max(deadline - time.monotonic(), 0.0))
        except WaitTimeout:
            raise WaitTimeout(
                f"The chain starting with task {first.uuid} did not end within {timeout:g}s; "
                f"it goes on (step {len(steps) + 1}: {current.task_name} {current.uuid})."
            ) from None
        steps.append(current)
        if current.status != TaskStatus.SUCCESS or not current.chain_steps:
            return steps
        # Created in the transaction that saved ``current`` as success.
        following = (
            Task.objects.using(task_db())
            .filter(chain_previous=current)
            .order_by("-created_at")
            .first()
        )
        if following is None:  # the row was deleted meanwhile
            return steps
        current = following
