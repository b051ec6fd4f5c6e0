"""The task store on PostgreSQL: the hot statements as one round trip each.

A claim picks, locks and claims in one ``UPDATE ... WHERE pk IN (SELECT ...
FOR UPDATE SKIP LOCKED) RETURNING``, and may carry the worker's waiting
results in the same statement; inserts and result writes send one array per
column (``unnest``), so that a statement's text is the same for any number of
rows and the driver parses it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.db import connections
from django.utils import timezone

from django_qtasks.statuses import READY_STATUSES, TaskStatus
from django_qtasks.store.generic import Carried, TaskStore, _by_columns, column_type

if TYPE_CHECKING:
    from django_qtasks.models import Task, WorkerHeartbeat

#: The waiting statuses as SQL literals: constants, so that the planner can
#: match the partial index qtasks_waiting_idx.
WAITING = ", ".join(f"'{status.value}'" for status in READY_STATUSES)

#: Due rows of one queue (or of ``ANY`` of several), best first, locked: the
#: ``{queues}`` of a claim. Literal statuses and one queue by equality: the
#: planner then walks qtasks_waiting_idx in claim order instead of sorting
#: every waiting row.
DUE = """
    "uuid" IN (
        SELECT "uuid" FROM {table}
        WHERE "status" IN ({waiting}) AND {queues}
            AND ("run_after" IS NULL OR "run_after" <= %s)
        ORDER BY "priority", "created_at"
        LIMIT %s
        FOR UPDATE SKIP LOCKED
    )
"""

#: The rows named, if they wait and are due.
BY_ID = """
    "uuid" = ANY(%s) AND "status" IN ({waiting})
    AND ("run_after" IS NULL OR "run_after" <= %s)
"""

CLAIM = """
    UPDATE {table} SET
        "status" = %s, "worker" = %s, "started_at" = %s, "finished_at" = NULL,
        "attempts" = "attempts" + 1, "updated_at" = %s
    WHERE {condition}
    RETURNING {columns}
"""

#: A claim carrying a write of results: the rows it changes are in
#: ``process`` and the claim's are waiting, so no row is changed twice. One
#: row at least, claimed or not, to bring back the carried keys.
CARRYING_CLAIM = """
    WITH carried AS ({carried}), claimed AS ({claim})
    SELECT (SELECT array_agg("pk") FROM carried), claimed.*
    FROM (VALUES (1)) AS one LEFT JOIN claimed ON TRUE
"""

#: ``mark_published`` outside a transaction: the commit does not wait for the
#: disk. The mark is a hint, and losing it in a database crash only means
#: that a worker's outbox sweep sends the message once more, which the claim
#: then drops as a duplicate.
MARK_PUBLISHED = """
    WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true))
    UPDATE {table} AS t SET "published_at" = %s
    FROM relaxed, unnest(%s::uuid[], %s::timestamptz[]) AS sent("uuid", "updated_at")
    WHERE t."uuid" = sent."uuid" AND t."updated_at" = sent."updated_at"
        AND t."status" IN ({waiting}) AND t."published_at" IS NULL
