"""``app.add_tasks``: many tasks in one go, run by a real worker process."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.db import connection, transaction
from django.db.models import signals
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_qtasks import app
from django_qtasks.chains import Step
from django_qtasks.exceptions import TaskArgumentsError, UnknownTask
from django_qtasks.models import Task, TaskStatus
from django_qtasks.store import INSERT_BATCH
from tests.conftest import wait_all_final, wait_status
from tests.testapp import tasks

pytestmark = [pytest.mark.broker, pytest.mark.amqp, pytest.mark.django_db(transaction=True)]


def test_every_step_runs_with_its_own_arguments(worker):
    records = app.add_tasks(
        [tasks.echo.s(1), tasks.async_echo.s("two"), tasks.push.s(3, [0]), tasks.decoded]
    )
    assert [record.task_name for record in records] == ["echo", "async_echo", "push", "decoded"]
    assert all(record.status == TaskStatus.NEW and record.pk for record in records)
    assert Task.objects.count() == 4
    results = [wait_status(record).returning for record in records]
    # decode=json.dumps: the value its JSON text encodes is stored, as in QTasks.
    assert results == [1, "two", [0, 3], {"a": 1}]
    assert all(record.status == TaskStatus.SUCCESS for record in records)


def test_a_generator_of_steps_and_options_for_all(worker):
    records = app.add_tasks(
        (tasks.echo.s(number) for number in range(3)), priority=-4, queue="other", delay=60
    )
    rows = Task.objects.filter(pk__in=[record.pk for record in records]).order_by("created_at")
    assert [row.args for row in rows] == [[0], [1], [2]]
    assert {(row.priority, row.queue) for row in rows} == {(-4, "other")}
    later = timezone.now() + timedelta(seconds=55)
    assert all(row.run_after > later for row in rows)
    assert not Task.objects.due(["other"]).exists()  # not before their delay


def test_a_bad_step_enqueues_nothing():
    with pytest.raises(TaskArgumentsError, match=r"Arguments of task 'echo' must be JSON \(args"):
        app.add_tasks([tasks.echo.s(1), tasks.echo.s({1, 2})])
    with pytest.raises(UnknownTask, match="No task named 'nope' is registered"):
        app.add_tasks([tasks.echo.s(1), Step("nope")])
    with pytest.raises(TypeError, match=r"add_tasks takes task.s\(...\) steps or tasks, not 5"):
        app.add_tasks([tasks.echo.s(1), 5])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="add_tasks: give delay or eta, not both"):
        app.add_tasks([tasks.echo.s(1)], delay=1, eta=timezone.now())
    assert not Task.objects.exists()
    assert app.add_tasks([]) == []


def test_a_rolled_back_transaction_leaves_no_task_and_runs_none(worker):
    def enqueue_then_fail() -> None:
        with transaction.atomic():
            app.add_tasks([tasks.echo.s("ghost")] * 3)
            assert Task.objects.count() == 3
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError, match="rolled back"):
        enqueue_then_fail()
    assert not Task.objects.exists()
    # The worker is alive and got nothing: a task after it runs alone.
    assert wait_status(tasks.echo.add_task("real")).returning == "real"
    assert Task.objects.count() == 1


@pytest.mark.timeout(900)  # wait_all_final fails it once no task ends for 60 s
def test_many_rows_go_in_few_statements_and_send_save_signals(worker, caplog):
    count = INSERT_BATCH * 2 + 7
    saved: list[bool] = []

    def on_save(sender: type, created: bool, **kwargs: object) -> None:
        saved.append(created)

    signals.post_save.connect(on_save, sender=Task)
    try:
        with CaptureQueriesContext(connection) as queries, caplog.at_level(logging.WARNING):
            records = app.add_tasks(tasks.echo.s(number) for number in range(count))
    finally:
        signals.post_save.disconnect(on_save, sender=Task)
    assert saved == [True] * count
    # Published and marked so, whatever the database (none waits in the outbox).
    assert caplog.records == []
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    if connection.vendor == "postgresql":
        assert len(inserts) == 3  # 500 + 500 + 7 rows
    else:  # SQLite takes fewer parameters per statement
        assert len(inserts) < count // 10
    assert Task.objects.count() == count

    statuses = wait_all_final([record.uuid for record in records], stalled_for=60)
    if statuses.get(TaskStatus.SUCCESS) != count:
        state = worker.report_state()
        pytest.fail(f"{statuses}; log:\n{worker.log[-4000:]}\nstate:\n{state}")
    for record in (records[0], records[-1]):
        record.refresh_from_db()
        assert record.returning == record.args[0]


def test_the_async_twin(worker):
    records = async_to_sync(app.aadd_tasks)([tasks.echo.s("a"), tasks.echo.s("b")])
    assert [wait_status(record).returning for record in records] == ["a", "b"]
