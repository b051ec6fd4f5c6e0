"""QTasks' test helpers: ``SyncTestCase``/``AsyncTestCase`` and ``TestConfig``.

They keep QTasks' calls (``case.settings(TestConfig.full())``,
``case.add_task("name", 5, timeout=10)``, ``case.get(uuid)``) over this
project's app: tasks are rows in the test database, run by a real worker.
``start()``/``start_in_background()`` run ``manage.py qtasks_worker`` as a
process of its own (it must see the test database: a TransactionTestCase,
or pytest-django's ``transactional_db``), ``stop()`` ends it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from django_qtasks.app import QTasksApp
    from django_qtasks.models import Task

logger = logging.getLogger("django_qtasks.testing")


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
