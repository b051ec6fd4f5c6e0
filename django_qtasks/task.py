"""The ``@app.task`` decorator's product: SyncTask and AsyncTask.

The decorated function becomes a handle (``add.add_task(1, 2)``). The same
class is what a task with ``echo=True`` receives as ``self``: the worker binds
a copy of the handle to a fresh context for every run, so concurrent runs of
one task never share a ``ctx``.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django_qtasks.context import AsyncContext, BaseContext, SyncContext
from django_qtasks.exceptions import TaskArgumentsError
from django_qtasks.scheduling import parse_timing
from django_qtasks.signatures import CallShape, call_shape
from django_qtasks.task_cls import AsyncTaskCls, BaseTaskCls, SyncTaskCls
from django_qtasks.validation import ensure_json, is_int, is_max_time, is_retry

if TYPE_CHECKING:
    from django_qtasks.app import QTasksApp
    from django_qtasks.context import RunState
    from django_qtasks.models import Task

Middleware = Callable[..., Any]


def _source_location(func: Callable[..., Any]) -> str:
    try:
        lineno = inspect.getsourcelines(func)[1]
    except (OSError, TypeError):
        code = getattr(func, "__code__", None)
        lineno = code.co_firstlineno if code is not None else 0
    return f"{inspect.getsourcefile(func) or func.__module__}:{lineno}"


@dataclass(frozen=True)
class Step:
    """A task and its own arguments (``handle.s(...)``): a step of a chain, or of ``add_tasks``."""

    task_name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "task_name": self.task_name,
            "args": ensure_json(self.task_name, "args", list(self.args)),
            "kwargs": ensure_json(self.task_name, "kwargs", dict(self.kwargs)),
        }


class BaseTask:
    """What the decorator returns, and what ``self`` is inside a task."""

    ctx: BaseContext
    context_class: type[BaseContext] = BaseContext
    schedule_cron: str = ""
    schedule_interval: timedelta | None = None
    #: Whether enqueueing checks the arguments against the function
    #: (``check_call``); ``handle.check_arguments = False`` leaves that to the run.
    check_arguments: bool = True

    def __init__(
        self,
        app: QTasksApp,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        priority: int = 0,
        echo: bool = False,
        max_time: float | None = None,
        retry: int = 0,
        retry_on_exc: Sequence[type[BaseException]] | None = None,
        decode: Callable[[Any], Any] | None = None,
        tags: Sequence[str] | None = None,
        description: str | None = None,
        generate_handler: Callable[[Any], Any] | None = None,
        executor: type[Any] | None = None,
        middlewares_before: Sequence[Middleware] | None = None,
        middlewares_after: Sequence[Middleware] | None = None,
        queue: str | None = None,
        schedule: str | timedelta | float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.func = func
        self.task_name = name or func.__name__
        self.priority = priority
        self.echo = echo
        self.max_time = max_time
        self.retry = retry
        self.retry_on_exc = list(retry_on_exc or [])
        self.decode = decode
        self.tags = list(tags or [])
        self.description = description if description is not None else _first_line(func)
        self.generate_handler = generate_handler
        self.executor = executor
        self.middlewares_before = list(middlewares_before or [])
        self.middlewares_after = list(middlewares_after or [])
        self.queue = queue
        #: A cron expression, or an interval (timedelta or seconds): see scheduling.py.
        self.schedule = schedule
        self.extra = dict(extra or {})
        self.location = _source_location(func)
        self._validate()
        self.ctx = self.context_class(self)
        self.__doc__ = func.__doc__
        self.__name__ = func.__name__
        self.__module__ = func.__module__
        self.__wrapped__ = func

    def _validate(self) -> None:
        where = f"task {self.task_name!r} ({self.location})"
        if not isinstance(self.task_name, str) or not self.task_name:
            raise TypeError(f"{where}: name must be a non-empty string.")
        if not is_int(self.priority):
            raise TypeError(f"{where}: priority must be an int, not {self.priority!r}.")
        if not is_retry(self.retry):
            raise TypeError(f"{where}: retry must be an int >= 0, not {self.retry!r}.")
        if not is_max_time(self.max_time):
            raise TypeError(
                f"{where}: max_time must be a positive, finite number of seconds, "
                f"not {self.max_time!r}."
            )
        for exc in self.retry_on_exc:
            if not (isinstance(exc, type) and issubclass(exc, BaseException)):
                raise TypeError(f"{where}: retry_on_exc must list exception classes, not {exc!r}.")
        for option in ("decode", "generate_handler"):
            value = getattr(self, option)
            if value is not None and not callable(value):
                raise TypeError(f"{where}: {option} must be callable, not {value!r}.")
        for middleware in self.middlewares:
            if not callable(middleware):
                raise TypeError(f"{where}: middlewares must be callables, not {middleware!r}.")
        if self.schedule is not None:
            self.schedule_cron, self.schedule_interval = parse_timing(self.schedule, where)
        if not all(isinstance(tag, str) for tag in self.tags):
            raise TypeError(f"{where}: tags must be strings, not {self.tags!r}.")
        for key, value in self.extra.items():
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise TaskArgumentsError(
                    f"{where}: extra option {key}={value!r} must be JSON ({exc}); it is "
                    "stored with every run of the task."
                ) from exc

    # Derived facts --------------------------------------------------------

    @property
    def middlewares(self) -> list[Middleware]:
        return [*self.middlewares_before, *self.middlewares_after]

    # Cached: the worker asks at every run, and ``bind`` copies the cache along.
    @functools.cached_property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.func) or inspect.isasyncgenfunction(self.func)

    @functools.cached_property
    def is_generator(self) -> bool:
        return inspect.isgeneratorfunction(self.func) or inspect.isasyncgenfunction(self.func)

    @functools.cached_property
    def call_shape(self) -> CallShape | None:
        """What a call must give the function; None when it cannot be known before the
        run: ``middlewares_before`` and an ``executor`` may change the arguments."""
        if self.middlewares_before or self.executor is not None:
            return None
        return call_shape(self.func, self.task_name, skip_first=self.echo)

    def check_call(
        self,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        step: str = "",
        appended: bool = False,
    ) -> None:
        """Raise TaskSignatureError (a TypeError) when the arguments do not fit the
        function, as calling it would; see ``django_qtasks.signatures``."""
        if self.check_arguments:
            shape = self.call_shape
            if shape is not None:
                shape.check(args, kwargs, step=step, appended=appended)

    def bind(self, ctx: BaseContext) -> BaseTask:
        """A copy of this handle whose ``ctx`` is one run's context."""
        bound = copy.copy(self)
        bound.ctx = ctx
        return bound

    def for_run(self, run: RunState) -> BaseTask:
        """``self`` of one run: a copy of this handle with a fresh context.

        A sync function's is a SyncTask, even in the async app, as in QTasks:
        it runs in a thread, where nothing could await its ``ctx``.
        """
        bound = copy.copy(self)
        if isinstance(self, AsyncTask) and not self.is_async:
            bound.__class__ = SyncTask
        bound.ctx = bound.context_class(bound, run)
        return bound

    def __call__(
        self,
        *args: Any,
        priority: int | None = None,
        timeout: float | None = None,
        task_name: str | None = None,
        **kwargs: Any,
    ) -> BaseTaskCls:
        """A pre-built task, as in QTasks: ``.add_task()`` on it enqueues it.

        Nothing runs here; ``handle.func(...)`` calls the function itself.
        """
        cls = AsyncTaskCls if isinstance(self, AsyncTask) else SyncTaskCls
        prebuilt = cls(
            task_name=task_name or self.task_name,
            priority=priority,
            timeout=timeout,
            args=args,
            kwargs=kwargs,
        )
        prebuilt.bind(self)
        return prebuilt

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.task_name!r}>"

    # Enqueueing -------------------------------------------------------------

    def add_task(
        self,
        *args: Any,
        priority: int | None = None,
        timeout: float | None = None,
        queue: str | None = None,
        task_name: str | None = None,
        delay: float | None = None,
        eta: datetime | None = None,
        **kwargs: Any,
    ) -> Task | None:
        """Enqueue a run of this task (or of ``task_name``) and return its record.

        With ``timeout``, wait up to that many seconds for it to end and
        return the record refreshed. With ``delay`` (seconds) or ``eta`` (an
        aware datetime), it does not start before then.
        """
        return self.app.enqueue(
            self.target(task_name),
            args,
            kwargs,
            priority=priority,
            queue=queue,
            timeout=timeout,
            delay=delay,
            eta=eta,
        )

    async def aadd_task(
        self,
        *args: Any,
        priority: int | None = None,
        timeout: float | None = None,
        queue: str | None = None,
        task_name: str | None = None,
        delay: float | None = None,
        eta: datetime | None = None,
        **kwargs: Any,
    ) -> Task | None:
        """Async twin of :meth:`add_task`."""
        return await self.app.aenqueue(
            self.target(task_name),
            args,
            kwargs,
            priority=priority,
            queue=queue,
            timeout=timeout,
            delay=delay,
            eta=eta,
        )

    def s(self, *args: Any, **kwargs: Any) -> Step:
        """This task as a chain step with these arguments: ``chain(add.s(1, 2), double.s())``."""
        return Step(self.task_name, args, kwargs)

    def target(self, task_name: str | None) -> BaseTask:
        """This task, or with ``task_name=`` another registered one (nested tasks)."""
        return self if task_name is None else self.app.get_task(task_name)


