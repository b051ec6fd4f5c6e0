"""The application: the registry of tasks, enqueueing, and lookups.

There is one per project, ``django_qtasks.app``. Creating it touches neither
settings nor the database, so ``@app.task`` works before ``django.setup()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, overload
from uuid import UUID

from asgiref.sync import sync_to_async

from django_qtasks.conf import qtasks_settings
from django_qtasks.config import QueueConfig
from django_qtasks.exceptions import (
    DuplicateTask,
    QTasksError,
    UnknownTask,
    WaitTimeout,
)
from django_qtasks.plugins import Plugins
from django_qtasks.task import (
    AI,
    AsyncTask,
    BaseTask,
    Delay,
    EchoTaskDecorator,
    P,
    R,
    Step,
    SyncTask,
    TaskDecorator,
    handle_class_for,
)
from django_qtasks.tracer import active_tracer

# The checks of values, from where they are defined; importable from here as before.
from django_qtasks.validation import (  # noqa: F401
    UNSTORABLE_CHARS,
    checked_priority,
    ensure_json,
    is_json,
    is_storable,
    run_after,
    storable_text,
    unstorable,
)

if TYPE_CHECKING:
    from django_qtasks.brokers.base import Broker
    from django_qtasks.models import Schedule, Task
    from django_qtasks.routers import Router
    from django_qtasks.store import TaskStore

logger = logging.getLogger("django_qtasks.app")

#: Key of ``Task.extra`` that marks a row written by the django.tasks backend
#: (``django_qtasks.backends``); its value is ``{"backend": <TASKS alias>}``.
DJANGO_TASK_KEY = "django_task"

#: How to run a row marked with one of these ``Task.extra`` keys: a function
#: of the app and the row that returns a handle. Optional parts register
#: theirs (``register_row_runner``) from the app config's ``ready()``, so that
#: the core never imports them.
ROW_RUNNERS: dict[str, Callable[[QTasksApp, Task], BaseTask]] = {}


def register_row_runner(key: str, runner: Callable[[QTasksApp, Task], BaseTask]) -> None:
    """Run the rows whose ``extra`` has ``key`` with ``runner(app, row)``."""
    ROW_RUNNERS[key] = runner


#: Runs new rows in the caller's process when ``QTASKS["IMMEDIATE"]`` is on:
#: ``django_qtasks.immediate.run_delivered``, registered from the app config's
#: ``ready()`` (enqueueing does not import the worker's parts).
IMMEDIATE_RUNNER: list[Callable[[list[Task], str], None]] = []


#: The module names that ``autodiscover`` imports from every installed app:
#: ``tasks``, and those that ``django_qtasks.compat.autodiscover_tasks`` names.
TASK_MODULES: list[str] = ["tasks"]


#: Decorator keywords with a meaning of their own; any other goes to ``extra``.
TASK_OPTIONS = frozenset(
    {
        "name",
        "priority",
        "echo",
        "max_time",
        "retry",
        "retry_on_exc",
        "decode",
        "tags",
        "description",
        "generate_handler",
        "executor",
        "middlewares_before",
        "middlewares_after",
        "queue",
        "schedule",
    }
)


class QTasksApp:
    #: Whether ``add_task`` and ``get`` are coroutines (``django_qtasks.asyncio``).
    is_async = False
    #: Seconds between a waiting client's looks at the row when Redis messages
    #: wake it (a safety net only), and the longest pause when it polls alone.
    wait_pause_with_messages = 1.0
    wait_pause_polling = 0.25

    def __init__(self, registry: dict[str, BaseTask] | None = None) -> None:
        # The async app shares the default app's registry: one set of tasks,
        # whichever app registered them, for one worker.
        self._tasks: dict[str, BaseTask] = {} if registry is None else registry
        self._config: QueueConfig | None = None
        self.plugins = Plugins()

    # Registry ---------------------------------------------------------------

    # Typed after the function (``SyncTask[P, R]``, ``AsyncTask[P, R]``); with
    # ``echo=True`` its first parameter, ``self``, is not one of the handle's.
    # An ``echo`` that is not a literal True or False gives an untyped handle.
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

    def task(self, func: Callable[..., Any] | str | None = None, /, **options: Any) -> Any:
        """Register a function as a task: ``@app.task``, ``@app.task(echo=True, ...)``,
        or with its name first, as in QTasks: ``@app.task("name", ...)``."""
        if isinstance(func, str):
            if "name" in options:
                raise TypeError("@app.task: give the name once, first or as name=, not both.")
            options["name"], func = func, None

        def decorator(function: Callable[..., Any]) -> BaseTask:
            known = {key: value for key, value in options.items() if key in TASK_OPTIONS}
            extra = {key: value for key, value in options.items() if key not in TASK_OPTIONS}
            handle = self.handle_class(function)(self, function, extra=extra, **known)
            self.register(handle)
            return handle

        if func is not None:
            return decorator(func)
        return decorator

    def handle_class(self, func: Callable[..., Any]) -> type[BaseTask]:
        """SyncTask or AsyncTask, after the function (the async app makes AsyncTasks only)."""
        return handle_class_for(func)

    @property
    def config(self) -> QueueConfig:
        """QTasks' ``app.config``: its names, read from QTASKS where they have a meaning here."""
        if self._config is None:
            self._config = QueueConfig()
        return self._config

    def register(self, handle: BaseTask) -> None:
        existing = self._tasks.get(handle.task_name)
        if existing is not None and existing.location != handle.location:
            raise DuplicateTask(
                f"A task named {handle.task_name!r} is already registered at "
                f"{existing.location}; the second one is at {handle.location}. "
                "Give one of them another name with @app.task(name=...)."
            )
        # The same function imported twice (e.g. under two module paths) is
        # the same task: keep the newest handle.
        self._tasks[handle.task_name] = handle

    def include_router(self, router: Router) -> None:
        """Register the tasks of a ``SyncRouter``/``AsyncRouter`` with this app."""
        router.include_into(self)

    def add_plugin(
        self, plugin: Any, trigger_names: list[str] | None = None, component: str = "worker"
    ) -> None:
        """Add a QTasks-style plugin for ``trigger_names`` (every trigger when None).

        ``component`` is accepted for QTasks' signature: the worker fires
        every trigger (see ``django_qtasks.plugins.TRIGGERS``).
        """
        self.plugins.add(plugin, trigger_names)

    def unregister(self, name: str) -> None:
        self._tasks.pop(name, None)

    @property
    def tasks(self) -> Mapping[str, BaseTask]:
        return MappingProxyType(self._tasks)

    def get_task(self, name: str) -> BaseTask:
        try:
            return self._tasks[name]
        except KeyError:
            known = ", ".join(sorted(self._tasks)) or "none"
            raise UnknownTask(
                f"No task named {name!r} is registered (registered: {known}). Is the module "
                "that defines it an installed app's tasks.py, or imported by one?"
            ) from None

    def handle_for(self, record: Task) -> BaseTask | None:
        """The handle that runs ``record`` in a worker; None when no task has its name.

        A row written by the django.tasks backend (``extra["django_task"]``)
        names a ``django.tasks.Task`` by its module path: the runner that the
        backend registered (``ROW_RUNNERS``) imports it and wraps it in a
        handle, so it runs even if no tasks module imported it. Raises when
        such a row's function cannot be loaded.
        """
        if isinstance(record.extra, dict):
            for key, runner in ROW_RUNNERS.items():
                if key in record.extra:
                    return runner(self, record)
        return self._tasks.get(record.task_name)

    def autodiscover(self) -> None:
        """Import the ``tasks`` module of every installed app (and the modules
        named by ``autodiscover_tasks``, ``TASK_MODULES``)."""
        from django.utils.module_loading import autodiscover_modules

        autodiscover_modules(*TASK_MODULES)

    # Enqueueing -------------------------------------------------------------

    def add_task(
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
        """Enqueue the registered task ``task_name``; see ``SyncTask.add_task``."""
        handle = self.get_task(task_name)
        return self.enqueue(
            handle,
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
        task_name: str,
        *args: Any,
        priority: int | None = None,
        timeout: float | None = None,
        queue: str | None = None,
        delay: Delay | None = None,
        eta: datetime | None = None,
        **kwargs: Any,
    ) -> Task | None:
        handle = self.get_task(task_name)
        return await self.aenqueue(
            handle,
            args,
            kwargs,
            priority=priority,
            queue=queue,
            timeout=timeout,
            delay=delay,
            eta=eta,
        )

    @overload
    def enqueue(
        self,
        handle: BaseTask,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any],
        *,
        priority: int | None = None,
        queue: str | None = None,
        timeout: None = None,
        delay: Delay | None = None,
        eta: datetime | None = None,
        schedule: Schedule | None = None,
        chain_steps: list[dict[str, Any]] | None = None,
    ) -> Task: ...

    @overload
    def enqueue(
        self,
        handle: BaseTask,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any],
        *,
        priority: int | None = None,
        queue: str | None = None,
        timeout: float | None = None,
        delay: Delay | None = None,
        eta: datetime | None = None,
        schedule: Schedule | None = None,
        chain_steps: list[dict[str, Any]] | None = None,
    ) -> Task | None: ...

    def enqueue(
        self,
        handle: BaseTask,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any],
        *,
        priority: int | None = None,
        queue: str | None = None,
        timeout: float | None = None,
        delay: Delay | None = None,
        eta: datetime | None = None,
        schedule: Schedule | None = None,
        chain_steps: list[dict[str, Any]] | None = None,
    ) -> Task | None:
        """Write a Task row for ``handle`` and deliver it on commit.

        With ``delay`` (seconds) or ``eta`` (an aware datetime), no worker
        starts it before then.
        """
        where = f"add_task of {handle.task_name!r}"
        record = new_record(
            handle,
            args,
            kwargs,
            priority=checked_priority(where, priority),
            queue=queue,
            run_after=run_after(where, delay, eta),
            schedule=schedule,
            chain_steps=chain_steps,
        )
        return self.submit(record, timeout=timeout)

    def add_tasks(
        self,
        steps: Iterable[Step | BaseTask],
        *,
        priority: int | None = None,
        queue: str | None = None,
        delay: Delay | None = None,
        eta: datetime | None = None,
    ) -> list[Task]:
        """Enqueue many tasks at once: ``app.add_tasks(send.s(user) for user in users)``.

        Each step is ``handle.s(*args, **kwargs)``, or a handle for a task
        that takes no argument. Every step is checked before anything is
        written: an unknown task or arguments that are not JSON raise, and
        no task is enqueued. The rows are written in one transaction, a few
        hundred per ``INSERT``, and delivered when it commits. ``priority``,
        ``queue``, ``delay`` and ``eta`` apply to every task.
        """
        where = "add_tasks"
        priority = checked_priority(where, priority)
        when = run_after(where, delay, eta)
        records = []
        for step in steps:
            if isinstance(step, BaseTask):
                step = step.s()
            if not isinstance(step, Step):
                raise TypeError(
                    f"add_tasks takes task.s(...) steps or tasks, not {step!r}; e.g. "
                    "app.add_tasks(send.s(user.pk) for user in users)."
                )
            handle = self.get_task(step.task_name)
            records.append(
                new_record(
                    handle, step.args, step.kwargs, priority=priority, queue=queue, run_after=when
                )
            )
        if records:
            self.deliver(records)
        return records

    async def aadd_tasks(
        self,
        steps: Iterable[Step | BaseTask],
        *,
        priority: int | None = None,
        queue: str | None = None,
        delay: Delay | None = None,
        eta: datetime | None = None,
    ) -> list[Task]:
        return await sync_to_async(self.add_tasks)(
            list(steps), priority=priority, queue=queue, delay=delay, eta=eta
        )

    @overload
    def submit(self, record: Task, timeout: None = None) -> Task: ...

    @overload
    def submit(self, record: Task, timeout: float | None = None) -> Task | None: ...

    def submit(self, record: Task, timeout: float | None = None) -> Task | None:
        """Save a new Task row and deliver it to the broker once it is committed."""
        from django.db import transaction

        from django_qtasks.models import task_db

        if timeout is not None and transaction.get_connection(task_db()).in_atomic_block:
            raise QTasksError(
                "add_task(timeout=...) cannot wait inside transaction.atomic(): the task is "
                "only delivered when the transaction commits. Wait after the block instead."
            )
        self.deliver([record])
        if timeout is not None:
            return self.wait_or_none(record.uuid, timeout)
        return record

    def wait_or_none(self, uuid: UUID, timeout: float) -> Task | None:
        """``wait``, but None when it expires, as in QTasks (``WAIT_TIMEOUT_RAISES`` raises)."""
        try:
            return self.wait(uuid, timeout)
        except WaitTimeout:
            if qtasks_settings.WAIT_TIMEOUT_RAISES:
                raise
            logger.warning("Task %s did not end within %gs; it goes on.", uuid, timeout)
            return None

    def deliver(self, records: list[Task]) -> None:
        """Insert new Task rows, all or none; the broker gets them once committed.

        A worker never sees a task before the data it needs, and a task whose
        transaction rolls back never runs. In immediate mode they run in this
        process instead (``django_qtasks.immediate``).
        """
        from django.db import transaction

        from django_qtasks.brokers import get_broker
        from django_qtasks.models import task_store

        store = task_store()
        if qtasks_settings.IMMEDIATE and IMMEDIATE_RUNNER:
            insert(store, records)
            IMMEDIATE_RUNNER[0](records, store.using)
            return
        broker = get_broker()
        insert(store, records)
        transaction.on_commit(lambda: publish_committed(broker, records), using=store.using)

    async def aenqueue(
        self,
        handle: BaseTask,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any],
        *,
        priority: int | None = None,
        queue: str | None = None,
        timeout: float | None = None,
        delay: Delay | None = None,
        eta: datetime | None = None,
    ) -> Task | None:
        def enqueue() -> Task | None:
            return self.enqueue(
                handle,
                args,
                kwargs,
                priority=priority,
                queue=queue,
                timeout=timeout,
                delay=delay,
                eta=eta,
            )

        return await sync_to_async(enqueue)()

    # Lookups ----------------------------------------------------------------

    def get(self, uuid: UUID | str) -> Task | None:
        """The Task record with this uuid, or None."""
        from django_qtasks.models import task_by_uuid

        return task_by_uuid(uuid)

    async def aget(self, uuid: UUID | str) -> Task | None:
        return await sync_to_async(self.get)(uuid)

    def wait(self, uuid: UUID, timeout: float) -> Task:
        """Wait until the task ends and return its record."""
        from django_qtasks.models import wait_for_end

        return wait_for_end(uuid, timeout, self.wait_pause_with_messages, self.wait_pause_polling)


