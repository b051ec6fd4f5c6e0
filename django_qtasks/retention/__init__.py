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

``selection``: which rows, and which are kept; ``batches``: ``purge`` and its
transactions; ``postgresql``: a batch as one statement; ``policy``:
``QTASKS["RETENTION"]`` and the beat's thread.
"""

from django_qtasks.retention.batches import Purged, delete_batch, purge
from django_qtasks.retention.policy import Retention, describe, retention_selections
from django_qtasks.retention.selection import (
    ENDED,
    NOT_ENDED,
    Counts,
    Selection,
    count,
    count_kept,
    pointed_at_by_unended,
)

__all__ = [
    "ENDED",
    "NOT_ENDED",
    "Counts",
    "Purged",
    "Retention",
    "Selection",
    "count",
    "count_kept",
    "delete_batch",
    "describe",
    "pointed_at_by_unended",
    "purge",
    "retention_selections",
]
