"""Database routers: the task tables are written, and read to decide, through db_for_write.

Real worker processes use the same router (tests/settings.py picks it by
QTASKS_TEST_ROUTER). The extra databases exist for PostgreSQL only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connections, transaction
from django.test import override_settings
from django.utils import timezone

from django_qtasks import app
from django_qtasks.models import FINAL_STATUSES, Schedule, Task, TaskStatus, WorkerHeartbeat
from tests.conftest import wait_until
from tests.routers import ROUTERS
from tests.testapp import tasks

EXTRA = ("replica", "tasks")
HAVE_EXTRA = all(alias in settings.DATABASES for alias in EXTRA)

pytestmark = [
    pytest.mark.skipif(
        not HAVE_EXTRA,
        reason="the replica and tasks databases are defined for PostgreSQL only "
        "(QTASKS_DB=postgres, see tests/settings.py)",
    ),
    pytest.mark.django_db(
        transaction=True, databases=["default", *EXTRA] if HAVE_EXTRA else ["default"]
    ),
]


@pytest.fixture
def use_router(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Route through tests/routers.py here, and in the workers started afterwards."""

    def use(name: str) -> None:
        monkeypatch.setenv("QTASKS_TEST_ROUTER", name)
        overrides.append(override_settings(DATABASE_ROUTERS=[ROUTERS[name]]))
        overrides[-1].enable()

    overrides: list[override_settings] = []
    yield use
    for override in overrides:
        override.disable()


def ended_on(alias: str, pk: uuid.UUID, timeout: float = 30) -> Task:
    """The task's row on ``alias`` once it has ended there."""

    def ended() -> bool:
        return Task.objects.using(alias).filter(pk=pk, status__in=FINAL_STATUSES).exists()

    wait_until(ended, timeout, f"task {pk} to end on the {alias!r} database")
    return Task.objects.using(alias).get(pk=pk)


def committed_on(alias: str, pk: uuid.UUID) -> bool:
    """Whether another connection to ``alias`` sees the row: that is, it is committed."""
    other = connections.create_connection(alias)
    try:
        with other.cursor() as cursor:
            cursor.execute(f'SELECT 1 FROM "{Task._meta.db_table}" WHERE "uuid" = %s', [pk])
            return cursor.fetchone() is not None
    finally:
        other.close()


def test_replica_router_writes_to_default_and_delivers_on_commit(use_router, start_worker):
    use_router("replica")
    worker_id = f"replica-{uuid.uuid4().hex[:8]}"
    start_worker("--concurrency", "2", "--worker-id", worker_id)

    with transaction.atomic():
        queued = tasks.echo.add_task({"routed": True})
        # In the caller's transaction on the write database, and nowhere else yet.
        assert Task.objects.using("default").filter(pk=queued.pk).exists()
        assert not committed_on("default", queued.pk)
        assert not Task.objects.using("replica").filter(pk=queued.pk).exists()

    done = ended_on("default", queued.pk)
    assert done.status == TaskStatus.SUCCESS
    assert done.returning == {"routed": True}
    assert done.attempts == 1
    # The worker's heartbeat, claim and result all went to the write database.
    assert WorkerHeartbeat.objects.using("default").filter(worker_id=worker_id).exists()
    assert not Task.objects.using("replica").exists()
    assert not WorkerHeartbeat.objects.using("replica").exists()
    # Lookups that must see the write read it from there too.
    fetched = app.get(queued.pk)
    assert fetched is not None
    assert fetched.status == TaskStatus.SUCCESS


def test_replica_router_rolled_back_task_never_exists(use_router, start_worker):
    use_router("replica")
    start_worker("--concurrency", "2")

    with transaction.atomic():
        lost = tasks.echo.add_task("rolled back")
        transaction.set_rollback(True)

    after = tasks.echo.add_task("committed")
    assert ended_on("default", after.pk).status == TaskStatus.SUCCESS
    # Rolled back with the caller's transaction: on no database, never run.
    for alias in ("default", "replica"):
        assert not Task.objects.using(alias).filter(pk=lost.pk).exists()


