"""Deleting in batches: one short transaction each (``django_qtasks.retention``)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, OperationalError, connections, transaction
from django.db.models import Q
from django.utils import timezone

from django_qtasks.conf import qtasks_settings
from django_qtasks.models import Schedule, Task, TaskQuerySet, task_db
from django_qtasks.retention.postgresql import delete_batch_postgresql
from django_qtasks.retention.selection import ENDED, Counts, Selection

logger = logging.getLogger("django_qtasks.retention")

#: Times in a row a batch is selected again after a conflict (a new link to one
#: of its rows, a deadlock between two purges) before the purge gives up.
CONFLICTS = 3


@dataclass
class Purged:
    """What a purge deleted."""

    deleted: Counts = field(default_factory=Counter)
    batches: int = 0
    #: False when it was stopped before it had looked at every matching row.
    complete: bool = True

    @property
    def total(self) -> int:
        return sum(self.deleted.values())

    def add(self, other: Purged) -> None:
        self.deleted.update(other.deleted)
        self.batches += other.batches
        self.complete = self.complete and other.complete


def purge(
    selection: Selection,
    *,
    batch_size: int | None = None,
    now: datetime | None = None,
    using: str | None = None,
    stop: Callable[[], bool] | None = None,
) -> Purged:
    """Delete the tasks of ``selection``, ``batch_size`` rows per transaction.

    ``stop`` is asked before each batch; when it says so, the purge returns
    with what it deleted so far (``complete`` False).
    """
    using = using or task_db()
    now = now or timezone.now()
    limit = batch_limit(batch_size or qtasks_settings.RETENTION_BATCH_SIZE, using)
    purged = Purged()
    for order, rows in selection.phases(using, now):
        after: tuple[Any, ...] | None = None
        conflicts = 0
        while True:
            if stop is not None and stop():
                purged.complete = False
                return purged
            try:
                after, selected, deleted = delete_batch(rows, order, after, limit, using)
            except (IntegrityError, OperationalError) as exc:
                conflicts += 1
                if conflicts > CONFLICTS:
                    raise
                logger.warning("A batch of tasks to delete was rolled back (%s); trying again", exc)
                continue
            conflicts = 0
            if selected:
                purged.batches += 1
                purged.deleted.update(deleted)
                logger.debug("Deleted a batch of %s tasks", sum(deleted.values()))
            if selected < limit:  # none left after it
                break
    return purged


def batch_limit(batch_size: int, using: str) -> int:
    """``batch_size``, within the parameters one statement may take (999 on SQLite)."""
    most = connections[using].features.max_query_params or 10_000
    return max(1, min(batch_size, most - len(ENDED) - 10))


def delete_batch(
    rows: TaskQuerySet,
    order: tuple[str, ...],
    after: tuple[Any, ...] | None,
    limit: int,
    using: str,
) -> tuple[tuple[Any, ...] | None, int, Counts]:
    """Delete one batch of ``rows``: those after ``after`` in ``order``, up to ``limit``.

    Returns the order's values of the last row selected (where the next batch
    starts), how many rows were selected, and the rows deleted by status and
    task name.
    """
    connection = connections[using]
    locks = connection.features.has_select_for_update_skip_locked
    page = following(rows, order, after).order_by(*order)
    columns = (*order, "status", "task_name")
    width = len(order)
    if connection.vendor == "postgresql":
        with transaction.atomic(using=using):
            selected = delete_batch_postgresql(page.values_list(*columns)[:limit], columns, using)
        if not selected:
            return after, 0, Counter()
        deleted: Counts = Counter((row[width], row[width + 1]) for row in selected)
        return tuple(selected[-1][:width]), len(selected), deleted
    if not locks:
        # SQLite: read first, outside the transaction, so that the transaction
        # begins with a write and takes the database's write lock at once.
        selected = list(page.values_list(*columns)[:limit])
        if not selected:
            return after, 0, Counter()
    with transaction.atomic(using=using):
        if locks:
            selected = list(page.select_for_update(skip_locked=True).values_list(*columns)[:limit])
            if not selected:
                return after, 0, Counter()
        pks = [row[width - 1] for row in selected]
        unlink(pks, using)
        mine = selected
        if not locks:
            # This transaction writes now, and no other can: the rows still
            # here are this batch's (another purge may have taken some).
            present = set(Task.objects.using(using).filter(pk__in=pks).values_list("pk", flat=True))
            mine = [row for row in selected if row[width - 1] in present]
        gone = Task.objects.using(using).filter(pk__in=[row[width - 1] for row in mine])
        if not locks:
            gone = gone.filter(status__in=ENDED)
        # By primary key alone where the rows are locked: a condition on another
        # column may make MySQL scan, and wait for rows that another purge holds.
        gone._raw_delete(using)
    deleted = Counter((row[width], row[width + 1]) for row in mine)
    return tuple(selected[-1][:width]), len(selected), deleted


def following(
    rows: TaskQuerySet, order: tuple[str, ...], after: tuple[Any, ...] | None
) -> TaskQuerySet:
    """The rows after ``after`` in ``order`` (``("finished_at", "pk")`` or ``("pk",)``)."""
    if after is None:
        return rows
    if order == ("pk",):
        return rows.filter(pk__gt=after[0])
    ended, pk = after
    # The first condition alone is what the index on finished_at serves.
    return rows.filter(finished_at__gte=ended).filter(Q(finished_at__gt=ended) | Q(pk__gt=pk))


def unlink(pks: list[Any], using: str) -> None:
    """Set to NULL the links to these rows: those of ended tasks, and of schedules.

    A task not yet ended that points to one keeps its link: the foreign key
    then refuses the delete (see the module's docstring).
    """
    ended = Task.objects.using(using).filter(status__in=ENDED)
    ended.filter(retry_of__in=pks).update(retry_of=None)
    ended.filter(chain_previous__in=pks).update(chain_previous=None)
    Schedule.objects.using(using).filter(last_task__in=pks).update(last_task=None)