"""


class PostgresTaskStore(TaskStore):
    carries_writes = True

    def __init__(
        self, task_model: type[Task], heartbeat_model: type[WorkerHeartbeat], using: str
    ) -> None:
        super().__init__(task_model, heartbeat_model, using)
        connection = connections[using]
        self.pk_index = self.fields.index(self.pk_field)
        arrays = ", ".join(f"%s::{column_type(f, connection)}[]" for f in self.fields)
        self.unnest_insert = (
            f"INSERT INTO {self.table} ({self.columns}) SELECT * FROM unnest({arrays})"
        )
        self.claim_due_sql = {
            one: CLAIM.format(
                table=self.table,
                columns=self.columns,
                condition=DUE.format(
                    table=self.table,
                    waiting=WAITING,
                    queues='"queue" = %s' if one else '"queue" = ANY(%s)',
                ),
            )
            for one in (True, False)
        }
        self.claim_by_id_sql = CLAIM.format(
            table=self.table, columns=self.columns, condition=BY_ID.format(waiting=WAITING)
        )
        self.mark_published_sql = MARK_PUBLISHED.format(table=self.table, waiting=WAITING)
        self._update_sql: dict[tuple[tuple[str, ...], tuple[str, ...]], str] = {}

    def _insert_rows(self, cursor: Any, rows: list[list[Any]]) -> None:
        if len(rows) == 1:
            super()._insert_rows(cursor, rows)
        else:
            # One array per column: a short statement, where thousands of
            # placeholders took the driver longer to parse than to send.
            cursor.execute(self.unnest_insert, [list(column) for column in zip(*rows, strict=True)])

    def mark_published(self, tasks: Sequence[Task], now: datetime) -> None:
        if not tasks:
            return
        connection = connections[self.using]
        if connection.in_atomic_block:  # the relaxed commit is for the mark alone
            super().mark_published(tasks, now)
            return
        with connection.cursor() as cursor:
            cursor.execute(
                self.mark_published_sql,
                [now, [task.pk for task in tasks], [task.updated_at for task in tasks]],
            )

    def relax_commits(self) -> None:
        connection = connections[self.using]
        connection.ensure_connection()
        # Once per connection (a new one after a failure).
        if getattr(connection, "qtasks_relaxed", None) is not connection.connection:
            with connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO off")
            connection.qtasks_relaxed = connection.connection  # type: ignore[attr-defined]

    def claim_due(
        self, queues: list[str], limit: int, worker_id: str, carried: Carried | None = None
    ) -> list[Task]:
        now = timezone.now()
        one = len(queues) == 1
        params = [queues[0] if one else list(queues), now, limit]
        return self._claim(self.claim_due_sql[one], params, worker_id, now, carried)

    def claim_by_id(
        self, pks: list[UUID], worker_id: str, carried: Carried | None = None
    ) -> list[Task]:
        now = timezone.now()
        return self._claim(self.claim_by_id_sql, [pks, now], worker_id, now, carried)

    def _claim(
        self,
        claim: str,
        params: list[Any],
        worker_id: str,
        now: datetime,
        carried: Carried | None,
    ) -> list[Task]:
        params = [TaskStatus.PROCESS, worker_id, now, now, *params]
        with connections[self.using].cursor() as cursor:
            if carried is None:
                cursor.execute(claim, params)
                rows = cursor.fetchall()
            else:
                cursor.execute(
                    CARRYING_CLAIM.format(carried=carried.sql, claim=claim),
                    [*carried.params, *params],
                )
                result = cursor.fetchall()
                carried.pks = result[0][0] or []
                rows = [row[1:] for row in result if row[1 + self.pk_index] is not None]
        tasks = self.tasks_from_rows(rows)
        tasks.sort(key=lambda task: (task.priority, task.created_at))
        return tasks

    def update_many(
        self, guard: dict[str, Any], changes: Sequence[tuple[Any, dict[str, Any]]]
    ) -> set[Any]:
        """One ``UPDATE ... FROM unnest(...)`` per set of columns written: one round
        trip for every task that ended together."""
        saved: set[Any] = set()
        for group in _by_columns(changes):
            statement = self.update_statement(guard, group)
            assert statement is not None
            statement.run(self.using)
            saved.update(statement.pks)
        return saved

    def update_statement(
        self, guard: dict[str, Any], changes: Sequence[tuple[Any, dict[str, Any]]]
    ) -> Carried | None:
        """None for rows that change different columns."""
        connection = connections[self.using]
        names = tuple(changes[0][1])
        if any(tuple(values) != names for _, values in changes):
            return None
        # One array per column, as in insert: the statement's text is the
        # same for any number of rows, so the driver parses it once.
        prepare_pk = self.pk_field.get_db_prep_value
        arrays: list[list[Any]] = [[prepare_pk(pk, connection) for pk, _ in changes]]
        for name in names:
            prepare = self.fields_by_name[name].get_db_prep_save
            arrays.append([prepare(values[name], connection) for _, values in changes])
        guarded = [
            self.fields_by_name[name].get_db_prep_value(value, connection)
            for name, value in guard.items()
        ]
        return Carried(self._group_sql(names, tuple(guard)), [*arrays, *guarded])

    def _group_sql(self, names: tuple[str, ...], guard: tuple[str, ...]) -> str:
        """``UPDATE ... FROM unnest(...) RETURNING pk``, an array per column."""
        sql = self._update_sql.get((names, guard))
        if sql is not None:
            return sql
        connection = connections[self.using]
        quote = connection.ops.quote_name
        columns = [self.pk_field, *(self.fields_by_name[name] for name in names)]
        arrays = ", ".join(f"%s::{column_type(f, connection)}[]" for f in columns)
        pk = quote(self.pk_field.column)
        assignments = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in columns[1:])
        # The guard is no index condition (IS NOT DISTINCT FROM), so that the
        # planner finds the rows by primary key even when stale statistics make
        # a scan of the status and worker indexes look cheaper.
        guarded = ", ".join(f"t.{quote(self.fields_by_name[name].column)}" for name in guard)
        expected = ", ".join("%s" for _ in guard)
        conditions = [f"t.{pk} = v.{pk}", f"ROW({guarded}) IS NOT DISTINCT FROM ROW({expected})"]
        sql = (
            f"UPDATE {self.table} AS t SET {assignments} "
            f"FROM unnest({arrays}) "
            f"AS v({', '.join(quote(f.column) for f in columns)}) "
            f'WHERE {" AND ".join(conditions)} RETURNING t.{pk} AS "pk"'
        )
        if len(self._update_sql) < 64:
            self._update_sql[(names, guard)] = sql
        return sql
