"""Depends and State (django_qtasks.plugins): what a task's parameters receive.

The worker path is run by the conformance suite (QTasks' depends and states
examples, tests/qtasks_conformance); these check the rules themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from django_qtasks.plugins import AsyncState, Depends, ScopeEnum, SyncState
from django_qtasks.plugins.depends import ainject, inject

events: list[str] = []


@contextlib.contextmanager
def opened() -> Iterator[int]:
    events.append("open")
    yield 123
    events.append("close")


async def agen() -> AsyncIterator[str]:
    events.append("aopen")
    yield "async"
    events.append("aclose")


class Shared(SyncState):
    pass


class AShared(AsyncState):
    pass


def sync_task(self: object, n: int, dep: Annotated[int, Depends(opened)], state: Shared) -> None:
    pass


async def async_task(
    n: int,
    dep: Annotated[str, Depends(agen, scope=ScopeEnum.TASK)],
    other=Depends(opened),  # noqa: B008 (the documented form)
) -> None:
    pass


def test_sync_dependency_is_entered_and_left_with_the_task() -> None:
    events.clear()
    with contextlib.ExitStack() as stack:
        kwargs = inject(sync_task, True, [1], {}, stack)
        assert kwargs["dep"] == 123
        assert isinstance(kwargs["state"], Shared)
        assert events == ["open"]
    assert events == ["open", "close"]


def test_an_argument_given_by_the_caller_is_kept() -> None:
    with contextlib.ExitStack() as stack:
        assert inject(sync_task, True, [1, 7], {}, stack).get("dep") is None  # by position
        kwargs = inject(sync_task, True, [1], {"dep": 7}, stack)
    assert kwargs["dep"] == 7


def test_async_dependencies_and_defaults() -> None:
    events.clear()

    async def run() -> dict[str, object]:
        async with contextlib.AsyncExitStack() as stack:
            kwargs = await ainject(async_task, False, [1], {}, stack)
            assert events == ["aopen", "open"]
            return kwargs

    kwargs = asyncio.run(run())
    assert kwargs == {"dep": "async", "other": 123}
    assert events == ["aopen", "open", "close", "aclose"]


def test_instances_of_a_state_class_share_its_data() -> None:
    Shared().clear()
    Shared().set("step", 1)
    assert Shared().update(prompt="phone") == {"step": 1, "prompt": "phone"}
    assert Shared().get("step") == 1
    Shared().delete("step")
    assert Shared().get_all() == {"prompt": "phone"}

    async def run() -> object:
        await AShared().set("a", 1)
        return await AShared().get_all()

    assert asyncio.run(run()) == {"a": 1}
    assert Shared().get("a") is None  # each class has its own data
