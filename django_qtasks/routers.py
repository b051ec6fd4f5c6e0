"""QTasks' routers: tasks declared apart from the app, registered by ``app.include_router``.

::

    router = SyncRouter()

    @router.task(description="Test router task.")
    def router_test(): ...

    app.include_router(router)

A router's tasks are handles like ``@app.task``'s, bound to the project's
app until ``include_router`` binds them to the app that includes them; the
worker knows them once that app includes the router. ``SyncRouter`` follows
the function (AsyncTask for ``async def``), ``AsyncRouter`` makes every task
an AsyncTask, as the async app does.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Literal, overload

from django_qtasks.app import TASK_OPTIONS
from django_qtasks.registry import default_app
from django_qtasks.task import (
    AI,
    AsyncEchoTaskDecorator,
    AsyncTask,
    AsyncTaskDecorator,
    BaseTask,
    EchoTaskDecorator,
    P,
    R,
    SyncTask,
    TaskDecorator,
    handle_class_for,
)

if TYPE_CHECKING:
    from django_qtasks.app import QTasksApp


class Router:
    def __init__(self) -> None:
        #: The router's tasks by name, as ``app.tasks``.
        self.tasks: dict[str, BaseTask] = {}

    def handle_class(self, func: Callable[..., Any]) -> type[BaseTask]:
        return handle_class_for(func)

    # Typed as QTasksApp.task.
    @overload
    def task(self, func: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...  # type: ignore[overload-overlap]
    @overload
    def task(self, func: Callable[P, AI], /) -> AsyncTask[P, AI]: ...  # type: ignore[overload-overlap]
    @overload
    def task(self, func: Callable[P, R], /) -> SyncTask[P, R]: ...
    @overload
    def task(
        self, name: str | None = None, /, *, echo: Literal[True], **options: Any
    ) -> EchoTaskDecorator: ...
    @overload
    def task(
        self, name: str | None = None, /, *, echo: Literal[False] = False, **options: Any
    ) -> TaskDecorator: ...
    @overload
    def task(
        self, name: str | None = None, /, *, echo: bool, **options: Any
    ) -> Callable[[Callable[..., Any]], Any]: ...

    def task(self, name: str | Callable[..., Any] | None = None, /, **options: Any) -> Any:
        """``@router.task``, ``@router.task("name")`` or ``@router.task(name=..., ...)``."""
        if callable(name):
            return self.task()(name)
        if name is not None:
            options["name"] = name

        def decorator(function: Callable[..., Any]) -> BaseTask:
            known = {key: value for key, value in options.items() if key in TASK_OPTIONS}
            extra = {key: value for key, value in options.items() if key not in TASK_OPTIONS}
            handle = self.handle_class(function)(default_app(), function, extra=extra, **known)
            self.tasks[handle.task_name] = handle
            return handle

        return decorator

    def include_into(self, app: QTasksApp) -> None:
        for handle in self.tasks.values():
            handle.app = app
            app.register(handle)


class SyncRouter(Router):
    """A router whose tasks follow their function, as ``@app.task`` does."""


class AsyncRouter(Router):
    """A router whose tasks are all AsyncTasks: their ``add_task`` is awaitable in a coroutine."""

    def handle_class(self, func: Callable[..., Any]) -> type[BaseTask]:
        return AsyncTask

    if TYPE_CHECKING:
        # Every task here is an AsyncTask, a plain ``def`` too (Router.task).
        @overload  # type: ignore[override]
        def task(self, func: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...
        @overload
        def task(self, func: Callable[P, R], /) -> AsyncTask[P, R]: ...
        @overload
        def task(
            self, name: str | None = None, /, *, echo: Literal[True], **options: Any
        ) -> AsyncEchoTaskDecorator: ...
        @overload
        def task(
            self, name: str | None = None, /, *, echo: Literal[False] = False, **options: Any
        ) -> AsyncTaskDecorator: ...
        @overload
        def task(
            self, name: str | None = None, /, *, echo: bool, **options: Any
        ) -> Callable[[Callable[..., Any]], Any]: ...
        def task(self, func: Any = None, /, **options: Any) -> Any: ...
