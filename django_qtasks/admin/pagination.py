"""A paginator that does not count every row of a huge, unfiltered table.

``SELECT COUNT(*)`` reads the whole table on PostgreSQL and MySQL: seconds on
millions of tasks, on every page of the changelist. When the changelist is
not filtered, the planner's estimate of the table's size is good enough to
number the pages; a filtered list, or a small table, is counted exactly.
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property


def estimated_rows(queryset: QuerySet[Any]) -> int | None:
    """The database's own estimate of the rows of ``queryset``'s table, or None."""
    query = queryset.query
    if query.where or query.low_mark or query.high_mark is not None or query.distinct:
        return None
    connection = connections[queryset.db]
    table = queryset.model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                [connection.ops.quote_name(table)],
            )
        elif connection.vendor == "mysql":
            cursor.execute(
                "SELECT table_rows FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_name = %s",
                [table],
            )
        else:  # SQLite counts fast enough; others have no cheap estimate.
            return None
        row = cursor.fetchone()
    # -1 (PostgreSQL 14+) or 0 means the table was never analyzed.
    if not row or row[0] is None or row[0] <= 0:
        return None
    return int(row[0])


class EstimatedCountPaginator(Paginator):
    #: Below this estimate the table is counted exactly.
    exact_below = 100_000

    @cached_property
    def count(self) -> int:
        object_list = self.object_list
        if isinstance(object_list, QuerySet):
            estimate = estimated_rows(object_list)
            if estimate is not None and estimate >= self.exact_below:
                return estimate
        return super().count