def insert(store: TaskStore, records: list[Task]) -> None:
    """Insert new rows; with tracing on, in their enqueue span, their trace context set."""
    tracer = active_tracer()
    if tracer is None:
        store.insert(records)
        return
    with tracer.sending(records):
        store.insert(records)


def publish_committed(broker: Broker, records: list[Task]) -> None:
    """Publish committed rows; a failure of any kind is logged, never raised.

    The rows are committed: raising would tell the caller that nothing was
    enqueued (one that retries makes duplicates) and, at the commit of a
    ``transaction.atomic()`` block, skip the other ``on_commit`` callbacks.
    An unpublished row waits in the outbox, which the workers' sweeps send.
    """
    try:
        broker.publish_many(records)
    except Exception as exc:
        logger.warning(
            "Could not publish task %s%s to %s (%s: %s); it is saved, and waits in the "
            "outbox for a worker to publish it.",
            records[0].uuid,
            f" and {len(records) - 1} more" if len(records) > 1 else "",
            broker.safe_url,
            type(exc).__name__,
            exc,
            exc_info=True,
        )


def new_record(
    handle: BaseTask,
    args: tuple[Any, ...] | list[Any],
    kwargs: dict[str, Any],
    *,
    priority: int | None,
    queue: str | None,
    run_after: datetime | None,
    schedule: Schedule | None = None,
    chain_steps: list[dict[str, Any]] | None = None,
) -> Task:
    """An unsaved Task row for ``handle``, its arguments checked to be JSON and to fit
    the function (``handle.check_call``)."""
    from django_qtasks.models import Task

    record = Task.new(
        handle.task_name,
        args,
        kwargs,
        priority=handle.priority if priority is None else priority,
        queue=queue or handle.queue,
        extra=handle.extra,
        tags=handle.tags,
        max_attempts=handle.retry + 1,
        run_after=run_after,
        schedule=schedule,
        chain_steps=chain_steps or [],
    )
    handle.check_call(args, kwargs)
    return record
