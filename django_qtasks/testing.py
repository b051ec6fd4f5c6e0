"""Helpers for testing code that uses tasks.

- ``immediate()``: run tasks in the test's process when they are enqueued
  (``QTASKS["IMMEDIATE"]``); ``run_pending()`` runs what waits.
- ``enqueued()``/``assert_enqueued()``: the tasks that wait to run.
- ``WorkerThread``: a real worker in a thread of the test process, on queues
  of its own; ``wait_for()`` waits until tasks end.
- The pytest plugin (``django_qtasks.pytest_plugin``) offers them as fixtures.

QTasks' test helpers, ``SyncTestCase``/``AsyncTestCase`` and ``TestConfig``,
keep QTasks' calls (``case.settings(TestConfig.full())``,
``case.add_task("name", 5, timeout=10)``, ``case.get(uuid)``) over this
project's app: tasks are rows in the test database, run by a real worker.
``start()``/``start_in_background()`` run ``manage.py qtasks_worker`` as a
process of its own (it must see the test database: a TransactionTestCase,
or pytest-django's ``transactional_db``), ``stop()`` ends it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import uuid as uuid_module
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.conf import settings
from django.test.utils import override_settings

from django_qtasks.conf import SETTING_NAME
from django_qtasks.immediate import WAITING, run_pending
from django_qtasks.models import Task, task_db

if TYPE_CHECKING:
    from django_qtasks.app import QTasksApp
    from django_qtasks.task import BaseTask
    from django_qtasks.worker.worker import Worker

__all__ = [
    "AsyncTestCase",
    "SyncTestCase",
    "TestConfig",
    "WorkerThread",
    "assert_enqueued",
    "enqueued",
    "immediate",
    "run_pending",
    "wait_for",
]

logger = logging.getLogger("django_qtasks.testing")


def with_qtasks(**changes: Any) -> override_settings:
    """``override_settings`` of QTASKS keys, keeping the project's other keys."""
    return override_settings(**{SETTING_NAME: {**getattr(settings, SETTING_NAME, {}), **changes}})


def immediate() -> override_settings:
    """Immediate mode for a block, a test or a test case class (``QTASKS["IMMEDIATE"]``).

    ``with immediate():``, ``@immediate()``: tasks run in this process when
    they are enqueued, or when the transaction they were enqueued in
    commits (see ``django_qtasks.immediate``).
    """
    return with_qtasks(IMMEDIATE=True)


def enqueued(task: BaseTask | str | None = None, *, queue: str | None = None) -> list[Task]:
    """The tasks that wait to run (``new`` or ``retry``), oldest first; of ``task`` if given."""
    rows = Task.objects.using(task_db()).filter(status__in=WAITING)
    if task is not None:
        rows = rows.filter(task_name=task if isinstance(task, str) else task.task_name)
    if queue is not None:
        rows = rows.filter(queue=queue)
    return list(rows.order_by("created_at"))