def test_replica_router_waits_and_context_read_the_write_database(use_router, start_worker):
    use_router("replica")
    start_worker("--concurrency", "2")

    # add_task(timeout=) waits on the row, ctx.get_metadata()/get_task() in
    # the worker read the running task's own row.
    done = tasks.ctx_report.add_task(timeout=30)
    assert done is not None
    assert done.status == TaskStatus.SUCCESS, done.traceback
    assert done.returning["metadata_status"] == TaskStatus.PROCESS
    assert done.returning["get_task_same"] is True
    assert Task.objects.using("default").get(pk=done.pk).status == TaskStatus.SUCCESS


def test_replica_router_cancel_reaches_the_running_task(use_router, start_worker):
    use_router("replica")
    start_worker("--concurrency", "2")

    running = tasks.async_sleeper.add_task(30)
    wait_until(
        lambda: Task.objects.using("default").get(pk=running.pk).status == TaskStatus.PROCESS,
        30,
        "the sleeper to start",
    )
    assert running.cancel("routed cancel", by="test")
    done = ended_on("default", running.pk)
    assert done.status == TaskStatus.CANCEL
    assert done.cancel_reason == "routed cancel"


def schedule_due_now(name: str) -> Schedule:
    return Schedule.objects.create(
        name=name,
        task_name="echo",
        args=[name],
        interval=timedelta(hours=1),
        next_run_at=timezone.now(),
    )


def fired_on(alias: str, schedule: Schedule) -> Task:
    """The task that ``schedule`` enqueued, once it has ended, read from ``alias``."""

    def fired() -> bool:
        return Task.objects.using(alias).filter(schedule=schedule.pk).exists()

    wait_until(fired, 30, f"schedule {schedule.name} to enqueue a task on {alias!r}")
    return ended_on(alias, Task.objects.using(alias).get(schedule=schedule.pk).pk)


def test_replica_router_beat_fires_schedules_written_to_default(use_router, start_worker):
    use_router("replica")
    start_worker("--concurrency", "2")
    start_worker(command="qtasks_beat", ready="Beat started")

    schedule = schedule_due_now("routed-beat")
    done = fired_on("default", schedule)
    assert done.status == TaskStatus.SUCCESS
    assert done.returning == "routed-beat"
    schedule = Schedule.objects.using("default").get(pk=schedule.pk)
    assert schedule.run_count == 1
    assert schedule.last_task_id == done.pk
    assert not Schedule.objects.using("replica").exists()


def test_task_tables_on_their_own_database(use_router, start_worker):
    use_router("tasks")
    worker_id = f"tasks-{uuid.uuid4().hex[:8]}"
    start_worker("--concurrency", "2", "--worker-id", worker_id)

    queued = tasks.echo.add_task([1, 2, 3])
    done = ended_on("tasks", queued.pk)
    assert done.status == TaskStatus.SUCCESS
    assert done.returning == [1, 2, 3]
    waited = app.add_task("async_echo", "waited", timeout=30)
    assert waited is not None
    assert waited.returning == "waited"
    assert WorkerHeartbeat.objects.using("tasks").filter(worker_id=worker_id).exists()
    # The project's own database holds none of it (its task tables, created
    # before this test chose the router, stay empty; the session's shared
    # worker, started without the router, beats there).
    assert not Task.objects.using("default").exists()
    assert not WorkerHeartbeat.objects.using("default").filter(worker_id=worker_id).exists()


def test_task_tables_on_their_own_database_with_the_beat(use_router, start_worker):
    use_router("tasks")
    start_worker("--concurrency", "2", "--beat")

    schedule = schedule_due_now("beat-on-tasks")
    done = fired_on("tasks", schedule)
    assert done.status == TaskStatus.SUCCESS
    assert Schedule.objects.using("tasks").get(pk=schedule.pk).last_task_id == done.pk
    assert not Schedule.objects.using("default").exists()
    assert not Task.objects.using("default").exists()


def test_task_tables_on_their_own_database_with_a_transaction_there(use_router, start_worker):
    """With the task tables elsewhere, the caller's transaction is the one on that database."""
    use_router("tasks")
    start_worker("--concurrency", "2")

    with transaction.atomic(using="tasks"):
        queued = tasks.echo.add_task("in the tasks transaction")
        assert not committed_on("tasks", queued.pk)
    assert ended_on("tasks", queued.pk).status == TaskStatus.SUCCESS
