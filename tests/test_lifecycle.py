"""End-to-end: tasks enqueued here, run by a real worker process."""

from __future__ import annotations

import pytest

from django_qtasks import app
from django_qtasks.models import Task, TaskStatus
from tests.conftest import wait_status
from tests.testapp import tasks

pytestmark = [pytest.mark.broker, pytest.mark.amqp, pytest.mark.django_db(transaction=True)]


def test_sync_task_runs_and_stores_result(worker):
    queued = tasks.echo.add_task({"hello": ["world", 1]})
    assert queued.status == TaskStatus.NEW
    done = wait_status(queued)
    assert done.status == TaskStatus.SUCCESS
    assert done.returning == {"hello": ["world", 1]}
    assert done.attempts == 1
    assert done.worker == worker.log.split("Worker ")[1].split(" started")[0]
    assert done.started_at >= done.created_at
    assert done.finished_at >= done.started_at


def test_add_task_with_timeout_waits_and_returns_refreshed_record(worker):
    done = app.add_task("async_echo", "hi", timeout=20)
    assert isinstance(done, Task)
    assert done.status == TaskStatus.SUCCESS
    assert done.returning == "hi"


def test_seed_example_ends_as_cancel_with_reason(worker):
    from demo.tasks import test_echo_ctx

    done = test_echo_ctx.add_task(timeout=30)
    assert done.status == TaskStatus.CANCEL
    assert done.cancel_reason == "Test task canceled"
    assert done.returning is None
    assert done.priority == 1
    assert done.tags == ["test"]
    assert done.extra == {"test": "test"}
    assert done.max_attempts == 4
    messages = [line["message"] for line in done.logs]
    assert messages[0] == "This is a test task!"
    assert "'GREETING': 'hello'" in messages[1]
    assert "cancel_reason='Test task canceled'" in repr(done)
    assert repr(done).startswith("Task(status='cancel', uuid=UUID(")
    assert "task_name='test_echo_ctx'" in repr(done)
    worker.wait_for_log(f"Task {done.uuid} was canceled due to: Test task canceled")


def test_a_nan_result_ends_as_error_instead_of_failing_to_save(worker):
    done = tasks.returns_nan.add_task(timeout=20)
    assert done.status == TaskStatus.ERROR
    assert "The task's result is not JSON" in done.traceback
