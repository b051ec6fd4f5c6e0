"""Database routers for tests/test_routing.py, chosen by QTASKS_TEST_ROUTER (tests/settings.py).

Both are what a project would write: the test process and its worker
processes route alike, through the same settings module.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model

#: The app whose tables TasksDatabaseRouter puts on the "tasks" database.
QTASKS_APP = "django_qtasks"


class ReplicaRouter:
    """Reads from "replica", writes to "default": the usual read-replica router.

    In the tests "replica" is a database of its own that nothing copies to,
    so a read that had to see a write comes back empty there.
    """

    def db_for_read(self, model: type[Model], **hints: Any) -> str:
        return "replica"

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        return "default"

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool:
        return True


class TasksDatabaseRouter:
    """django_qtasks' tables on the "tasks" database; the rest of the project elsewhere."""

    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        return "tasks" if model._meta.app_label == QTASKS_APP else None

    def db_for_write(self, model: type[Model], **hints: Any) -> str | None:
        return "tasks" if model._meta.app_label == QTASKS_APP else None

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool | None:
        if QTASKS_APP in (obj1._meta.app_label, obj2._meta.app_label):
            return obj1._meta.app_label == obj2._meta.app_label
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        if app_label == QTASKS_APP:
            return db == "tasks"
        return None if db != "tasks" else False


ROUTERS = {
    "replica": "tests.routers.ReplicaRouter",
    "tasks": "tests.routers.TasksDatabaseRouter",
}
