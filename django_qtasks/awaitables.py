"""Values that may be awaitable: a middleware or handler may be async for a sync task."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any


def resolve(value: Any) -> Any:
    """A middleware or handler of a sync task may still be async: run it here."""
    if inspect.isawaitable(value):

        async def wait() -> Any:
            return await value

        return asyncio.run(wait())
    return value


async def aresolve(value: Any) -> Any:
    """``value``, awaited if it is awaitable."""
    if inspect.isawaitable(value):
        return await value
    return value
