"""Retention: deleting tasks that ended, in short batches.

``manage.py qtasks_purge`` and the beat (``QTASKS["RETENTION"]``) both call
``purge``. Each batch is one short transaction on the task database
(``task_db()``):

1. select up to ``batch_size`` rows that match, in the order they ended,
   ``FOR UPDATE SKIP LOCKED`` where the database has it (PostgreSQL, MySQL 8,
   MariaDB 10.6): a row that another purge holds is left to the next pass;
2. set to NULL the links to them held by other ended rows (``retry_of``,
   ``chain_previous``) and by schedules (``Schedule.last_task``);
3. ``DELETE ... WHERE pk IN (...)``: no ORM collector, no delete signals.

Never deleted: a task that has not ended (``new``, ``process``, ``retry``),
and an ended one that a task not yet ended points to. Its ``chain_previous``:
the chain's waiters (``wait_for_chain``, immediate mode) find a step's next
one through that link. Its ``retry_of``: nothing reads it while the retry
runs, but keeping the original means that a purge never writes a row that a
worker may be claiming or finishing. Both are deleted at a later pass, once
what points to them has ended.

A link made between the selection and the delete (a retry of that very task
at that moment) fails the batch's foreign-key check: the batch is rolled back
and selected again, and the new link keeps its row.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, OperationalError, connections, transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from django_qtasks.conf import qtasks_settings
from django_qtasks.models import Schedule, Task, TaskQuerySet, task_db
from django_qtasks.statuses import FINAL_STATUSES, TaskStatus

logger = logging.getLogger("django_qtasks.retention")

#: The statuses a task ends in: only these are ever deleted.
ENDED: tuple[str, ...] = tuple(status.value for status in FINAL_STATUSES)
#: The others: tasks waiting or running, never deleted, nor what they point to.
NOT_ENDED: tuple[str, ...] = tuple(
    status.value for status in TaskStatus if status not in FINAL_STATUSES
)
#: Times in a row a batch is selected again after a conflict (a new link to one
#: of its rows, a deadlock between two purges) before the purge gives up.
CONFLICTS = 3

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


#: A batch on PostgreSQL, one statement: the rows are selected and locked once
#: (``batch``); the links to them held by other ended rows are set to NULL, by
#: one UPDATE per row (two UPDATEs of one row in one statement would keep only
#: one of them), found through the indexes of both links, then by primary key
#: (an array: a join made the planner scan the table); so are those of
#: schedules; and the rows are deleted. The deferred foreign keys are checked
#: at the commit.
POSTGRESQL_BATCH = """
    WITH batch ({columns}) AS ({select}),
    linked AS (
        SELECT t.{pk} FROM {task} AS t JOIN batch ON t.{retry_of} = batch."pk"
        WHERE t."status" IN ({ended})
        UNION
        SELECT t.{pk} FROM {task} AS t JOIN batch ON t.{chain_previous} = batch."pk"
        WHERE t."status" IN ({ended})
    ),
    unlinked AS (
        UPDATE {task} AS t SET
            {retry_of} = CASE WHEN EXISTS (SELECT FROM batch WHERE "pk" = t.{retry_of})
                THEN NULL ELSE t.{retry_of} END,
            {chain_previous} = CASE WHEN EXISTS (SELECT FROM batch WHERE "pk" = t.{chain_previous})
                THEN NULL ELSE t.{chain_previous} END
        WHERE t.{pk} = ANY (ARRAY(SELECT {pk} FROM linked))
            AND NOT EXISTS (SELECT FROM batch WHERE "pk" = t.{pk})
    ),
    schedules AS (
        UPDATE {schedule} AS s SET {last_task} = NULL FROM batch WHERE s.{last_task} = batch."pk"
    ),
    deleted AS (DELETE FROM {task} AS t USING batch WHERE t.{pk} = batch."pk")
    SELECT {columns} FROM batch
"""


def delete_batch_postgresql(
    page: Any, columns: tuple[str, ...], using: str
) -> list[tuple[Any, ...]]:
    """``delete_batch`` on PostgreSQL, in one round trip: the rows of ``page`` (a
    ``values_list`` of ``columns``), locked, unlinked and deleted. Inside a transaction.

    Where the ORM sent four statements of a thousand parameters each, and
    compiled them, for about as much time as the database took.
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    select, params = page.select_for_update(skip_locked=True).query.get_compiler(using).as_sql()
    task = Task._meta
    sql = POSTGRESQL_BATCH.format(
        columns=", ".join(quote(column) for column in columns),
        select=select,
        task=quote(task.db_table),
        pk=quote(task.get_field("uuid").column),
        retry_of=quote(task.get_field("retry_of").column),
        chain_previous=quote(task.get_field("chain_previous").column),
        ended=", ".join(f"'{status}'" for status in ENDED),
        schedule=quote(Schedule._meta.db_table),
        last_task=quote(Schedule._meta.get_field("last_task").column),
    )
    with connection.cursor() as cursor:
        # The planner prices a scan of the whole index for the LIMIT, and
        # compiled the statement with JIT: 100 ms of a batch's 120.
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, params)
        return [tuple(row) for row in cursor.fetchall()]


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


# The beat's share: QTASKS["RETENTION"] ------------------------------------------------


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
