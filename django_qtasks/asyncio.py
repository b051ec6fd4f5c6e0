"""The async app, as ``qtasks.asyncio``: ``from django_qtasks.asyncio import app``.

Same registry and worker as ``django_qtasks.app``; only its client methods
differ. Every task it registers is an AsyncTask, a plain ``def`` too, and
``app.add_task``, ``app.get`` and every handle's ``add_task`` are coroutines.
In a worker, a sync function still runs in a thread, and its ``self`` is a
SyncTask, as in QTasks.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, overload
from uuid import UUID

import django_qtasks
from django_qtasks.app import QTasksApp
from django_qtasks.compat import note_ignored
from django_qtasks.task import (
    AsyncEchoTaskDecorator,
    AsyncTask,
    AsyncTaskDecorator,
    BaseTask,
    Delay,
    P,
    R,
)

if TYPE_CHECKING:
    from django_qtasks.models import Task

__all__ = ["AsyncQTasksApp", "QueueTasks", "app", "shared_task", "task"]


class AsyncQTasksApp(QTasksApp):
    is_async = True

    def handle_class(self, func: Callable[..., Any]) -> type[BaseTask]:
        return AsyncTask

    if TYPE_CHECKING:
        # Every task here is an AsyncTask, a plain ``def`` too (QTasksApp.task).
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

    async def add_task(  # type: ignore[override]
        self,
        task_name: str,
        *args: Any,
        priority: int | None = None,
        timeout: float | None = None,
        queue: str | None = None,
        delay: Delay | None = None,
        eta: datetime | None = None,
        **kwargs: Any,
    ) -> Task | None:
        """Enqueue the registered task ``task_name``; awaited, as in ``qtasks.asyncio``."""
        return await self.aadd_task(
            task_name,
            *args,
            priority=priority,
            timeout=timeout,
            queue=queue,
            delay=delay,
            eta=eta,
            **kwargs,
        )

    async def get(self, uuid: UUID | str) -> Task | None:  # type: ignore[override]
        """The Task record with this uuid, or None."""
        return await self.aget(uuid)

    async def aget(self, uuid: UUID | str) -> Task | None:
        # ``get`` is a coroutine here: read with the default app's.
        return await django_qtasks.app.aget(uuid)


#: The async app, over the registry of ``django_qtasks.app``.
app = AsyncQTasksApp(registry=django_qtasks.app._tasks)

#: ``@task`` and ``@shared_task`` register AsyncTasks with ``app``.
task = app.task
shared_task = app.task


def QueueTasks(*args: Any, **kwargs: Any) -> AsyncQTasksApp:
    """``qtasks.asyncio.QueueTasks()`` for ported programs: this async app.

    As ``django_qtasks.compat.QueueTasks``: the arguments are settings here.
    """
    note_ignored(args, kwargs)
    return app
