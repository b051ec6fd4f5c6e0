"""Which ended tasks a purge deletes, and which it keeps (``django_qtasks.retention``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from django_qtasks.models import Task, TaskQuerySet, task_db
from django_qtasks.statuses import FINAL_STATUSES, TaskStatus

#: The statuses a task ends in: only these are ever deleted.
ENDED: tuple[str, ...] = tuple(status.value for status in FINAL_STATUSES)
#: The others: tasks waiting or running, never deleted, nor what they point to.
NOT_ENDED: tuple[str, ...] = tuple(
    status.value for status in TaskStatus if status not in FINAL_STATUSES
)
#: Rows deleted (or to delete), by status and task name.
Counts = Counter[tuple[str, str]]


@dataclass(frozen=True)
class Selection:
    """Which ended tasks to delete: of these statuses, these task names (all when
    empty), that ended more than ``older_than`` ago (whenever when None)."""

    statuses: tuple[str, ...] = ENDED
    older_than: timedelta | None = None
    task_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        wrong = [status for status in self.statuses if status not in ENDED]
        if wrong or not self.statuses:
            raise ValueError(
                f"Only tasks that ended are deleted (statuses {', '.join(ENDED)}), "
                f"not {', '.join(wrong) or 'none'}."
            )

    def cutoff(self, now: datetime) -> datetime | None:
        return None if self.older_than is None else now - self.older_than

    def deletable(self, using: str) -> TaskQuerySet:
        """Rows of these statuses and names that no task not yet ended points to."""
        rows = Task.objects.using(using).filter(status__in=self.statuses)
        if self.task_names:
            rows = rows.filter(task_name__in=self.task_names)
        return rows.exclude(pointed_at_by_unended())

    def phases(self, using: str, now: datetime) -> list[tuple[tuple[str, ...], TaskQuerySet]]:
        """The rows to delete in two parts, each with the order its batches go in.

        Aged by ``finished_at``, in that order (its index), so that each batch
        starts where the last one stopped; then rows that ended without one
        (only rows written by hand), aged by ``created_at``, in primary key order.
        """
        rows = self.deletable(using)
        stamped = rows.filter(finished_at__isnull=False)
        unstamped = rows.filter(finished_at__isnull=True)
        cutoff = self.cutoff(now)
        if cutoff is not None:
            stamped = stamped.filter(finished_at__lt=cutoff)
            unstamped = unstamped.filter(created_at__lt=cutoff)
        return [(("finished_at", "pk"), stamped), (("pk",), unstamped)]

    def matching(self, using: str, now: datetime) -> TaskQuerySet:
        """Every row the selection matches, pointed at or not."""
        rows = Task.objects.using(using).filter(status__in=self.statuses)
        if self.task_names:
            rows = rows.filter(task_name__in=self.task_names)
        cutoff = self.cutoff(now)
        if cutoff is not None:
            rows = rows.filter(
                Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, created_at__lt=cutoff)
            )
        return rows


def pointed_at_by_unended() -> Q:
    """Rows that a task not yet ended points to, as a chain's next step or as a retry."""
    unended = Task.objects.filter(status__in=NOT_ENDED)
    return Q(Exists(unended.filter(chain_previous=OuterRef("pk")))) | Q(
        Exists(unended.filter(retry_of=OuterRef("pk")))
    )


def count(selection: Selection, *, now: datetime | None = None, using: str | None = None) -> Counts:
    """The rows ``purge`` would delete now, by status and task name (``--dry-run``)."""
    using = using or task_db()
    rows = selection.matching(using, now or timezone.now()).exclude(pointed_at_by_unended())
    grouped = rows.order_by().values_list("status", "task_name").annotate(rows=Count("pk"))
    return Counter({(status, name): number for status, name, number in grouped})


def count_kept(
    selection: Selection, *, now: datetime | None = None, using: str | None = None
) -> int:
    """The rows the selection matches that are kept: a task not yet ended points to them."""
    using = using or task_db()
    rows = selection.matching(using, now or timezone.now())
    return rows.filter(pointed_at_by_unended()).count()