def assert_enqueued(
    task: BaseTask | str,
    args: Iterable[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    *,
    count: int | None = None,
) -> list[Task]:
    """Assert that ``task`` waits to run (with these ``args``/``kwargs`` if given); its rows.

    ``count`` asks for exactly that many. The error lists what waits.
    """
    name = task if isinstance(task, str) else task.task_name
    waiting = enqueued()
    matching = [
        row
        for row in waiting
        if row.task_name == name
        and (args is None or row.args == list(args))
        and (kwargs is None or row.kwargs == kwargs)
    ]
    if (count is None and matching) or (count is not None and len(matching) == count):
        return matching
    wanted = f"{name}(args={list(args) if args is not None else '...'}, kwargs={kwargs or '...'})"
    seen = "".join(
        f"\n  {row.task_name}(args={row.args}, kwargs={row.kwargs}) [{row.status}]"
        for row in waiting
    )
    raise AssertionError(
        f"Expected {'at least 1' if count is None else count} waiting {wanted}, found "
        f"{len(matching)}. Waiting:{seen or ' none'}"
    )


def wait_for(tasks: Task | Iterable[Task], timeout: float = 60) -> list[Task]:
    """Wait until each task has ended (a worker runs them); the rows, refreshed.

    Raises ``WaitTimeout`` when one has not ended within ``timeout`` seconds.
    """
    from django_qtasks.registry import default_app

    rows = [tasks] if isinstance(tasks, Task) else list(tasks)
    return [default_app().wait(row.uuid, timeout) for row in rows]


class WorkerThread:
    """A real worker, the one ``qtasks_worker`` runs, in a thread of the test process.

    It sees only committed rows: use it in a test that commits
    (``TransactionTestCase``, pytest-django's ``transactional_db``). Its
    broker queues have a prefix of their own (``QUEUE_PREFIX``), so that it
    never takes another environment's messages on a shared Redis or
    RabbitMQ. ``with WorkerThread() as worker:`` or ``start()``/``stop()``.
    """

    def __init__(
        self,
        queues: list[str] | None = None,
        concurrency: int | None = None,
        queue_prefix: str | None = None,
        start_timeout: float = 60,
    ) -> None:
        self.queues = queues
        self.concurrency = concurrency
        self.queue_prefix = queue_prefix or f"qtasks-test-{uuid_module.uuid4().hex[:12]}"
        self.start_timeout = start_timeout
        self.worker: Worker | None = None
        self.error: BaseException | None = None
        self._settings = with_qtasks(QUEUE_PREFIX=self.queue_prefix)
        self._settings_on = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> WorkerThread:
        from django_qtasks.worker.worker import Worker

        self._settings.enable()
        self._settings_on = True
        try:
            self.worker = Worker(
                queues=self.queues, concurrency=self.concurrency, tell_supervisor=self._told
            )
            self._thread = threading.Thread(target=self._run, name="qtasks-test-worker")
            self._thread.start()
            if not self._started.wait(self.start_timeout) or self.error is not None:
                raise AssertionError(
                    f"The test worker did not start within {self.start_timeout}s: {self.error!r}"
                )
        except BaseException:
            self.stop()
            raise
        return self

    def _told(self, message: bytes) -> None:
        from django_qtasks.worker.worker import READY

        if message == READY:  # it consumes: what is enqueued now reaches it
            self._started.set()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
            logger.exception("The test worker failed")
        finally:
            self._started.set()

    async def _main(self) -> None:
        assert self.worker is not None
        self._loop = asyncio.get_running_loop()
        await self.worker.main()

    def stop(self, timeout: float = 60) -> None:
        """Stop the worker (its running tasks end first), and raise what made it fail."""
        try:
            if self._thread is not None and self._thread.is_alive():
                if self._loop is not None and self.worker is not None:
                    self._loop.call_soon_threadsafe(self.worker.stop)
                self._thread.join(timeout)
                if self._thread.is_alive():
                    raise AssertionError(f"The test worker did not stop within {timeout}s")
        finally:
            if self._settings_on:
                self._settings.disable()
                self._settings_on = False
        if self.error is not None:
            raise AssertionError("The test worker failed") from self.error

    def __enter__(self) -> WorkerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass
class TestConfig:
    """Which parts a test case uses, with QTasks' names.

    Tasks always go through the database here: ``broker`` or ``worker``
    enables ``add_task``; ``storage`` enables ``get``. The other flags are
    kept for QTasks' signature.
    """

    __test__ = False  # not a test class, for pytest

    worker: bool = False
    broker: bool = False
    storage: bool = False
    global_config: bool = False
    plugins: bool = False

    @classmethod
    def full(cls) -> TestConfig:
        return cls(worker=True, broker=True, storage=True, global_config=True, plugins=True)

    @classmethod
    def only_worker(cls, plugins: bool = False) -> TestConfig:
        return cls(worker=True, plugins=plugins)

    @classmethod
    def only_broker(cls, plugins: bool = False) -> TestConfig:
        return cls(broker=True, plugins=plugins)

    @classmethod
    def full_broker(cls) -> TestConfig:
        return cls(broker=True, storage=True, global_config=True, plugins=True)


class BaseTestCase:
    def __init__(self, app: QTasksApp, name: str | None = None) -> None:
        self.app = app
        self.name = name
        self.test_config = TestConfig()
        self.process: subprocess.Popen[bytes] | None = None

    def settings(self, test_config: TestConfig | None = None, awaiting: bool = False) -> None:
        if test_config is not None:
            self.test_config = test_config

    def can_add(self) -> bool:
        if self.test_config.broker or self.test_config.worker:
            return True
        logger.warning(
            "[%s: %s] add_task needs TestConfig with broker or worker enabled, e.g. "
            "case.settings(TestConfig.full()).",
            type(self).__name__,
            self.name,
        )
        return False

    def worker_command(self, num_workers: int) -> list[str]:
        return [sys.executable, "-m", "django", "qtasks_worker", "--concurrency", str(num_workers)]

    def start_in_background(self, starter: Any = None, num_workers: int = 4, **_: Any) -> None:
        """Start ``manage.py qtasks_worker`` beside the tests; ``stop()`` ends it."""
        from django.conf import settings

        env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE}
        self.process = subprocess.Popen(self.worker_command(num_workers), env=env)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class SyncTestCase(BaseTestCase):
    """``SyncTestCase(app=app)``: ``add_task`` and ``get`` return Task records."""

    def start(self, starter: Any = None, num_workers: int = 4, **_: Any) -> None:
        """Run a worker until it stops (``run_forever`` in QTasks)."""
        self.start_in_background(num_workers=num_workers)
        assert self.process is not None
        self.process.wait()

    def add_task(
        self,
        task_name: str,
        *args: Any,
        priority: int = 0,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Task | None:
        if not self.can_add():
            return None
        return self.app.add_task(task_name, *args, priority=priority, timeout=timeout, **kwargs)

    def get(self, uuid: UUID | str) -> Task | None:
        return self.app.get(uuid)


class AsyncTestCase(BaseTestCase):
    """``AsyncTestCase(app=app)``: ``add_task``, ``get``, ``start`` and ``stop`` are coroutines."""

    async def start(self, starter: Any = None, num_workers: int = 4, **_: Any) -> None:
        self.start_in_background(num_workers=num_workers)

    async def stop(self) -> None:  # type: ignore[override]
        from asgiref.sync import sync_to_async

        await sync_to_async(BaseTestCase.stop)(self)

    async def add_task(
        self,
        task_name: str,
        *args: Any,
        priority: int = 0,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Task | None:
        if not self.can_add():
            return None
        return await self.app.aadd_task(
            task_name, *args, priority=priority, timeout=timeout, **kwargs
        )

    async def get(self, uuid: UUID | str) -> Task | None:
        return await self.app.aget(uuid)
