"""A batch on PostgreSQL, in one statement (``django_qtasks.retention.batches``)."""

from __future__ import annotations

from typing import Any

from django.db import connections

from django_qtasks.models import Schedule, Task
from django_qtasks.retention.selection import ENDED

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
