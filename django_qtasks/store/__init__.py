"""The task store: every change of state of the task table goes through it.

Insert, claim (due rows, or rows named by messages), results, hand-backs,
take-overs, outbox marks and cancels: each one statement guarded by the
state it leaves. ``models.task_store()`` gives the store of the task
database, picked once per database: ``PostgresTaskStore`` on PostgreSQL,
``TaskStore`` (the ORM, and plain SQL where it is faster) elsewhere. The
store is built for the models it is given, so that it imports none of them.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from django.db import connections

from django_qtasks.store.generic import (
    CLAIM_ORDER,
    INSERT_BATCH,
    Carried,
    DatabaseNow,
    TaskStore,
    attempt_entry,
    heartbeat_cutoff,
    still_mine,
)
from django_qtasks.store.postgresql import PostgresTaskStore

if TYPE_CHECKING:
    from django_qtasks.models import Task, WorkerHeartbeat

__all__ = [
    "CLAIM_ORDER",
    "INSERT_BATCH",
    "Carried",
    "DatabaseNow",
    "PostgresTaskStore",
    "TaskStore",
    "attempt_entry",
    "heartbeat_cutoff",
    "still_mine",
    "store_for",
]

_stores: dict[tuple[type, str], TaskStore] = {}
_lock = threading.Lock()


def store_for(
    task_model: type[Task], heartbeat_model: type[WorkerHeartbeat], using: str
) -> TaskStore:
    """The store of ``task_model``'s rows on the database ``using``, made on first use."""
    store = _stores.get((task_model, using))
    if store is None:
        with _lock:
            store = _stores.get((task_model, using))
            if store is None:
                kind = PostgresTaskStore if connections[using].vendor == "postgresql" else TaskStore
                store = _stores[(task_model, using)] = kind(task_model, heartbeat_model, using)
    return store
