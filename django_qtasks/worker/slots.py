"""The worker's slots: the runs under way and the tasks claimed ahead of a free slot.

``concurrency`` runs at once. A run holds its slot until its outcome is
known; it stays in ``running`` until that outcome is written. Tasks claimed
ahead (prefetch) wait in the reserve, in the order they start. Owned by the
event loop's thread; the heartbeat thread reads the keys under way.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django_qtasks.context import RunState
from django_qtasks.models import Task
from django_qtasks.worker.executor import Outcome


@dataclass
class Running:
    record: Task
    run: RunState
    #: The execution alone: cancelling it never interrupts saving the outcome.
    future: asyncio.Future[Outcome] | None = None
    saved_progress: int = 0
    saved_lines: int = 0
    started: float = field(default_factory=time.monotonic)
    #: When its outcome became known; from then on, its slot is free while
    #: the outcome waits to be written.
    ended_at: datetime | None = None
    #: Its row was taken from this worker while it ran: its outcome is not ours to write.
    taken: bool = False


class Slots:
    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.running: dict[uuid.UUID, Running] = {}
        #: Guards ``running`` against the heartbeat thread, which reads it.
        self._lock = threading.Lock()
        #: Claimed ahead of a free slot (``prefetch``), in the order they start.
        self.reserved: collections.deque[Task] = collections.deque()
        #: Cancel requests for reserved tasks: they start at once, and stop.
        self.early_cancels: dict[uuid.UUID, str] = {}

    def add(self, entry: Running) -> None:
        with self._lock:
            self.running[entry.record.uuid] = entry

    def remove(self, key: uuid.UUID) -> None:
        with self._lock:
            self.running.pop(key, None)

    def under_way(self) -> list[Running]:
        """The runs not ended yet: each holds a slot (an ended one waits only for its write)."""
        return [entry for entry in self.running.values() if entry.ended_at is None]

    def under_way_keys(self) -> list[uuid.UUID]:
        """The keys of the runs not ended yet (from any thread; see ``Heartbeat``)."""
        with self._lock:
            return [key for key, entry in self.running.items() if entry.ended_at is None]

    def entries(self) -> list[Running]:
        """The runs under way or whose outcome waits to be written."""
        return list(self.running.values())

    def held_keys(self) -> list[uuid.UUID]:
        """Every task this worker holds: running, waiting to be written, or reserved."""
        return [*self.running, *(record.pk for record in self.reserved)]

    def idle(self) -> bool:
        return not self.running and not self.reserved

    def free(self) -> int:
        return self.concurrency - len(self.under_way())

    def to_start(self) -> list[Task]:
        """Take out of the reserve what starts now: the tasks cancelled meanwhile (they
        end at once), then one task per free slot."""
        cancelled = [record for record in self.reserved if record.pk in self.early_cancels]
        for record in cancelled:
            self.reserved.remove(record)
        free = self.free() - len(cancelled)
        starting = []
        while self.reserved and free > 0:
            starting.append(self.reserved.popleft())
            free -= 1
        return [*cancelled, *starting]

    def request_cancels(self, requested: list[tuple[uuid.UUID, str]]) -> bool:
        """Stop these runs; tasks not started yet start as cancelled. Whether some wait
        to start (the caller then wakes the claiming loop to start them)."""
        waiting = False
        for pk, reason in requested:
            entry = self.running.get(pk)
            if entry is None:  # in the reserve, or on its way there
                self.early_cancels.setdefault(pk, reason)
                waiting = True
            elif entry.run.cancel_reason is None:
                entry.run.request_cancel(reason)
                if entry.future is not None:
                    entry.future.cancel()
        return waiting
