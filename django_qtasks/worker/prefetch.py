"""How many tasks a worker claims ahead of its free slots, and when it gives them back.

A number for ``PREFETCH`` claims that many ahead, always. ``"auto"`` claims
ahead only as many as recent runs say will start within ``PREFETCH_WINDOW``,
and none while a run is long (the tasks held would wait behind it, kept from
other workers); what is held ahead and sees no start for the window goes back
to the queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

#: ``PREFETCH = "auto"``: a task claimed ahead of a free slot should start
#: within this many seconds, or go back to the queue.
PREFETCH_WINDOW = 0.1
#: ... and a worker holds at most this many per slot. The window is what
#: bounds the wait; this only caps the batch for sub-millisecond tasks, where
#: batches of 16 a slot drained a third faster than Celery's 4.
PREFETCH_PER_SLOT = 16


class PrefetchPolicy:
    """The prefetch of one worker: told of each start and end, asked how many to hold."""

    def __init__(
        self,
        concurrency: int,
        prefetch: int | str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.concurrency = concurrency
        #: "auto" (as conf checks), or a fixed number.
        self.auto = isinstance(prefetch, str)
        #: The most claimed ahead.
        self.most = concurrency * PREFETCH_PER_SLOT if isinstance(prefetch, str) else prefetch
        self.clock = clock
        #: A moving average of how long runs take (None until one ended).
        self.run_seconds: float | None = None
        #: When a task last started (``clock``).
        self.last_start = 0.0
        #: Since when tasks or messages are held ahead (None: nothing is).
        self.holding_since: float | None = None

    @property
    def first_unclaimed(self) -> int:
        """Messages to receive and hold unclaimed before any run has ended.

        With "auto", no more than the slots until runs prove short (on Redis
        the worker then moves the bound with ``ahead``).
        """
        return self.concurrency + (0 if self.auto else self.most)

    def started(self) -> None:
        self.last_start = self.clock()

    def ended(self, seconds: float) -> None:
        """Fold a run's length into the moving average that "auto" goes by."""
        if self.run_seconds is None:
            self.run_seconds = seconds
        else:
            self.run_seconds += 0.2 * (seconds - self.run_seconds)

    def ahead(self, run_starts: Iterable[float]) -> int:
        """How many tasks to claim ahead of the free slots now.

        ``run_starts``: when each run under way started (``clock``).
        """
        if not self.auto:
            return self.most
        now = self.clock()
        if self.run_seconds is None or any(now - start > PREFETCH_WINDOW for start in run_starts):
            return 0  # nothing known yet, or a long run: what it holds would wait
        fit = int(self.concurrency * PREFETCH_WINDOW / max(self.run_seconds, 1e-6))
        return min(fit, self.most)

    def held_too_long(self, holding: bool, free_slots: int) -> bool:
        """With "auto": whether what is held ahead (``holding``) should go back now.

        Only while no slot is free: with one free, what is held is claimed
        next. (A worker that gave messages back while it had free slots took
        them straight back from Redis, and gave them back again, without end:
        it never claimed.) Yes starts a new window for what is held next.
        """
        if not holding or free_slots > 0:
            self.holding_since = None
            return False
        if self.clock() <= self.hand_back_at():
            return False
        self.holding_since = self.clock()
        return True

    def hand_back_at(self) -> float:
        """When what is held goes back: the window after the last start, or after it came.

        (After an idle spell or an outage, the last start is long past.)
        """
        if self.holding_since is None:
            self.holding_since = self.clock()
        return max(self.last_start, self.holding_since) + PREFETCH_WINDOW
