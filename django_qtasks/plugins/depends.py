"""Depends: values a task receives from a function run around it, as QTasks' Depends.

``dep: Annotated[int, Depends(open_db)]`` (or ``dep=Depends(open_db)``)
gives the parameter what ``open_db`` provides: a context manager's value
(also a generator or async generator function, which is wrapped as one),
an awaitable's result, or the returned value. The context is entered when
the task starts and left when it ends. A parameter annotated with a
``SyncState``/``AsyncState`` subclass receives an instance of it
(``django_qtasks.plugins.states``). An argument given by the caller is
never replaced.

``scope`` is accepted with QTasks' values; here every dependency lives as
long as its task (QTasks can tie one to a broker or storage that this
project does not have).
"""

from __future__ import annotations

import contextlib
import inspect
import typing
from collections.abc import Callable
from enum import Enum
from functools import cache
from typing import Any

from django_qtasks.plugins.states import AsyncState, SyncState


class ScopeEnum(Enum):
    TASK = "task"
    WORKER = "worker"
    BROKER = "broker"
    STORAGE = "storage"
    GLOBAL_CONFIG = "global_config"


class Depends:
    def __init__(self, func: Callable[..., Any], scope: ScopeEnum | str = ScopeEnum.TASK) -> None:
        self.func = func
        self.scope = ScopeEnum(scope)

    def __repr__(self) -> str:
        return f"Depends({getattr(self.func, '__name__', self.func)!r}, scope={self.scope.value!r})"


@cache
def injected(func: Callable[..., Any], echo: bool) -> tuple[tuple[int, str, Any], ...]:
    """(position, name, Depends or state class) of each parameter filled here."""
    try:
        parameters = list(inspect.signature(func).parameters.values())[1 if echo else 0 :]
    except (TypeError, ValueError):
        return ()
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:  # an annotation that does not resolve: only defaults count
        hints = {}
    found = []
    for position, parameter in enumerate(parameters):
        provider: Any = parameter.default if isinstance(parameter.default, Depends) else None
        hint = hints.get(parameter.name)
        if typing.get_origin(hint) is typing.Annotated:
            marks = [mark for mark in typing.get_args(hint)[1:] if isinstance(mark, Depends)]
            provider = marks[-1] if marks else provider
            hint = typing.get_args(hint)[0]
        is_state = isinstance(hint, type) and issubclass(hint, (SyncState, AsyncState))
        if provider is None and is_state:
            provider = hint
        if provider is not None:
            found.append((position, parameter.name, provider))
    return tuple(found)


def missing(
    func: Callable[..., Any], echo: bool, args: list[Any], kwargs: dict[str, Any]
) -> list[tuple[str, Any]]:
    return [
        (name, provider)
        for position, name, provider in injected(func, echo)
        if name not in kwargs and position >= len(args)
    ]


def inject(
    func: Callable[..., Any],
    echo: bool,
    args: list[Any],
    kwargs: dict[str, Any],
    stack: contextlib.ExitStack,
) -> dict[str, Any]:
    """``kwargs`` with each dependency a sync task needs; contexts are entered on ``stack``."""
    for name, provider in missing(func, echo, args, kwargs):
        if isinstance(provider, type):
            kwargs[name] = provider()
            continue
        value = opened(provider.func)
        if hasattr(value, "__enter__"):
            value = stack.enter_context(value)
        elif inspect.isawaitable(value) or hasattr(value, "__aenter__"):
            raise TypeError(f"{provider!r} is async: a sync task cannot wait for it.")
        kwargs[name] = value
    return kwargs


async def ainject(
    func: Callable[..., Any],
    echo: bool,
    args: list[Any],
    kwargs: dict[str, Any],
    stack: contextlib.AsyncExitStack,
) -> dict[str, Any]:
    """``inject`` for an async task: async contexts and awaitables too."""
    for name, provider in missing(func, echo, args, kwargs):
        if isinstance(provider, type):
            kwargs[name] = provider()
            continue
        value = opened(provider.func)
        if hasattr(value, "__aenter__"):
            value = await stack.enter_async_context(value)
        elif hasattr(value, "__enter__"):
            value = stack.enter_context(value)
        elif inspect.isawaitable(value):
            value = await value
        kwargs[name] = value
    return kwargs


def opened(func: Callable[..., Any]) -> Any:
    """What calling ``func`` gives, with a generator function made a context manager."""
    if inspect.isasyncgenfunction(func):
        return contextlib.asynccontextmanager(func)()
    if inspect.isgeneratorfunction(func):
        return contextlib.contextmanager(func)()
    return func()


__all__ = ["Depends", "ScopeEnum"]
