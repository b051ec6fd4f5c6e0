"""Task rows read and written without building a query each time.

Every task is inserted, claimed and finished once, and building those
statements through the ORM's query compiler cost more CPU than running them. These
helpers put the SQL together from the model's own fields with plain string
work, and adapt values with the fields' own ``get_db_prep_save`` and
``from_db_value``, so every backend reads and writes what the ORM would.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from django.db import connections, transaction
from django.db.models import F, Q, signals

from django_qtasks.models import READY_STATUSES, Task, TaskStatus

#: The waiting statuses as SQL literals: constants, so that the planner can
#: match the partial index qtasks_waiting_idx.
WAITING = ", ".join(f"'{status.value}'" for status in READY_STATUSES)


@cache
def _fields() -> tuple[Any, ...]:
    return tuple(Task._meta.concrete_fields)


@cache
def column_list() -> str:
    """Every column of the task table, in model order (for ``RETURNING``)."""
    return ", ".join(f'"{field.column}"' for field in _fields())


def claim_values(worker_id: str, now: Any) -> dict[str, Any]:
    """What a claim writes on a row, for ``QuerySet.update()`` (``claim_returning``'s SET)."""
    return {
        "status": TaskStatus.PROCESS,
        "worker": worker_id,
        "started_at": now,
        "finished_at": None,
        "attempts": F("attempts") + 1,
        "updated_at": now,
    }


@dataclass
class Carried:
    """A write of results as one statement, on PostgreSQL: run alone, or carried by a claim.

    A claim that the worker sends while results wait takes them in its own
    statement: one round trip for both. ``sql`` is an ``UPDATE ...
    RETURNING`` of primary keys (``update_statement``); ``pks`` holds them
    once it ran.
    """

    sql: str
    params: list[Any]
    pks: list[Any] = field(default_factory=list)

    def run(self, using: str) -> None:
        """Run it alone, for a claim that sends no statement."""
        with connections[using].cursor() as cursor:
            cursor.execute(self.sql, self.params)
            self.pks = [pk for (pk,) in cursor.fetchall()]


def claim_returning(
    using: str,
    condition: str,
    params: list[Any],
    worker_id: str,
    now: Any,
    carried: Carried | None = None,
) -> list[Task]:
    """PostgreSQL: mark the rows matching ``condition`` as claimed; their records, best first.

    With ``carried``, that write goes in the same statement, as a CTE: the
    rows it changes are in ``process`` and the claim's are waiting, so no
    row is changed twice.
    """
    claim = f"""
        UPDATE "{Task._meta.db_table}" SET
            "status" = %s, "worker" = %s, "started_at" = %s, "finished_at" = NULL,
            "attempts" = "attempts" + 1, "updated_at" = %s
        WHERE {condition}
        RETURNING {column_list()}
    """
    params = [TaskStatus.PROCESS, worker_id, now, now, *params]
    with connections[using].cursor() as cursor:
        if carried is None:
            cursor.execute(claim, params)
            rows = cursor.fetchall()
        else:
            # One row at least, claimed or not, to bring back the carried keys.
            cursor.execute(
                f"""
                WITH carried AS ({carried.sql}), claimed AS ({claim})
                SELECT (SELECT array_agg("pk") FROM carried), claimed.*
                FROM (VALUES (1)) AS one LEFT JOIN claimed ON TRUE
                """,
                [*carried.params, *params],
            )
            result = cursor.fetchall()
            carried.pks = result[0][0] or []
            rows = [row[1:] for row in result if row[1 + _pk_index()] is not None]
        tasks = tasks_from_rows(using, rows)
    tasks.sort(key=lambda task: (task.priority, task.created_at))
    return tasks


@cache
def _pk_index() -> int:
    return _fields().index(Task._meta.pk)


#: Rows ``mark_published`` marks in one statement where it ORs their conditions.
MARKS_PER_STATEMENT = 400


def mark_published(using: str, tasks: Sequence[Task], now: Any) -> None:
    """Note that a broker accepted these tasks' messages (``published_at``).

    A mark applies only to the state the row was in when its message was
    sent: still waiting, and with the ``updated_at`` of that state (every
    claim, retry and hand-back writes a new one). A task that was claimed,
    failed and handed back to ``retry`` before this mark landed keeps
    ``published_at`` empty, so that the outbox sends it again.

    On PostgreSQL, outside a transaction, the commit does not wait for the
    disk: the mark is a hint, and losing it in a database crash only means
    that a worker's outbox sweep sends the message once more, which the
    claim then drops as a duplicate.
    """
    if not tasks:
        return
    connection = connections[using]
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        # Two parameters a task, within the database's limit; and each row's
        # condition nests the OR one level deeper: SQLite refuses an
        # expression deeper than 1000 ("Expression tree is too large").
        step = max(1, min(MARKS_PER_STATEMENT, (_max_params(using) - 4) // 2))
        for start in range(0, len(tasks), step):
            sent = Q()
            for task in tasks[start : start + step]:
                sent |= Q(pk=task.pk, updated_at=task.updated_at)
            Task.objects.using(using).filter(
                sent, status__in=READY_STATUSES, published_at__isnull=True
            ).update(published_at=now)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true))
            UPDATE "{Task._meta.db_table}" AS t SET "published_at" = %s
            FROM relaxed, unnest(%s::uuid[], %s::timestamptz[]) AS sent("uuid", "updated_at")
            WHERE t."uuid" = sent."uuid" AND t."updated_at" = sent."updated_at"
                AND t."status" IN ({WAITING}) AND t."published_at" IS NULL
            """,
            [now, [task.pk for task in tasks], [task.updated_at for task in tasks]],
        )


def tasks_from_rows(using: str, rows: Sequence[Sequence[Any]]) -> list[Task]:
    """Task instances from rows of every column in model order."""
    connection = connections[using]
    converters = [
        (index, field.from_db_value)
        for index, field in enumerate(_fields())
        if hasattr(field, "from_db_value")
    ]
    attnames = [field.attname for field in _fields()]
    tasks = []
    for row in rows:
        values = list(row)
        for index, convert in converters:
            values[index] = convert(values[index], None, connection)
        tasks.append(Task.from_db(using, attnames, values))
    return tasks


#: Rows per ``INSERT`` of ``insert_tasks``, at most (fewer where the database
#: takes fewer parameters per statement, as SQLite does).
INSERT_BATCH = 500


def insert_tasks(using: str, tasks: Sequence[Task]) -> None:
    """``task.save(force_insert=True)`` for each task, all or none of them.

    Enqueueing is one insert per task, and the ORM compiler took about as
    much CPU as the rest of ``add_task``: the statement is built once per
    database, with up to ``INSERT_BATCH`` rows. Fields prepare their values
    as in ``save()`` (``auto_now`` included), and the model's save signals
    are sent.
    """
    connection = connections[using]
    fields = _fields()
    for task in tasks:
        signals.pre_save.send(Task, instance=task, raw=False, using=using, update_fields=None)
    rows = [
        [field.get_db_prep_save(field.pre_save(task, add=True), connection) for field in fields]
        for task in tasks
    ]
    batch = max(1, min(INSERT_BATCH, connection.ops.bulk_batch_size(fields, tasks)))
    # One statement is all or nothing by itself; several need a transaction.
    writing = (
        transaction.atomic(using=using)
        if len(rows) > batch
        else transaction.mark_for_rollback_on_error(using)
    )
    with writing, connection.cursor() as cursor:
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            if connection.vendor == "postgresql" and len(chunk) > 1:
                # One array per column: a short statement, where thousands of
                # placeholders took the driver longer to parse than to send.
                cursor.execute(
                    _unnest_insert_sql(using), [list(col) for col in zip(*chunk, strict=True)]
                )
            else:
                cursor.execute(_insert_sql(using, len(chunk)), [v for row in chunk for v in row])
    for task in tasks:
        task._state.adding = False
        task._state.db = using
        signals.post_save.send(
            Task, instance=task, created=True, update_fields=None, raw=False, using=using
        )


@lru_cache(maxsize=8)
def _unnest_insert_sql(using: str) -> str:
    """PostgreSQL: ``INSERT ... SELECT * FROM unnest(%s::type[], ...)``, an array per column."""
    connection = connections[using]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in _fields())
    arrays = ", ".join(f"%s::{_cast(field, connection)}[]" for field in _fields())
    return f"INSERT INTO {quote(Task._meta.db_table)} ({columns}) SELECT * FROM unnest({arrays})"


def _cast(field: Any, connection: Any) -> str:
    """The field's column type without a length, so that a cast never truncates."""
    return re.sub(r"\(\d+\)$", "", field.db_type(connection))


@lru_cache(maxsize=64)
def _insert_sql(using: str, rows: int) -> str:
    quote = connections[using].ops.quote_name
    columns = ", ".join(quote(field.column) for field in _fields())
    row = "(" + ", ".join("%s" for _ in _fields()) + ")"
    return f"INSERT INTO {quote(Task._meta.db_table)} ({columns}) VALUES {', '.join([row] * rows)}"


def update_task(using: str, pk: Any, guard: dict[str, Any], values: dict[str, Any]) -> int:
    """``Task.objects.filter(pk=pk, **guard).update(**values)`` for plain values; rows changed."""
    connection = connections[using]
    quote = connection.ops.quote_name
    fields = _fields_by_name()
    assignments, conditions, params = [], [], []
    for name, value in values.items():
        assignments.append(f"{quote(fields[name].column)} = %s")
        params.append(fields[name].get_db_prep_save(value, connection))
    pk_field = Task._meta.pk
    assert pk_field is not None
    conditions.append(f"{quote(pk_field.column)} = %s")
    params.append(pk_field.get_db_prep_value(pk, connection))
    return _update(using, assignments, conditions, params, guard)


def _update(
    using: str,
    assignments: list[str],
    conditions: list[str],
    params: list[Any],
    guard: dict[str, Any],
) -> int:
    """``UPDATE`` the task table: ``SET`` the assignments ``WHERE`` the conditions and
    each guarded column equals its value; rows changed."""
    connection = connections[using]
    quote = connection.ops.quote_name
    fields = _fields_by_name()
    for name, value in guard.items():
        conditions.append(f"{quote(fields[name].column)} = %s")
        params.append(fields[name].get_db_prep_value(value, connection))
    sql = (
        f"UPDATE {quote(Task._meta.db_table)} SET {', '.join(assignments)} "
        f"WHERE {' AND '.join(conditions)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def update_tasks(
    using: str, guard: dict[str, Any], changes: Sequence[tuple[Any, dict[str, Any]]]
) -> set[Any]:
    """Apply ``update_task`` to many rows at once; the primary keys of the rows changed.

    Rows that change the same columns are written together. On PostgreSQL,
    by one ``UPDATE ... FROM unnest(...)``: one round trip for every task
    that ended together. Elsewhere, in one transaction, by one ``UPDATE``
    with a ``CASE`` per column (``update_group``).
    """
    connection = connections[using]
    groups: dict[tuple[str, ...], list[tuple[Any, dict[str, Any]]]] = {}
    for pk, values in changes:
        groups.setdefault(tuple(values), []).append((pk, values))
    saved: set[Any] = set()
    if connection.vendor != "postgresql":
        with transaction.atomic(using=using):
            for group in groups.values():
                saved.update(update_group(using, guard, group))
        return saved
    for group in groups.values():
        statement = update_statement(using, guard, group)
        assert statement is not None
        statement.run(using)
        saved.update(statement.pks)
    return saved


def update_group(
    using: str, guard: dict[str, Any], group: Sequence[tuple[Any, dict[str, Any]]]
) -> set[Any]:
    """Not PostgreSQL: ``update_task`` for rows that change the same columns, in one statement.

    The ``UPDATE`` tells how many rows it changed, not which (MySQL has no
    ``RETURNING`` for it): when the guard kept some out (a row failed over
    meanwhile), it is rolled back to a savepoint and the rows go one by one.
    Inside a transaction.
    """
    # Parameters: a pk and a value per row and column, the pks again, the guard.
    per_statement = max(1, (_max_params(using) - len(guard)) // (2 * len(group[0][1]) + 1))
    if len(group) > per_statement:
        return {
            pk
            for start in range(0, len(group), per_statement)
            for pk in update_group(using, guard, group[start : start + per_statement])
        }
    if len(group) > 1:
        with transaction.atomic(using=using):  # a savepoint
            written = _update_by_case(using, guard, group)
            if written != len(group):
                transaction.set_rollback(True, using=using)
        if written == len(group):
            return {pk for pk, _ in group}
    return {pk for pk, values in group if update_task(using, pk, guard, values)}


def _update_by_case(
    using: str, guard: dict[str, Any], group: Sequence[tuple[Any, dict[str, Any]]]
) -> int:
    """``UPDATE ... SET column = CASE pk WHEN ... END, ...`` for ``update_group``; rows matched."""
    connection = connections[using]
    quote = connection.ops.quote_name
    fields = _fields_by_name()
    pk_field = Task._meta.pk
    assert pk_field is not None
    pk_column = quote(pk_field.column)
    pks = [pk_field.get_db_prep_value(pk, connection) for pk, _ in group]
    assignments, params = [], []
    for name in group[0][1]:
        field = fields[name]
        whens = " ".join(["WHEN %s THEN %s"] * len(group))
        assignments.append(f"{quote(field.column)} = CASE {pk_column} {whens} END")
        for pk, (_, values) in zip(pks, group, strict=True):
            params += [pk, field.get_db_prep_save(values[name], connection)]
    conditions = [f"{pk_column} IN ({', '.join(['%s'] * len(pks))})"]
    params += pks
    return _update(using, assignments, conditions, params, guard)


def _max_params(using: str) -> int:
    """Parameters one statement may take (SQLite has a limit; 999 in older versions)."""
    return connections[using].features.max_query_params or 10_000


def update_statement(
    using: str, guard: dict[str, Any], changes: Sequence[tuple[Any, dict[str, Any]]]
) -> Carried | None:
    """PostgreSQL: ``update_tasks`` as one statement, if the rows change the same columns.

    None elsewhere, and for rows that change different columns.
    """
    connection = connections[using]
    names = tuple(changes[0][1])
    if connection.vendor != "postgresql" or any(tuple(values) != names for _, values in changes):
        return None
    fields = _fields_by_name()
    pk_field = Task._meta.pk
    assert pk_field is not None
    # One array per column, as in insert_tasks: the statement's text is the
    # same for any number of rows, so the driver parses it once.
    arrays: list[list[Any]] = [[pk_field.get_db_prep_value(pk, connection) for pk, _ in changes]]
    for name in names:
        prepare = fields[name].get_db_prep_save
        arrays.append([prepare(values[name], connection) for _, values in changes])
    guarded = [fields[name].get_db_prep_value(value, connection) for name, value in guard.items()]
    return Carried(_group_sql(using, names, tuple(guard)), [*arrays, *guarded])


@lru_cache(maxsize=64)
def _group_sql(using: str, names: tuple[str, ...], guard: tuple[str, ...]) -> str:
    """PostgreSQL: ``UPDATE ... FROM unnest(...) RETURNING pk``, an array per column."""
    connection = connections[using]
    quote = connection.ops.quote_name
    fields = _fields_by_name()
    pk_field = Task._meta.pk
    assert pk_field is not None
    columns = [pk_field, *(fields[name] for name in names)]
    arrays = ", ".join(f"%s::{_cast(field, connection)}[]" for field in columns)
    pk = quote(pk_field.column)
    assignments = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in columns[1:])
    # The guard is no index condition (IS NOT DISTINCT FROM), so that the
    # planner finds the rows by primary key even when stale statistics make
    # a scan of the status and worker indexes look cheaper.
    guarded = ", ".join(f"t.{quote(fields[name].column)}" for name in guard)
    expected = ", ".join("%s" for _ in guard)
    conditions = [f"t.{pk} = v.{pk}", f"ROW({guarded}) IS NOT DISTINCT FROM ROW({expected})"]
    return (
        f"UPDATE {quote(Task._meta.db_table)} AS t SET {assignments} "
        f"FROM unnest({arrays}) "
        f"AS v({', '.join(quote(field.column) for field in columns)}) "
        f'WHERE {" AND ".join(conditions)} RETURNING t.{pk} AS "pk"'
    )


@cache
def _fields_by_name() -> dict[str, Any]:
    return {field.name: field for field in _fields()}
