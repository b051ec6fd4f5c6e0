"""The test tools of docs/testing.md: immediate mode, run_pending, the test worker, W002."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import django
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connections, transaction
from django.test import override_settings

from django_qtasks import chain
from django_qtasks.checks import check_settings
from django_qtasks.conf import qtasks_settings
from django_qtasks.immediate import WORKER_ID
from django_qtasks.models import Task
from django_qtasks.testing import (
    WorkerThread,
    assert_enqueued,
    enqueued,
    immediate,
    run_pending,
    wait_for,
)
from tests.testapp import tasks, tasks_testing

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def own_default_queue() -> Iterator[str]:
    """Tasks that name no queue go to one of this test's own: the session's shared
    worker (tests/conftest.py) serves "default", and sees what a test commits."""
    queue = f"testing-tools-{uuid.uuid4().hex[:8]}"
    with override_settings(QTASKS={**settings.QTASKS, "DEFAULT_QUEUE": queue}):
        yield queue


# --- Immediate mode in a test that never commits (TestCase, pytest-django's db) -------


@pytest.mark.django_db
def test_an_immediate_task_runs_at_enqueue_on_the_tests_uncommitted_data(qtasks_immediate):
    User.objects.create(username="ann")
    row = tasks_testing.count_users.add_task("ann")
    assert (row.status, row.returning, row.attempts) == ("success", 1, 1)
    assert row.worker == WORKER_ID
    assert row.started_at is not None
    assert row.finished_at is not None
    assert [entry["status"] for entry in row.attempt_log] == ["success"]
    assert Task.objects.get(pk=row.pk).returning == 1


@pytest.mark.django_db
def test_an_async_task_reads_the_tests_data_too(qtasks_immediate):
    User.objects.create(username="bob")
    row = tasks_testing.acount_users.add_task("bob")
    assert (row.status, row.returning) == ("success", 1)


@pytest.mark.django_db
def test_what_a_task_writes_is_seen_by_the_test_and_its_log_kept(qtasks_immediate):
    User.objects.create(username="cy")
    row = tasks_testing.rename_user.add_task("cy", "cyril")
    assert row.status == "success"
    assert User.objects.filter(username="cyril").exists()
    assert [line["message"] for line in row.logs] == ["renaming cy"]


@pytest.mark.django_db
def test_a_task_enqueued_by_a_running_task_runs_too(qtasks_immediate):
    User.objects.create(username="dee")
    row = tasks_testing.spawns_count.add_task("dee")
    assert (row.status, row.returning) == ("success", 1)
    child = Task.objects.get(task_name="count_users")
    assert (child.status, child.returning, child.worker) == ("success", 1, WORKER_ID)


@pytest.mark.django_db
def test_a_retried_task_runs_each_attempt_at_once(qtasks_immediate):
    with override_settings(QTASKS={**settings.QTASKS, "RETRY_BACKOFF": 300, "IMMEDIATE": True}):
        row = tasks_testing.fails_until_user.add_task("eve")
    assert (row.status, row.returning, row.attempts) == ("success", "found", 2)
    assert [entry["status"] for entry in row.attempt_log] == ["retry", "success"]
    assert "eve was missing on attempt 1" in row.attempt_log[0]["error"]


@pytest.mark.django_db
def test_failures_limits_and_generators_end_as_in_a_worker(qtasks_immediate):
    failed = tasks.retry_wrong_exc.add_task()
    assert failed.status == "error"
    assert "ValueError" in failed.traceback
    assert failed.attempts == 1  # not a KeyError: not retried
    too_slow = tasks.sync_too_slow.add_task()
    assert too_slow.status == "error"
    assert "exceeded its max_time of 0.5s" in too_slow.traceback
    generator = tasks.sync_gen.add_task(3)
    assert (generator.status, generator.returning) == ("success", [0, 10, 20])
    middlewares = tasks.with_middlewares.add_task(1)
    assert middlewares.returning == 4


@pytest.mark.django_db
def test_a_chain_runs_step_after_step(qtasks_immediate):
    (first,) = chain(tasks.echo.s(["a"]), tasks.push.s("b")).add_task()
    assert first.status == "success"
    second = Task.objects.get(chain_previous=first)
    assert (second.status, second.returning) == ("success", ["a", "b"])


@pytest.mark.django_db
def test_in_a_transaction_that_never_commits_tasks_wait_for_run_pending(qtasks_immediate):
    User.objects.create(username="fay")
    with transaction.atomic():
        row = tasks_testing.count_users.add_task("fay")
    assert row.status == "new"
    assert enqueued() == [row]
    assert_enqueued(tasks_testing.count_users, ["fay"])
    listed = r"count_users\(args=\[.gus.\], kwargs=...\), found 0\. Waiting:\n  count_users\("
    with pytest.raises(AssertionError, match=listed):
        assert_enqueued(tasks_testing.count_users, ["gus"])
    assert run_pending() == [row]
    row.refresh_from_db()
    assert (row.status, row.returning) == ("success", 1)
    assert enqueued() == []


@pytest.mark.django_db
def test_a_task_enqueued_in_a_rolled_back_transaction_never_runs(qtasks_immediate):
    def enqueue_then_fail() -> None:
        with transaction.atomic():
            tasks_testing.rename_user.add_task("nobody", "ran")
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        enqueue_then_fail()
    assert not Task.objects.exists()
    assert run_pending() == []


@pytest.mark.django_db
def test_run_pending_leaves_delayed_tasks_unless_asked(qtasks_immediate):
    later = tasks.echo.add_task("later", delay=3600)
    assert later.status == "new"
    assert run_pending() == []
    assert [row.pk for row in run_pending(include_delayed=True)] == [later.pk]
    later.refresh_from_db()
    assert (later.status, later.returning) == ("success", "later")


@pytest.mark.django_db
def test_run_pending_runs_what_was_enqueued_without_immediate_mode():
    assert not qtasks_settings.IMMEDIATE
    first = tasks.echo.add_task(1)
    other = tasks.on_other_queue.add_task()
    assert first.status == "new"
    assert_enqueued(tasks.echo, [1], count=1)
    assert [row.pk for row in run_pending(["default"])] == [first.pk]
    assert [row.pk for row in enqueued()] == [other.pk]
    ran = run_pending()
    assert [(row.task_name, row.status, row.returning) for row in ran] == [
        ("on_other_queue", "success", "other")
    ]


def test_immediate_works_as_a_context_manager_and_restores_the_settings():
    before = dict(settings.QTASKS)
    with immediate():
        assert qtasks_settings.IMMEDIATE
        assert settings.QTASKS["QUEUE_PREFIX"] == before["QUEUE_PREFIX"]
    assert not qtasks_settings.IMMEDIATE
    assert before == settings.QTASKS


# --- Immediate mode in a test that commits ------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_in_a_committed_transaction_the_task_runs_at_commit(own_default_queue, qtasks_immediate):
    with transaction.atomic():
        User.objects.create(username="hal")
        row = tasks_testing.count_users.add_task("hal")
        assert Task.objects.get(pk=row.pk).status == "new"
    # The object add_task returned is refreshed once the task ended.
    assert (row.status, row.returning) == ("success", 1)


# --- A real worker for the test ---------------------------------------------------


@pytest.mark.broker
@pytest.mark.amqp
@pytest.mark.django_db(transaction=True)
def test_the_test_worker_runs_tasks_on_queues_of_its_own(own_default_queue, qtasks_worker):
    assert qtasks_worker.queue_prefix != "qtasks-test-" + os.environ["QTASKS_TEST_RUN"]
    assert qtasks_worker.queue_prefix == qtasks_settings.QUEUE_PREFIX
    rows = [tasks.echo.add_task(n) for n in range(3)] + [tasks.async_echo.add_task("a")]
    ended = wait_for(rows, timeout=60)
    assert [(row.status, row.returning) for row in ended] == [
        ("success", 0),
        ("success", 1),
        ("success", 2),
        ("success", "a"),
    ]
    assert {row.worker for row in ended} == {qtasks_worker.worker.worker_id}


@pytest.mark.broker
@pytest.mark.amqp
@pytest.mark.django_db(transaction=True)
def test_the_test_worker_restores_the_settings_when_it_stops(own_default_queue):
    before = dict(settings.QTASKS)
    with WorkerThread(queues=[own_default_queue]) as worker:
        row = tasks.on_other_queue.add_task(queue=own_default_queue)
        assert wait_for(row, timeout=60)[0].returning == "other"
        assert worker.worker is not None
        assert worker.worker.queues == [own_default_queue]
        row.refresh_from_db()
        assert row.worker == worker.worker.worker_id
    assert before == settings.QTASKS


# --- The pytest plugin, as a project's test suite loads it --------------------------


@pytest.mark.e2e  # a pytest run of its own, with its own test database
def test_the_plugins_fixtures_work_in_a_projects_test_suite(tmp_path):
    (tmp_path / "test_project_tasks.py").write_text(
        textwrap.dedent(
            """
            import pytest
            from django.db import connections, transaction

            from django_qtasks.testing import assert_enqueued, run_pending, wait_for
            from tests.testapp.tasks import echo


            def test_immediate(qtasks_immediate, db):
                assert echo.add_task(5).returning == 5


            def test_pending(db):
                with transaction.atomic():
                    echo.add_task(6)
                assert_enqueued(echo, [6])
                assert [row.returning for row in run_pending()] == [6]


            def test_worker(qtasks_worker):
                assert wait_for(echo.add_task(7), timeout=60)[0].returning == 7
            """
        )
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "testproject")]),
    }
    for name in ("QTASKS_DB_NAME", "QTASKS_TEST_RUN", "COVERAGE_PROCESS_START"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


# --- W002: a shared broker without a prefix -----------------------------------------


@pytest.mark.parametrize(
    ("debug", "config", "warned"),
    [
        (False, {"BROKER_URL": "redis://127.0.0.1:6379/0"}, True),
        (False, {"REDIS_CACHE_ALIAS": "qtasks"}, True),
        (False, {"BROKER_URL": "redis://127.0.0.1:6379/0", "QUEUE_PREFIX": "qtasks"}, False),
        (False, {}, False),
        (True, {"BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//"}, False),
    ],
)
def test_w002_warns_of_a_shared_broker_without_a_prefix(debug, config, warned):
    with override_settings(DEBUG=debug, QTASKS=config):
        found = [m for m in check_settings() if m.id == "django_qtasks.W002"]
    assert bool(found) is warned


@pytest.mark.django_db(transaction=True)
def test_an_async_caller_gets_the_ended_task(own_default_queue, qtasks_immediate):
    async def enqueue() -> tuple[Task, Task]:
        by_handle = await tasks.async_echo.aadd_task("x")
        spawned = await tasks.spawns_child.aadd_task(4)
        # The connection of asgiref's thread: PostgreSQL drops the test database at the end.
        await sync_to_async(connections.close_all)()
        return by_handle, spawned

    by_handle, spawned = asyncio.run(enqueue())
    assert (by_handle.status, by_handle.returning) == ("success", "x")
    assert spawned.status == "success"
    children = Task.objects.filter(task_name="echo_child").order_by("created_at")
    assert [(child.status, child.returning) for child in children] == [
        ("success", 4),
        ("success", 5),
    ]


@pytest.mark.skipif(django.VERSION < (6, 0), reason="django.tasks is Django 6+")
@pytest.mark.django_db
def test_a_django_task_runs_immediately_too(qtasks_immediate):
    from tests.testapp import django_tasks

    result = django_tasks.double.enqueue(21)
    assert (result.status, result.return_value) == ("SUCCESSFUL", 42)
