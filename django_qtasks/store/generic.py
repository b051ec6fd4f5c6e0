"""The task store on any database Django supports: the ORM, and plain SQL where
the ORM's query compiler cost more CPU than the statement.

Values are adapted with the fields' own ``get_db_prep_save`` and
``from_db_value``, so that every database reads and writes what the ORM would.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.conf import settings
from django.db import connections, models, transaction
from django.db.models import DateTimeField, Exists, ExpressionWrapper, F, OuterRef, Q, signals
from django.db.models.functions import Now
from django.utils import timezone

from django_qtasks.conf import qtasks_settings
from django_qtasks.statuses import TaskStatus

if TYPE_CHECKING:
    from django_qtasks.models import Task, TaskQuerySet, WorkerHeartbeat

#: Rows per ``INSERT`` of ``TaskStore.insert``, at most (fewer where the
#: database takes fewer parameters per statement, as SQLite does).
INSERT_BATCH = 500
#: Rows ``mark_published`` marks in one statement where it ORs their conditions.
MARKS_PER_STATEMENT = 400


class DatabaseNow(Now):
    """The database's clock, the one every worker's heartbeat is written and judged by."""

    def as_mysql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        # CURRENT_TIMESTAMP is in the session's time zone; stored times are UTC.
        template = "UTC_TIMESTAMP(6)" if settings.USE_TZ else "CURRENT_TIMESTAMP(6)"
        return self.as_sql(compiler, connection, template=template, **extra_context)

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        # To the millisecond (Django 4.2's CURRENT_TIMESTAMP is to the second).
        template = "STRFTIME('%%%%Y-%%%%m-%%%%d %%%%H:%%%%M:%%%%f', 'NOW')"
        return self.as_sql(compiler, connection, template=template, **extra_context)


def heartbeat_cutoff() -> Any:
    """Heartbeats older than this, by the database's clock, are out of date."""
    return ExpressionWrapper(
        DatabaseNow() - timedelta(seconds=float(qtasks_settings.HEARTBEAT_TIMEOUT)),
        output_field=DateTimeField(),
    )


def still_mine(worker_id: str) -> dict[str, Any]:
    """The guard of every write of a run: a row failed over meanwhile is not overwritten."""
    return {"status": TaskStatus.PROCESS, "worker": worker_id}


def attempt_entry(record: Task, status: str, error: str, now: datetime) -> dict[str, Any]:
    """One item of ``Task.attempt_log``: the attempt that just ended."""
    return {
        "attempt": record.attempts,
        "worker": record.worker,
        "started_at": record.started_at.isoformat() if record.started_at else None,
        "finished_at": now.isoformat(),
        "status": status,
        "error": error,
    }


@dataclass
class Carried:
    """A write of results as one statement, on PostgreSQL: run alone, or carried by a claim.

    A claim that the worker sends while results wait takes them in its own
    statement: one round trip for both. ``sql`` is an ``UPDATE ...
    RETURNING`` of primary keys (``PostgresTaskStore.update_statement``);
    ``pks`` holds them once it ran.
    """

    sql: str
    params: list[Any]
    pks: list[Any] = field(default_factory=list)

    def run(self, using: str) -> None:
        """Run it alone, for a claim that sends no statement."""
        with connections[using].cursor() as cursor:
            cursor.execute(self.sql, self.params)
            self.pks = [pk for (pk,) in cursor.fetchall()]


