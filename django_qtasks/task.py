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
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

from django_qtasks.celery_options import IGNORED_CELERY_OPTIONS, refused_celery_option
from django_qtasks.context import AsyncContext, BaseContext, SyncContext
from django_qtasks.exceptions import TaskArgumentsError
from django_qtasks.scheduling import parse_timing
from django_qtasks.signatures import CallShape, call_shape
from django_qtasks.task_cls import AsyncTaskCls, BaseTaskCls, SyncTaskCls
from django_qtasks.validation import ensure_json, is_int, is_max_time, is_retry, run_after

if TYPE_CHECKING:
    from django_qtasks.app import QTasksApp
    from django_qtasks.context import RunState
    from django_qtasks.models import Task

Middleware = Callable[..., Any]

#: A delay before a task may start: seconds, or a timedelta.
Delay = float | timedelta

#: The task function's parameters and return type (for an ``async def``, what it
#: returns when awaited): ``SyncTask[[int, int], int]`` is the handle of
#: ``def add(a: int, b: int) -> int``. See docs/enqueueing.md, "Type checking".
P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
AI = TypeVar("AI", bound=AsyncIterator[Any])


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


class BaseTask(Generic[P, R_co]):
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

    # Calls are typed with the function's parameters P when they pass none of
    # the options (the last overload): a checker then checks the task's
    # arguments as a call of the function. PEP 612 allows no keyword between
    # ``*args: P.args`` and ``**kwargs: P.kwargs``, so a call that passes an
    # option matches one of the other overloads, which check the options and
    # let the task's arguments through unchecked (docs/enqueueing.md, "Type
    # checking").
    # mypy finds that an implementation does not accept every call of the
    # first overload: the function may have a parameter named like an option,
    # which the implementation takes as the option. So it is at run time
    # (such a parameter is passed by position, or with ``delay``), hence the
    # ``type: ignore[misc]`` on each implementation.

    @overload
    def __call__(
        self,
        *args: Any,
        priority: int | None,
        timeout: float | None = None,
        task_name: str | None = None,
        **kwargs: Any,
    ) -> BaseTaskCls: ...
    @overload
    def __call__(
        self,
        *args: Any,
        timeout: float | None,
        priority: int | None = None,
        task_name: str | None = None,
        **kwargs: Any,
    ) -> BaseTaskCls: ...
    @overload
    def __call__(
        self,
        *args: Any,
        task_name: str | None,
        priority: int | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> BaseTaskCls: ...
    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> BaseTaskCls: ...

    def __call__(  # type: ignore[misc]  # options in P: see above __call__
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

    # One overload per option, each with that option required: an overload
    # whose options were all optional would also match a call without any,
    # and so let a wrong call of the function through. They come before the
    # function's own, so that a call with ``timeout`` is typed ``Task | None``
    # also when the function takes ``**kwargs`` (mypy sees that overlap).
    @overload
    def add_task(  # type: ignore[overload-overlap]
        self,
        *args: Any,
        timeout: float | None,
        priority: int | None = None,
        queue: str | None = None,
        task_name: str | None = None,
        delay: Delay | None = None,
        eta: datetime | None = None,
        **kwargs: Any,
    ) -> Task | None: ...
    @overload
    def add_task(
        self,
        *args: Any,
        priority: int | None,
        timeout: None = None,
        queue: str | None = None,
        task_name: str | None = None,
        delay: Delay | None = None,
        eta: datetime | None = None,
        **kwargs: Any,
    ) -> Task: ...
    @overload
    def add_task(
        self,
        *args: Any,
        queue: str | None,
        priority: int | None = None,
        timeout: None = None,
        task_name: str | None = None,
        delay: Delay | None = None,
        eta: datetime | None = None,
        **kwargs: Any,
    ) -> Task: ...
    @overload
    def add_task(
        self,
        *args: Any,
        task_name: str | None,
        priority: int | None = None,
        timeout: None = None,
        queue: str | None = None,
        delay: Delay | None = None,
        eta: datetime | None = None,
        **kwargs: Any,
    ) -> Task: ...
    @overload
    def add_task(
        self,
        *args: Any,
        delay: Delay | None,
        priority: int | None = None,
        timeout: None = None,
        queue: str | None = None,
        task_name: str | None = None,
        eta: datetime | None = None,
        **kwargs: Any,
    ) -> Task: ...
    @overload
    def add_task(
        self,
        *args: Any,
        eta: datetime | None,
        priority: int | None = None,
        timeout: None = None,
        queue: str | None = None,
        task_name: str | None = None,
        delay: Delay | None = None,
        **kwargs: Any,
    ) -> Task: ...
    @overload
    def add_task(self, *args: P.args, **kwargs: P.kwargs) -> Task: ...

    def add_task(  # type: ignore[misc]  # options in P: see above __call__
        self,
        *args: Any,
        priority: int | None = None,
        timeout: float | None = None,
        queue: str | None = None,
        task_name: str | None = None,
        delay: Delay | None = None,
        eta: datetime | None = None,
        **kwargs: Any,
    ) -> Task | None:
        """Enqueue a run of this task (or of ``task_name``) and return its record.

        With ``timeout``, wait up to that many seconds for it to end and
        return the record refreshed. With ``delay`` (seconds or a timedelta)
        or ``eta`` (an aware datetime), it does not start before then.
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

    @overload
    async def aadd_task(  # type: ignore[overload-overlap]
        self,
        *args: Any,
        timeout: float | None,
        priority: int | None = None,
        queue: str | None = None,
        task_name: str | None = None,
        delay: Delay | None = None,
        eta: datetime | None = None,
        **kwargs: Any,
    ) -> Task | None: ...
    @overload
    async def aadd_task(
        self,
        *args: Any,
        priority: int | None,
        timeout: None = None,
        queue: str | None = None,
        task_name: str | None = None,
        delay: Delay | None = None,
        eta: datetime | None = None,
        **kwargs: Any,
    ) -> Task: ...
    @overload
    async def aadd_task(
        self,
        *args: Any,
        queue: str | None,
        priority: int | None = None,
        timeout: None = None,
        task_name: str | None = None,
        delay: Delay | None = None,
        eta: datetime | None = None,
        **kwargs: Any,
    ) -> Task: ...
    @overload
    async def aadd_task(
        self,
        *args: Any,
        task_name: str | None,
        priority: int | None = None,
        timeout: None = None,
        queue: str | None = None,
        delay: Delay | None = None,
        eta: datetime | None = None,
        **kwargs: Any,
    ) -> Task: ...
    @overload
    async def aadd_task(
        self,
        *args: Any,
        delay: Delay | None,
        priority: int | None = None,
        timeout: None = None,
        queue: str | None = None,
        task_name: str | None = None,
        eta: datetime | None = None,
        **kwargs: Any,
    ) -> Task: ...
    @overload
    async def aadd_task(
        self,
        *args: Any,
        eta: datetime | None,
        priority: int | None = None,
        timeout: None = None,
        queue: str | None = None,
        task_name: str | None = None,
        delay: Delay | None = None,
        **kwargs: Any,
    ) -> Task: ...
    @overload
    async def aadd_task(self, *args: P.args, **kwargs: P.kwargs) -> Task: ...

    async def aadd_task(  # type: ignore[misc]  # options in P: see above __call__
        self,
        *args: Any,
        priority: int | None = None,
        timeout: float | None = None,
        queue: str | None = None,
        task_name: str | None = None,
        delay: Delay | None = None,
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

    # Celery's names ----------------------------------------------------------

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Task:
        """Celery's ``task.delay(*args, **kwargs)``: enqueue with these arguments.

        Every keyword is the task's own, as in Celery (so a task parameter
        named ``priority`` or ``queue`` is passed through); for the options,
        use ``add_task`` or ``apply_async``.
        """
        return self._enqueue(args, kwargs)

    def apply_async(
        self,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: Delay | None = None,
        eta: datetime | None = None,
        queue: str | None = None,
        priority: int | None = None,
        **options: Any,
    ) -> Task:
        """Celery's ``task.apply_async(args, kwargs, countdown=..., ...)``.

        ``countdown`` is ``add_task``'s ``delay``; ``eta``, ``queue`` and
        ``priority`` are its own (a lower priority runs first). Celery
        options without a meaning here raise TypeError, saying what to use
        instead, except those that ignoring cannot hurt (``IGNORED_CELERY_OPTIONS``).
        """
        where = f"{self.task_name}.apply_async()"
        for option in options:
            if option not in IGNORED_CELERY_OPTIONS:
                raise TypeError(f"{where}: {refused_celery_option(option)}")
        if countdown is not None and eta is not None:
            raise TypeError(f"{where}: give countdown or eta, not both.")
        if args is not None and not isinstance(args, (list, tuple)):
            raise TypeError(f"{where}: args must be a list or tuple, not {args!r}.")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise TypeError(f"{where}: kwargs must be a dict, not {kwargs!r}.")
        if countdown is not None:
            eta = run_after(f"{where}, countdown", countdown, None)
        return self._enqueue(
            tuple(args or ()), dict(kwargs or {}), priority=priority, queue=queue, eta=eta
        )

    def _enqueue(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        priority: int | None = None,
        queue: str | None = None,
        eta: datetime | None = None,
    ) -> Task:
        """Enqueue a run with these arguments, none of them taken as an option
        (``delay``, ``apply_async``); as ``add_task`` does, without waiting."""
        return self.app.enqueue(self, args, kwargs, priority=priority, queue=queue, eta=eta)

    def s(self, *args: Any, **kwargs: Any) -> Step:
        """This task as a chain step with these arguments: ``chain(add.s(1, 2), double.s())``.

        Not checked against the function's parameters: a chain step gets the
        previous step's result as its last argument, so ``double.s()`` is
        right for ``def double(x)``.
        """
        return Step(self.task_name, args, kwargs)

    def target(self, task_name: str | None) -> BaseTask:
        """This task, or with ``task_name=`` another registered one (nested tasks)."""
        return self if task_name is None else self.app.get_task(task_name)


class SyncTask(BaseTask[P, R_co]):
    """Handle of a sync function or generator (run in a worker thread)."""

    ctx: SyncContext
    context_class = SyncContext


class AsyncTask(BaseTask[P, R_co]):
    """Handle of an ``async def`` function or async generator.

    Its ``add_task``, ``delay`` and ``apply_async`` are typed ``Any``: they
    return the Task from sync code in the default app, and an awaitable in
    the async app or when an event loop runs. ``aadd_task`` is typed.
    """

    ctx: AsyncContext
    context_class = AsyncContext

    @overload
    def add_task(
        self,
        *args: Any,
        timeout: float | None,
        priority: int | None = None,
        queue: str | None = None,
        task_name: str | None = None,
        delay: Delay | None = None,
        eta: datetime | None = None,
        **kwargs: Any,
    ) -> Any: ...
    @overload
    def add_task(
        self,
        *args: Any,
        priority: int | None,
        timeout: None = None,
        queue: str | None = None,
        task_name: str | None = None,
        delay: Delay | None = None,
        eta: datetime | None = None,
        **kwargs: Any,
    ) -> Any: ...
    @overload
    def add_task(
        self,
        *args: Any,
        queue: str | None,
        priority: int | None = None,
        timeout: None = None,
        task_name: str | None = None,
        delay: Delay | None = None,
        eta: datetime | None = None,
        **kwargs: Any,
    ) -> Any: ...
    @overload
    def add_task(
        self,
        *args: Any,
        task_name: str | None,
        priority: int | None = None,
        timeout: None = None,
        queue: str | None = None,
        delay: Delay | None = None,
        eta: datetime | None = None,
        **kwargs: Any,
    ) -> Any: ...
    @overload
    def add_task(
        self,
        *args: Any,
        delay: Delay | None,
        priority: int | None = None,
        timeout: None = None,
        queue: str | None = None,
        task_name: str | None = None,
        eta: datetime | None = None,
        **kwargs: Any,
    ) -> Any: ...
    @overload
    def add_task(
        self,
        *args: Any,
        eta: datetime | None,
        priority: int | None = None,
        timeout: None = None,
        queue: str | None = None,
        task_name: str | None = None,
        delay: Delay | None = None,
        **kwargs: Any,
    ) -> Any: ...
    @overload
    def add_task(self, *args: P.args, **kwargs: P.kwargs) -> Any: ...

    def add_task(  # type: ignore[misc]  # options in P: see above __call__
        self,
        *args: Any,
        priority: int | None = None,
        timeout: float | None = None,
        queue: str | None = None,
        task_name: str | None = None,
        delay: Delay | None = None,
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

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Celery's ``delay``: as this handle's ``add_task``, awaitable where that is."""
        return self._enqueue(args, kwargs)

    def apply_async(
        self,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: Delay | None = None,
        eta: datetime | None = None,
        queue: str | None = None,
        priority: int | None = None,
        **options: Any,
    ) -> Any:
        """Celery's ``apply_async``: as this handle's ``add_task``, awaitable where that is."""
        return super().apply_async(
            args, kwargs, countdown=countdown, eta=eta, queue=queue, priority=priority, **options
        )

    def _enqueue(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        priority: int | None = None,
        queue: str | None = None,
        eta: datetime | None = None,
    ) -> Any:
        if self.app.is_async or _loop_is_running():
            return self.app.aenqueue(self, args, kwargs, priority=priority, queue=queue, eta=eta)
        return super()._enqueue(args, kwargs, priority=priority, queue=queue, eta=eta)


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


# What the decorators return, for type checkers: the handle's class follows the
# function, as ``handle_class_for`` does, and carries its parameters and
# return type. With ``echo=True`` the function's first parameter is ``self``,
# which the handle's calls skip. ---------------------------------------------


class TaskDecorator(Protocol):
    """``@app.task(...)``: a SyncTask, or an AsyncTask for an ``async def``."""

    @overload
    def __call__(self, func: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, func: Callable[P, AI], /) -> AsyncTask[P, AI]: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, func: Callable[P, R], /) -> SyncTask[P, R]: ...


class EchoTaskDecorator(Protocol):
    """``@app.task(echo=True, ...)``: as TaskDecorator, the first parameter (``self``) skipped."""

    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, func: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]], /
    ) -> AsyncTask[P, R]: ...
    @overload
    def __call__(self, func: Callable[Concatenate[Any, P], AI], /) -> AsyncTask[P, AI]: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, func: Callable[Concatenate[Any, P], R], /) -> SyncTask[P, R]: ...


class AsyncTaskDecorator(Protocol):
    """``@app.task(...)`` of the async app and of an AsyncRouter: an AsyncTask always."""

    @overload
    def __call__(self, func: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...
    @overload
    def __call__(self, func: Callable[P, R], /) -> AsyncTask[P, R]: ...


class AsyncEchoTaskDecorator(Protocol):
    """As AsyncTaskDecorator, with ``echo=True``."""

    @overload
    def __call__(
        self, func: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]], /
    ) -> AsyncTask[P, R]: ...
    @overload
    def __call__(self, func: Callable[Concatenate[Any, P], R], /) -> AsyncTask[P, R]: ...
