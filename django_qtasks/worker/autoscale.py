"""``--autoscale MAX,MIN``: how many children a pool needs for the depth of its queues.

Up at once, down one child at a time and only after the queues have needed
fewer for ``AUTOSCALE_IDLE`` seconds: a burst of work does not make the pool
flap.
"""

from __future__ import annotations

import logging
import math

from django_qtasks.models import Task, task_db

logger = logging.getLogger("django_qtasks.worker")


class Autoscaler:
    def __init__(
        self, *, most: int, least: int, concurrency: int, queues: list[str], idle_for: float
    ) -> None:
        self.most = most
        self.least = least
        self.concurrency = concurrency
        self.queues = queues
        self.idle_for = idle_for
        #: Since when (monotonic) the queues have needed fewer children.
        self.low_since: float | None = None

    def load(self) -> int:
        """Tasks due or running in the queues, counted up to what ``most`` children can take."""
        cap = self.most * self.concurrency
        rows = Task.objects.using(task_db())
        due = rows.due(self.queues).order_by()[:cap].count()
        running = rows.running().filter(queue__in=self.queues).order_by()[:cap].count()
        return due + running

    def wanted(self, current: int, now: float, load: int) -> int:
        """The children to have now, given ``current`` (not retiring) and the ``load``."""
        need = min(self.most, max(self.least, math.ceil(load / self.concurrency)))
        if need >= current:
            self.low_since = None
            return need
        if self.low_since is None:
            self.low_since = now
        if now - self.low_since < self.idle_for:
            return current
        self.low_since = now  # the next step down waits as long again
        return current - 1