class TaskStore:
    """Every change of state of the task table, on the database ``using``.

    Each change is one statement guarded by the state it leaves, so that two
    processes never both make the same transition. This class works on every
    database; ``PostgresTaskStore`` replaces the hot statements with faster
    ones. Get the store with ``models.task_store()``.
    """

    #: Whether a claim can carry a write of results (``update_statement``).
    carries_writes = False

    def __init__(
        self, task_model: type[Task], heartbeat_model: type[WorkerHeartbeat], using: str
    ) -> None:
        self.task_model = task_model
        self.heartbeat_model = heartbeat_model
        self.using = using
        self.fields: tuple[Any, ...] = tuple(task_model._meta.concrete_fields)
        self.fields_by_name = {f.name: f for f in self.fields}
        pk_field = task_model._meta.pk
        assert pk_field is not None
        self.pk_field: Any = pk_field
        quote = connections[using].ops.quote_name
        self.table = quote(task_model._meta.db_table)
        self.columns = ", ".join(quote(f.column) for f in self.fields)
        self._insert_sql: dict[int, str] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.using!r}>"

    def rows(self) -> TaskQuerySet:
        """Every task row of this store's database."""
        return self.task_model._default_manager.using(self.using)

    # Enqueue -----------------------------------------------------------------

    def insert(self, tasks: Sequence[Task]) -> None:
        """``task.save(force_insert=True)`` for each task, all or none of them.

        Enqueueing is one insert per task, and the ORM compiler took about as
        much CPU as the rest of ``add_task``: the statement is built once, for
        up to ``INSERT_BATCH`` rows. Fields prepare their values as in
        ``save()`` (``auto_now`` included), and the model's save signals are sent.
        """
        using, model = self.using, self.task_model
        connection = connections[using]
        for task in tasks:
            signals.pre_save.send(model, instance=task, raw=False, using=using, update_fields=None)
        rows = [
            [f.get_db_prep_save(f.pre_save(task, add=True), connection) for f in self.fields]
            for task in tasks
        ]
        batch = max(1, min(INSERT_BATCH, connection.ops.bulk_batch_size(self.fields, tasks)))
        # One statement is all or nothing by itself; several need a transaction.
        writing = (
            transaction.atomic(using=using)
            if len(rows) > batch
            else transaction.mark_for_rollback_on_error(using)
        )
        with writing, connection.cursor() as cursor:
            for start in range(0, len(rows), batch):
                self._insert_rows(cursor, rows[start : start + batch])
        for task in tasks:
            task._state.adding = False
            task._state.db = using
            signals.post_save.send(
                model, instance=task, created=True, update_fields=None, raw=False, using=using
            )

    def _insert_rows(self, cursor: Any, rows: list[list[Any]]) -> None:
        sql = self._insert_sql.get(len(rows))
        if sql is None:
            row = "(" + ", ".join("%s" for _ in self.fields) + ")"
            sql = f"INSERT INTO {self.table} ({self.columns}) VALUES {', '.join([row] * len(rows))}"
            if len(self._insert_sql) < 64:
                self._insert_sql[len(rows)] = sql
        cursor.execute(sql, [value for row in rows for value in row])

    def mark_published(self, tasks: Sequence[Task], now: datetime) -> None:
        """Note that a broker accepted these tasks' messages (``published_at``).

        A mark applies only to the state the row was in when its message was
        sent: still waiting, and with the ``updated_at`` of that state (every
        claim, retry and hand-back writes a new one). A task that was claimed,
        failed and handed back to ``retry`` before this mark landed keeps
        ``published_at`` empty, so that the outbox sends it again.
        """
        # Two parameters a task, within the database's limit; and each row's
        # condition nests the OR one level deeper: SQLite refuses an
        # expression deeper than 1000 ("Expression tree is too large").
        step = max(1, min(MARKS_PER_STATEMENT, (self.max_params() - 4) // 2))
        for start in range(0, len(tasks), step):
            sent = Q()
            for task in tasks[start : start + step]:
                sent |= Q(pk=task.pk, updated_at=task.updated_at)
            self.rows().ready().filter(sent, published_at__isnull=True).update(published_at=now)

    def mark_for_redelivery(self, pks: list[UUID], sent_before: datetime) -> list[Task]:
        """Stamp the due rows among ``pks`` whose message went out before ``sent_before``.

        The rows stamped, best first: another worker doing the same at the
        same time stamps none of them, so that one worker sends each again.
        """
        stamp = timezone.now()
        self.rows().ready().filter(pk__in=pks, published_at__lt=sent_before).exclude(
            run_after__gt=stamp
        ).update(published_at=stamp)
        return list(self.rows().filter(pk__in=pks, published_at=stamp).order_by(*CLAIM_ORDER))

    def back_to_outbox(self, rows: TaskQuerySet) -> int:
        """Mark the waiting ones of ``rows`` unpublished: their messages may be lost.
        How many changed (``TaskQuerySet.back_to_outbox``), on their own database.

        A worker's outbox sweep publishes them again (``KombuBroker.publish_outbox``);
        a message that did survive becomes a duplicate, dropped at its claim.
        """
        return rows.ready().filter(published_at__isnull=False).update(published_at=None)

    # Claim -------------------------------------------------------------------

    def claim_due(
        self, queues: list[str], limit: int, worker_id: str, carried: Carried | None = None
    ) -> list[Task]:
        """Claim up to ``limit`` due tasks of ``queues`` for ``worker_id``; their rows, best first.

        A task is never claimed by two workers. ``carried`` (PostgreSQL only)
        is a write of results sent in the claim's own statement.
        """
        assert carried is None, "carried writes are PostgreSQL's"
        now = timezone.now()
        due = self.rows().due(queues, now)
        if connections[self.using].features.has_select_for_update_skip_locked:
            with transaction.atomic(using=self.using):
                rows = list(due.select_for_update(skip_locked=True)[:limit])
                if rows:
                    self.rows().filter(pk__in=[row.pk for row in rows]).update(
                        **claim_values(worker_id, now)
                    )
            return claimed(rows, worker_id, now)
        # SQLite has one writer: the claim is guarded by the status it leaves,
        # and a row another worker took in between is not ours. Those lost are
        # looked for again, so that a short claim means that nothing is due.
        taken: list[Task] = []
        for _ in range(3):
            rows = list(due[: limit - len(taken)])
            if not rows:
                break
            pks = [row.pk for row in rows]
            count = self.rows().ready().filter(pk__in=pks).update(**claim_values(worker_id, now))
            if count != len(rows):
                mine = set(
                    self.rows()
                    .filter(pk__in=pks, worker=worker_id, started_at=now)
                    .values_list("pk", flat=True)
                )
                rows = [row for row in rows if row.pk in mine]
            taken += rows
            if count == len(pks) or len(taken) >= limit:
                break
        return claimed(taken, worker_id, now)

    def claim_by_id(
        self, pks: list[UUID], worker_id: str, carried: Carried | None = None
    ) -> list[Task]:
        """Claim those of ``pks`` that wait and are due, for ``worker_id``; their rows, best first.

        The others (already run, cancelled, deleted, not due) are left as they are.
        """
        assert carried is None, "carried writes are PostgreSQL's"
        now = timezone.now()
        self.rows().ready().filter(pk__in=pks).exclude(run_after__gt=now).update(
            **claim_values(worker_id, now)
        )
        return list(
            self.rows().filter(pk__in=pks, worker=worker_id, started_at=now).order_by(*CLAIM_ORDER)
        )

    # A claimed task's row ----------------------------------------------------

    def update(self, pk: Any, guard: dict[str, Any], values: dict[str, Any]) -> int:
        """``rows().filter(pk=pk, **guard).update(**values)`` for plain values; rows changed."""
        connection = connections[self.using]
        quote = connection.ops.quote_name
        assignments, params = [], []
        for name, value in values.items():
            assignments.append(f"{quote(self.fields_by_name[name].column)} = %s")
            params.append(self.fields_by_name[name].get_db_prep_save(value, connection))
        conditions = [f"{quote(self.pk_field.column)} = %s"]
        params.append(self.pk_field.get_db_prep_value(pk, connection))
        return self._update(assignments, conditions, params, guard)

    def update_many(
        self, guard: dict[str, Any], changes: Sequence[tuple[Any, dict[str, Any]]]
    ) -> set[Any]:
        """``update`` for many rows at once; the primary keys of the rows changed.

        Rows that change the same columns are written together: in one
        transaction, by one ``UPDATE`` with a ``CASE`` per column.
        """
        saved: set[Any] = set()
        with transaction.atomic(using=self.using):
            for group in _by_columns(changes):
                saved.update(self._update_group(guard, group))
        return saved

    def update_statement(
        self, guard: dict[str, Any], changes: Sequence[tuple[Any, dict[str, Any]]]
    ) -> Carried | None:
        """``update_many`` as one statement for a claim to carry: PostgreSQL only."""
        return None

    def hand_back(self, pks: list[UUID], worker_id: str, *, unless_alive: bool = False) -> int:
        """Put tasks claimed by ``worker_id`` but never started back in the queue, unattempted.

        ``unless_alive``: only if ``worker_id`` is dead when the statement runs
        (a fail-over, not the worker itself). How many went back.
        """
        rows = self.rows().running().filter(pk__in=pks, worker=worker_id)
        if unless_alive:
            rows = self.unless_owner_alive(rows)
        return rows.update(
            status=TaskStatus.NEW,
            worker="",
            started_at=None,
            published_at=None,
            attempts=F("attempts") - 1,
            updated_at=timezone.now(),
        )

    def hand_back_interrupted(
        self, record: Task, worker_id: str, logs: list[Any], reason: str
    ) -> bool:
        """Put a run that its worker stopped back in the queue; whether it went back.

        The attempt is in its attempt log as ``interrupted``, with its log
        lines, and does not use up a retry: its next run is another attempt,
        with one more allowed.
        """
        now = timezone.now()
        limit = qtasks_settings.LOG_LINES
        return bool(
            self.rows()
            .filter(pk=record.pk, **still_mine(worker_id))
            .update(
                status=TaskStatus.NEW,
                worker="",
                started_at=None,
                published_at=None,
                max_attempts=F("max_attempts") + 1,
                logs=[*record.logs, *logs][-limit:],
                attempt_log=[
                    *record.attempt_log,
                    attempt_entry(record, "interrupted", reason, now),
                ],
                updated_at=now,
            )
        )

    def take_over(self, orphan: Task, message: str, *, unless_alive: bool) -> bool:
        """Retry ``orphan`` if it has attempts left, else fail it, with ``message``.

        ``unless_alive``: only if its worker is dead when the statement runs.
        Whether the row changed (not if it ended or its worker came back).
        """
        now = timezone.now()
        retry = orphan.attempts < orphan.max_attempts
        rows = self.rows().running().filter(pk=orphan.pk, worker=orphan.worker)
        if unless_alive:
            rows = self.unless_owner_alive(rows)
        return bool(
            rows.update(
                status=TaskStatus.RETRY if retry else TaskStatus.ERROR,
                traceback=message,
                attempt_log=[
                    *orphan.attempt_log,
                    attempt_entry(orphan, TaskStatus.ERROR, message, now),
                ],
                run_after=now if retry else orphan.run_after,
                published_at=None,
                finished_at=None if retry else now,
                updated_at=now,
            )
        )

    def cancel(self, pk: Any, reason: str, by: str) -> str | None:
        """Cancel a task: ``"ended"`` if it was waiting (it never starts), ``"requested"``
        if it runs (its worker stops it), None if it had ended."""
        now = timezone.now()
        rows = self.rows().filter(pk=pk)
        cancel = {
            "cancel_reason": reason,
            "canceled_by": by,
            "cancel_requested_at": now,
            "updated_at": now,
        }
        if rows.ready().update(status=TaskStatus.CANCEL, finished_at=now, **cancel):
            return "ended"
        if rows.running().update(**cancel):
            return "requested"
        return None

    def relax_commits(self) -> None:
        """Let this connection's commits return before they reach the disk, where the
        database offers it (the worker's own commits: see ``worker.lane.relax_commits``)."""

    # Helpers -------------------------------------------------------------------

    def unless_owner_alive(self, rows: TaskQuerySet) -> TaskQuerySet:
        """Leave out the rows of a worker whose heartbeat is fresh when the statement
        runs, whatever it was when they were read."""
        owner_alive = self.heartbeat_model._default_manager.filter(
            worker_id=OuterRef("worker"), last_heartbeat__gte=heartbeat_cutoff()
        )
        return rows.exclude(Exists(owner_alive))

    def tasks_from_rows(self, rows: Sequence[Sequence[Any]]) -> list[Task]:
        """Task instances from rows of every column in model order."""
        connection = connections[self.using]
        converters = [
            (index, f.from_db_value)
            for index, f in enumerate(self.fields)
            if hasattr(f, "from_db_value")
        ]
        attnames = [f.attname for f in self.fields]
        tasks = []
        for row in rows:
            values = list(row)
            for index, convert in converters:
                values[index] = convert(values[index], None, connection)
            tasks.append(self.task_model.from_db(self.using, attnames, values))
        return tasks

    def max_params(self) -> int:
        """Parameters one statement may take (SQLite has a limit; 999 in older versions)."""
        return connections[self.using].features.max_query_params or 10_000

    def _update(
        self,
        assignments: list[str],
        conditions: list[str],
        params: list[Any],
        guard: dict[str, Any],
    ) -> int:
        """``UPDATE`` the task table: ``SET`` the assignments ``WHERE`` the conditions and
        each guarded column equals its value; rows changed."""
        connection = connections[self.using]
        quote = connection.ops.quote_name
        for name, value in guard.items():
            conditions.append(f"{quote(self.fields_by_name[name].column)} = %s")
            params.append(self.fields_by_name[name].get_db_prep_value(value, connection))
        sql = f"UPDATE {self.table} SET {', '.join(assignments)} WHERE {' AND '.join(conditions)}"
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return int(cursor.rowcount)

    def _update_group(
        self, guard: dict[str, Any], group: Sequence[tuple[Any, dict[str, Any]]]
    ) -> set[Any]:
        """``update`` for rows that change the same columns, in one statement.

        The ``UPDATE`` tells how many rows it changed, not which (MySQL has no
        ``RETURNING`` for it): when the guard kept some out (a row failed over
        meanwhile), it is rolled back to a savepoint and the rows go one by one.
        Inside a transaction.
        """
        # Parameters: a pk and a value per row and column, the pks again, the guard.
        per_statement = max(1, (self.max_params() - len(guard)) // (2 * len(group[0][1]) + 1))
        if len(group) > per_statement:
            return {
                pk
                for start in range(0, len(group), per_statement)
                for pk in self._update_group(guard, group[start : start + per_statement])
            }
        if len(group) > 1:
            with transaction.atomic(using=self.using):  # a savepoint
                written = self._update_by_case(guard, group)
                if written != len(group):
                    transaction.set_rollback(True, using=self.using)
            if written == len(group):
                return {pk for pk, _ in group}
        return {pk for pk, values in group if self.update(pk, guard, values)}

    def _update_by_case(
        self, guard: dict[str, Any], group: Sequence[tuple[Any, dict[str, Any]]]
    ) -> int:
        """``UPDATE ... SET column = CASE pk WHEN ... END, ...``; rows matched."""
        connection = connections[self.using]
        quote = connection.ops.quote_name
        pk_column = quote(self.pk_field.column)
        pks = [self.pk_field.get_db_prep_value(pk, connection) for pk, _ in group]
        assignments, params = [], []
        for name in group[0][1]:
            column = self.fields_by_name[name]
            whens = " ".join(["WHEN %s THEN %s"] * len(group))
            assignments.append(f"{quote(column.column)} = CASE {pk_column} {whens} END")
            for pk, (_, values) in zip(pks, group, strict=True):
                params += [pk, column.get_db_prep_save(values[name], connection)]
        conditions = [f"{pk_column} IN ({', '.join(['%s'] * len(pks))})"]
        params += pks
        return self._update(assignments, conditions, params, guard)


#: The order tasks are claimed in: priority (lower first), then age.
CLAIM_ORDER = ("priority", "created_at")


def claim_values(worker_id: str, now: datetime) -> dict[str, Any]:
    """What a claim writes on a row, for ``QuerySet.update()``."""
    return {
        "status": TaskStatus.PROCESS,
        "worker": worker_id,
        "started_at": now,
        "finished_at": None,
        "attempts": F("attempts") + 1,
        "updated_at": now,
    }


def claimed(rows: list[Task], worker_id: str, now: datetime) -> list[Task]:
    """The rows read before their claim, as the claim left them."""
    for row in rows:
        row.status = TaskStatus.PROCESS
        row.worker = worker_id
        row.started_at = now
        row.finished_at = None
        row.attempts += 1
        row.updated_at = now
    return rows


def _by_columns(
    changes: Sequence[tuple[Any, dict[str, Any]]],
) -> list[list[tuple[Any, dict[str, Any]]]]:
    """The changes, grouped by the columns they write."""
    groups: dict[tuple[str, ...], list[tuple[Any, dict[str, Any]]]] = {}
    for pk, values in changes:
        groups.setdefault(tuple(values), []).append((pk, values))
    return list(groups.values())


def column_type(column: models.Field[Any, Any], connection: Any) -> str:
    """The column's type without a length, so that a cast never truncates."""
    return re.sub(r"\(\d+\)$", "", str(column.db_type(connection)))
