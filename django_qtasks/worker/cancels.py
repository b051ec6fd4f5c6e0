"""Cancel requests for the tasks a worker runs or holds.

The worker looks for them every ``CANCEL_POLL_INTERVAL`` in its database
lane, and with Redis's fast signals (``REDIS_CACHE_ALIAS``) as soon as one is
made. Runs stop on the event loop's thread (``Slots.request_cancels``).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable

from django.db.models import Q

from django_qtasks.models import Task, TaskStatus, task_db
from django_qtasks.notify import Notifier
from django_qtasks.worker.lane import DatabaseLane
from django_qtasks.worker.slots import Slots


class CancelWatch:
    def __init__(
        self,
        worker_id: str,
        slots: Slots,
        lane: DatabaseLane,
        notifier: Notifier,
        loop: asyncio.AbstractEventLoop,
        wake: Callable[[], None],
    ) -> None:
        self.worker_id = worker_id
        self.slots = slots
        self.lane = lane
        self.notifier = notifier
        self.loop = loop
        #: Brings the claiming loop back to start the tasks cancelled in the reserve.
        self.wake = wake

    def watch(self, stopped: threading.Event) -> None:
        """With Redis, act on a cancel request as soon as it is made, until ``stopped``."""
        if not self.notifier.fast:
            return

        def on_cancel() -> None:
            asyncio.run_coroutine_threadsafe(self.signalled(), self.loop)

        threading.Thread(
            target=self.notifier.watch_cancels,
            args=(on_cancel, stopped),
            name="qtasks-cancels",
            daemon=True,
        ).start()

    async def signalled(self) -> None:
        """A cancel was just requested (Redis): look now (on the loop's thread)."""
        await self.lane.run(self.poll_cancels, self.slots.held_keys(), True)

    def poll_cancels(self, held: list[uuid.UUID], signalled: bool = False) -> None:
        """Look for cancel requests of ``held``, the tasks this worker runs or holds (in
        the lane).

        ``signalled``: a cancel was just requested (Redis). Then also the rows
        of a claim that has ended but whose tasks are not in the reserve yet:
        no other look would come before the next poll.
        """
        ours = Q(pk__in=held)
        if signalled:
            ours |= Q(worker=self.worker_id, status=TaskStatus.PROCESS)
        elif not held:
            return
        requested = list(
            Task.objects.using(task_db())
            .filter(ours, cancel_requested_at__isnull=False)
            .values_list("pk", "cancel_reason")
        )
        if requested:
            self.loop.call_soon_threadsafe(self.apply, requested)

    def apply(self, requested: list[tuple[uuid.UUID, str]]) -> None:
        """Stop these runs; tasks not started yet start as cancelled (on the loop's thread)."""
        if self.slots.request_cancels(requested):
            self.wake()
