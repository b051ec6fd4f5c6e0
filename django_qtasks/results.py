"""Waiting for a task's end, as QTasks' ``qtasks.results``.

``SyncResult(uuid=task.uuid).result(timeout=50)`` gives the ended Task, or
None when it has not ended in time (or does not exist). ``AsyncResult`` is
the same, awaited. ``Task.wait_result(timeout)`` and
``Task.wait_result_async(timeout)`` wait on one record.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from uuid import UUID

from asgiref.sync import sync_to_async

from django_qtasks.exceptions import WaitTimeout
from django_qtasks.registry import default_app

if TYPE_CHECKING:
    from django_qtasks.app import QTasksApp
    from django_qtasks.models import Task


class SyncResult:
    def __init__(
        self,
        uuid: UUID | str | None = None,
        app: QTasksApp | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.uuid = uuid
        self._app = app
        self.log = log or logging.getLogger("django_qtasks.results")

    def result(self, timeout: float = 100) -> Task | None:
        """The task once it has ended; None if it does not end within ``timeout`` seconds."""
        from django_qtasks.models import Task, task_db, wait_for_end

        if self.uuid is None:
            raise ValueError("Task UUID is not set.")
        try:
            uuid = self.uuid if isinstance(self.uuid, UUID) else UUID(str(self.uuid))
        except ValueError:
            return None
        if not Task.objects.using(task_db()).filter(pk=uuid).exists():
            self.log.warning("Task %s not found!", uuid)
            return None
        # The sync wait, also for the async app.
        app = self._app or default_app()
        try:
            return wait_for_end(uuid, timeout, app.wait_pause_with_messages, app.wait_pause_polling)
        except WaitTimeout:
            self.log.warning("Task %s timed out after %s seconds!", uuid, timeout)
            return None


class AsyncResult(SyncResult):
    async def result(self, timeout: float = 100) -> Task | None:  # type: ignore[override]
        return await sync_to_async(SyncResult.result)(self, timeout)


__all__ = ["AsyncResult", "SyncResult"]
