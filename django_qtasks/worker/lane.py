"""The worker's database lane: one thread for all of the worker's own database work.

One thread, so that the worker holds one connection and its writes never
race each other; and each call first writes the outcomes waiting in the
result writer, so that under load results go with the statements the worker
makes anyway. On PostgreSQL a claim carries them in its own statement: one
round trip for the results and the next tasks.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import connections

from django_qtasks.conf import qtasks_settings
from django_qtasks.models import task_store
from django_qtasks.stalls import watching
from django_qtasks.worker.writer import ResultWriter, refused_values, settle

if TYPE_CHECKING:
    from django_qtasks.brokers.base import Broker
    from django_qtasks.models import Task
    from django_qtasks.store import Carried

T = TypeVar("T")


class DatabaseLane:
    def __init__(
        self, writer: ResultWriter, broker: Broker, queues: list[str], worker_id: str
    ) -> None:
        self.writer = writer
        self.broker = broker
        self.queues = queues
        self.worker_id = worker_id
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="qtasks-db")
        #: Calls sent to the thread, and those it has begun; while one waits
        #: its turn, it will take the outcomes waiting.
        self.calls_sent = 0
        self.calls_begun = 0

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` in the lane, after writing the outcomes waiting."""
        return await self._send(functools.partial(self._call, function, *args))

    async def claim(self, limit: int) -> list[Task]:
        """Claim up to ``limit`` tasks, and write the outcomes waiting (PostgreSQL: at once)."""
        return await self._send(functools.partial(self._claim, limit))

    def call_waiting(self) -> bool:
        """Whether a call waits its turn: it will write the outcomes waiting."""
        return self.calls_begun != self.calls_sent

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    async def _send(self, call: Callable[[], T]) -> T:
        self.calls_sent += 1
        return await asyncio.get_running_loop().run_in_executor(self.pool, call)

    # In the lane's thread ------------------------------------------------------

    def _call(self, function: Callable[..., T], *args: Any) -> T:
        self.calls_begun += 1  # before taking the outcomes (see call_waiting)
        name = getattr(getattr(function, "func", function), "__name__", "?")
        with watching(f"The worker's database call {name}"):
            # First, and outside the try: it never raises, so the outcomes this
            # call was counted on to write are always taken (a failed write goes
            # back to each run's save_outcome).
            self.writer.write_waiting()
            try:
                relax_commits()
                return function(*args)
            except Exception:
                # A broken connection is replaced on the next call.
                connections.close_all()
                raise

    def _claim(self, limit: int) -> list[Task]:
        self.calls_begun += 1
        with watching("The worker's claim"):
            endings = self.writer.take()
            carried = self.writer.carried(endings)
            if carried is None:
                self.writer.write(endings)
                endings = []
            try:
                relax_commits()
                records = self._claim_tasks(limit, carried)
            except Exception as exc:
                connections.close_all()
                if endings and refused_values(exc):
                    # The outcomes carried made the claim fail: write them on
                    # their own (``write`` isolates the bad one); the claim is
                    # tried again as after any failure.
                    self.writer.write(endings)
                elif endings:
                    settle(endings, exc)  # save_outcome tries again
                raise
            if carried is not None:
                self.writer.written(endings, set(carried.pks))
            return records

    def _claim_tasks(self, limit: int, carried: Carried | None) -> list[Task]:
        """Claim due rows, or those named by the broker's messages; ``carried`` goes with it."""
        store = task_store()
        if not self.broker.delivers_messages:
            return store.claim_due(self.queues, limit, self.worker_id, carried)
        taken = self.broker.take(limit)
        if not taken:
            if carried is not None:
                carried.run(store.using)
            return []
        try:
            records = store.claim_by_id([uuid for uuid, _ in taken], self.worker_id, carried)
        except Exception:
            self.broker.settle(taken, None)
            raise
        self.broker.settle(taken, {record.pk for record in records})
        return records


def relax_commits() -> None:
    """Let the worker's own commits return before the disk flush, where the database can.

    Each commit of a claim or a result would otherwise wait about a millisecond
    for the WAL to reach the disk, and that wait bounds how many tasks a
    worker runs a second. What a database crash can take back (its last
    fraction of a second) is redone: a lost claim makes the row ``new``
    again, and a lost result is found by ``FailOver.lost_rows``. Clients'
    enqueues keep the database's own setting. QTASKS["WORKER_SYNCHRONOUS_COMMIT"]
    = True turns this off.
    """
    if not qtasks_settings.WORKER_SYNCHRONOUS_COMMIT:
        task_store().relax_commits()
