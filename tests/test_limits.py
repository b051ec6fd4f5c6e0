"""What a task may store: results (and a generator's progress) up to RESULT_MAX_BYTES,
log lines up to LOG_LINE_MAX_CHARS, cancel reasons up to CANCEL_REASON_MAX_LENGTH,
tracebacks up to TRACEBACK_MAX_CHARS. Run
by real workers started with these settings."""

from __future__ import annotations

import json

import pytest

from django_qtasks.models import CANCEL_REASON_MAX_LENGTH, FINAL_STATUSES, Task, TaskStatus
from django_qtasks.validation import TRACEBACK_MAX_CHARS
from tests.conftest import wait_status, wait_until
from tests.testapp import tasks, tasks_params

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE = "limits"


@pytest.fixture
def limited_worker(monkeypatch, start_worker):
    limits = {"RESULT_MAX_BYTES": 1000, "LOG_LINE_MAX_CHARS": 50}
    monkeypatch.setenv("QTASKS_TEST_SETTINGS", json.dumps(limits))
    # A queue of its own: the session's shared worker has the default limits.
    return start_worker("--concurrency", "2", "--queues", QUEUE)


def test_a_result_over_the_limit_ends_the_task_in_error_saying_so(limited_worker):
    big = tasks.echo.add_task("x" * 2000, queue=QUEUE)
    small = tasks.echo.add_task("x" * 500, queue=QUEUE)
    big = wait_status(big, TaskStatus.ERROR, TaskStatus.SUCCESS, timeout=60)
    assert big.status == TaskStatus.ERROR
    assert big.returning is None
    assert "result is 2002 bytes of JSON, over the limit of 1000 bytes" in big.traceback
    assert "QTASKS['RESULT_MAX_BYTES']" in big.traceback
    small = wait_status(small, TaskStatus.SUCCESS, TaskStatus.ERROR, timeout=60)
    assert small.status == TaskStatus.SUCCESS
    assert small.returning == "x" * 500


def test_a_long_log_line_is_cut_with_a_marker(limited_worker):
    task = tasks.log_line.add_task("a" * 30 + "b" * 100, queue=QUEUE)
    task = wait_status(task, TaskStatus.SUCCESS, TaskStatus.ERROR, timeout=60)
    assert task.status == TaskStatus.SUCCESS
    [line] = [line["message"] for line in task.logs]
    assert line == "a" * 30 + "b" * 20 + " [... 80 more characters not kept]"


def test_the_progress_of_a_generator_is_stored_only_within_the_limit(limited_worker):
    # 400 numbers are about 1,900 bytes of JSON: past the limit midway.
    task = tasks.slow_gen.add_task(400, 0.005, queue=QUEUE)
    stored: list[int] = []

    def ended() -> bool:
        row = Task.objects.get(pk=task.pk)
        if row.status == TaskStatus.PROCESS and row.returning is not None:
            stored.append(len(json.dumps(row.returning, ensure_ascii=False).encode()))
        return row.status in FINAL_STATUSES

    wait_until(ended, timeout=60, message="the generator's end")
    task.refresh_from_db()
    assert task.status == TaskStatus.ERROR
    assert "over the limit of 1000 bytes" in task.traceback
    assert stored, "no progress was seen"
    assert max(stored) <= 1000


def test_a_task_that_cancels_itself_keeps_its_reason_cut_to_the_limit(limited_worker):
    # The limit of the admin, the API and Task.cancel(), for ctx.cancel() too.
    task = tasks_params.probe_cancel_sync.add_task("s" * 5000, queue=QUEUE)
    task = wait_status(task, timeout=60)
    assert task.status == TaskStatus.CANCEL
    assert task.cancel_reason == "s" * (CANCEL_REASON_MAX_LENGTH - 1) + "\u2026"


def test_a_huge_exception_message_is_kept_cut_with_its_end(limited_worker):
    message = "start " + "x" * 1_000_000 + " end"
    task = tasks.fails_with.add_task(message, queue=QUEUE)
    task = wait_status(task, TaskStatus.ERROR, TaskStatus.SUCCESS, timeout=60)
    assert task.status == TaskStatus.ERROR
    assert len(task.traceback) < TRACEBACK_MAX_CHARS + 100
    assert task.traceback.startswith("Traceback (most recent call last):")
    assert "characters not kept ...]" in task.traceback
    assert task.traceback.rstrip().endswith(" end")
    assert len(task.attempt_log[-1]["error"]) < TRACEBACK_MAX_CHARS + 100
