"""``QTASKS["RETENTION"]``, applied by the beat (``django_qtasks.retention``)."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.db import connections
from django.utils import timezone

from django_qtasks.conf import qtasks_settings
from django_qtasks.retention.batches import Purged, purge
from django_qtasks.retention.selection import ENDED, Counts, Selection

logger = logging.getLogger("django_qtasks.retention")


def retention_selections(setting: Mapping[str, Any]) -> list[Selection]:
    """What ``QTASKS["RETENTION"]`` deletes: a selection per period, shortest first
    (statuses kept equally long share one)."""
    by_period: dict[timedelta, list[str]] = {}
    for status in ENDED:
        period = setting.get(status)
        if period is None:
            continue
        if not isinstance(period, timedelta):
            period = timedelta(seconds=period)
        by_period.setdefault(period, []).append(status)
    return [
        Selection(statuses=tuple(statuses), older_than=period)
        for period, statuses in sorted(by_period.items())
    ]


def describe(deleted: Counts) -> str:
    """``"success 120, cancel 3"``: rows by status, in the statuses' order."""
    by_status: Counter[str] = Counter()
    for (status, _), number in deleted.items():
        by_status[status] += number
    return ", ".join(f"{status} {by_status[status]}" for status in ENDED if by_status[status])


class Retention:
    """Deletes what ``QTASKS["RETENTION"]`` no longer keeps, for a beat.

    A pass at the beat's start, then every ``RETENTION_INTERVAL`` seconds, on
    a thread and a database connection of its own: the beat's schedules (and,
    under ``qtasks_worker --beat``, the worker's database calls) never wait
    for it. Several beats may each run passes: batches are short, a row held
    by one purge is skipped by the other, and deleting is idempotent, so two
    beats purging at once only share the work.
    """

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def enabled(self) -> bool:
        return bool(retention_selections(qtasks_settings.RETENTION))

    def run_pass(self, now: datetime | None = None) -> Purged:
        """Delete every task that RETENTION no longer keeps; what was deleted."""
        now = now or timezone.now()
        purged = Purged()
        for selection in retention_selections(qtasks_settings.RETENTION):
            purged.add(purge(selection, now=now, stop=self.stopping.is_set))
        if purged.total:
            logger.info(
                "Retention: deleted %s tasks (%s) in %s batches%s",
                purged.total,
                describe(purged.deleted),
                purged.batches,
                "" if purged.complete else "; stopped before the end",
            )
        return purged

    def start(self) -> None:
        """Run passes on a thread of their own, if RETENTION keeps anything for a time."""
        if self.thread is not None or not self.enabled():
            return
        self.stopping.clear()
        self.thread = threading.Thread(target=self.loop, name="qtasks-retention", daemon=True)
        self.thread.start()
        logger.info(
            "Retention: a pass every %ss (%s)",
            qtasks_settings.RETENTION_INTERVAL,
            ", ".join(
                f"{'/'.join(selection.statuses)} after {selection.older_than}"
                for selection in retention_selections(qtasks_settings.RETENTION)
            ),
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the batch under way (not from a signal handler: it joins the thread)."""
        self.stopping.set()
        thread, self.thread = self.thread, None
        if thread is not None:
            thread.join(timeout)

    def loop(self) -> None:
        try:
            while not self.stopping.is_set():
                try:
                    self.run_pass()
                except Exception:
                    logger.exception("Retention: the pass failed; trying again at the next one")
                finally:
                    connections.close_all()  # this thread's; a new one at the next pass
                self.stopping.wait(float(qtasks_settings.RETENTION_INTERVAL))
        finally:
            connections.close_all()