class SyncTask(BaseTask):
    """Handle of a sync function or generator (run in a worker thread)."""

    ctx: SyncContext
    context_class = SyncContext


class AsyncTask(BaseTask):
    """Handle of an ``async def`` function or async generator."""

    ctx: AsyncContext
    context_class = AsyncContext

    def add_task(
        self,
        *args: Any,
        priority: int | None = None,
        timeout: float | None = None,
        queue: str | None = None,
        task_name: str | None = None,
        delay: float | None = None,
        eta: datetime | None = None,
        **kwargs: Any,
    ) -> Any:
        """Enqueue a run of this task (or of ``task_name``).

        In the async app (``django_qtasks.asyncio``) this is always a
        coroutine, as in ``qtasks.asyncio``. In the default app, called from
        a coroutine (an event loop is running: inside an async task, an async
        view) it returns an awaitable, as in QTasks; called from sync code it
        enqueues at once and returns the Task record.
        """
        asynchronous = self.app.is_async or _loop_is_running()
        enqueue = self.aadd_task if asynchronous else super().add_task
        result: Task | Awaitable[Task | None] | None = enqueue(
            *args,
            priority=priority,
            timeout=timeout,
            queue=queue,
            task_name=task_name,
            delay=delay,
            eta=eta,
            **kwargs,
        )
        return result


def _loop_is_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _first_line(func: Callable[..., Any]) -> str | None:
    doc = inspect.getdoc(func)
    return doc.strip().splitlines()[0] if doc else None


def handle_class_for(func: Callable[..., Any]) -> type[BaseTask]:
    if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
        return AsyncTask
    return SyncTask
