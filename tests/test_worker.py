"""End-to-end: the worker process itself, i.e. what ``manage.py qtasks_worker`` does.

Every test here runs real ``qtasks_worker`` subprocesses against the test
database. Tests that must control which worker takes a task put their tasks
on a queue of their own, so the shared worker (queues default,other) never
sees them. Faults (shutdown, cancel, dead workers) are in test_worker_faults.py.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from django_qtasks import app
from django_qtasks.exceptions import QTasksError
from django_qtasks.models import Task, TaskStatus, WorkerHeartbeat
from tests.conftest import run_worker, wait_all_final, wait_status, wait_until
from tests.testapp import tasks, tasks_lifecycle

pytestmark = [pytest.mark.broker, pytest.mark.cells, pytest.mark.django_db(transaction=True)]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# Priority ------------------------------------------------------------------------


@pytest.mark.e2e
def test_lower_priority_number_runs_first():
    queue = unique("prio")
    # Enqueued out of order, with no worker on the queue; two share priority 1.
    # Message brokers have ten levels (0..9; others are clamped): stay inside.
    plan = [("p5", 5), ("p1", 1), ("p9", 9), ("p0", 0), ("p1-later", 1), ("p2", 2), ("p3", 3)]
    for label, priority in plan:
        queued = tasks.record_order.add_task(label, priority=priority, queue=queue)
        assert queued.priority == priority

    result = run_worker("--queues", queue, "--concurrency", "1", "--burst")
    assert result.returncode == 0, result.stderr

    done = list(Task.objects.filter(queue=queue).order_by("started_at"))
    assert [task.status for task in done] == [TaskStatus.SUCCESS] * len(plan)
    assert [task.returning for task in done] == ["p0", "p1", "p1-later", "p2", "p3", "p5", "p9"]
    # One at a time: each started after the one before it finished.
    for before, after in itertools.pairwise(done):
        assert before.finished_at <= after.started_at
    assert "stopped after 7 tasks" in result.stderr


@pytest.mark.e2e
def test_priority_given_per_call_overrides_the_decorator_default():
    queue = unique("prio")
    # options_report is declared with priority=3.
    default = app.add_task("options_report", queue=queue)
    urgent = app.add_task("options_report", queue=queue, priority=0)
    assert (default.priority, urgent.priority) == (3, 0)

    result = run_worker("--queues", queue, "--concurrency", "1", "--burst")
    assert result.returncode == 0, result.stderr

    default, urgent = wait_status(default), wait_status(urgent)
    assert default.status == urgent.status == TaskStatus.SUCCESS
    assert urgent.started_at < default.started_at
    # The task itself sees its declared priority; the record keeps the per-call one.
    assert urgent.returning["priority"] == 3
    assert urgent.priority == 0


# Several workers -------------------------------------------------------------------


@pytest.mark.timeout(900)  # wait_all_final fails it once no task ends for 60 s
def test_two_workers_never_run_the_same_task_twice(start_worker, tmp_path):
    queue = unique("race")
    first = start_worker("--queues", queue, "--concurrency", "4", "--worker-id", unique("w1"))
    second = start_worker("--queues", queue, "--concurrency", "4", "--worker-id", unique("w2"))
    runs_file = tmp_path / "runs.txt"
    runs_file.touch()

    # Committed at once, so both workers race for the same rows.
    with transaction.atomic():
        queued = [
            (
                tasks_lifecycle.worker_append_line
                if number % 2
                else tasks_lifecycle.worker_aappend_line
            ).add_task(str(runs_file), f"task-{number}", queue=queue)
            for number in range(200)
        ]

    # Slow on a busy machine (SQLite's one writer at a time), but never stalled.
    statuses = wait_all_final([task.uuid for task in queued], stalled_for=60)
    assert statuses.get(TaskStatus.SUCCESS) == 200, (
        f"all 200 tasks to succeed; statuses: {statuses}\n"
        f"first worker:\n{first.log[-3000:]}\nsecond worker:\n{second.log[-3000:]}"
    )
    done = list(Task.objects.filter(queue=queue))
    assert len(done) == 200
    assert Counter(task.status for task in done) == {TaskStatus.SUCCESS: 200}
    assert {task.attempts for task in done} == {1}
    assert all(len(task.attempt_log) == 1 for task in done)
    assert all(task.attempt_log[0]["worker"] == task.worker for task in done)
    assert {task.returning for task in done} == {f"task-{number}" for number in range(len(queued))}

    # Each task's side effect happened exactly once.
    lines = runs_file.read_text().splitlines()
    labels = Counter(line.split()[0] for line in lines)
    assert len(lines) == 200
    assert set(labels.values()) == {1}

    # Both workers took a share, and each ran its share in its own process.
    by_worker = Counter(task.worker for task in done)
    worker_ids = {log_worker_id(first.log), log_worker_id(second.log)}
    assert set(by_worker) == worker_ids, by_worker
    assert {line.split()[1] for line in lines} == {
        str(first.process.pid),
        str(second.process.pid),
    }
    for worker_process in (first, second):
        assert "Traceback" not in worker_process.log, worker_process.log


def log_worker_id(log: str) -> str:
    return log.split("Worker ", 1)[1].split(" started:", 1)[0]


# transaction.atomic ----------------------------------------------------------------


class Rollback(Exception):
    pass


def test_task_enqueued_in_rolled_back_transaction_never_runs(worker):
    def enqueue_then_fail() -> None:
        with transaction.atomic():
            doomed = tasks.echo.add_task("never")
            assert Task.objects.filter(pk=doomed.uuid).exists()  # visible inside the block only
            raise Rollback(doomed)

    with pytest.raises(Rollback) as raised:
        enqueue_then_fail()
    doomed = raised.value.args[0]

    assert not Task.objects.filter(pk=doomed.uuid).exists()
    assert app.get(doomed.uuid) is None
    # The worker is alive and busy with later work, and the rolled-back one never shows up.
    later = wait_status(tasks.echo.add_task("later"))
    assert later.status == TaskStatus.SUCCESS
    assert app.get(doomed.uuid) is None
    assert str(doomed.uuid) not in worker.log


def test_task_enqueued_in_committed_transaction_runs_after_its_data(worker):
    from django.contrib.auth.models import User

    username = unique("user")
    with transaction.atomic():
        queued = tasks_lifecycle.worker_user_exists.add_task(username)
        # The task needs a row written later in the same transaction: a worker
        # that saw the task before the commit would fail it.
        time.sleep(0.5)
        User.objects.create(username=username)
        assert Task.objects.get(pk=queued.uuid).status == TaskStatus.NEW

    done = wait_status(queued)
    assert done.status == TaskStatus.SUCCESS, done.traceback
    assert done.returning == username
    assert done.attempts == 1


def test_add_task_with_timeout_inside_atomic_is_refused_and_writes_nothing(worker):
    before = Task.objects.count()
    with transaction.atomic():
        with pytest.raises(QTasksError, match=r"timeout.*transaction\.atomic"):
            tasks.echo.add_task("x", timeout=5)
        with pytest.raises(QTasksError, match="Wait after the block"):
            app.add_task("echo", "x", timeout=5)
    assert Task.objects.count() == before


# The command -----------------------------------------------------------------------


@pytest.mark.e2e
def test_burst_runs_what_is_due_then_exits_0_with_start_and_end_lines():
    queue = unique("burst")
    queued = [tasks.echo.add_task(number, queue=queue) for number in range(3)]
    queued.append(tasks.async_echo.add_task("async", queue=queue))

    result = run_worker("--queues", queue, "--burst")

    assert result.returncode == 0, result.stderr
    log = result.stderr
    for task in queued:
        task.refresh_from_db()
        assert task.status == TaskStatus.SUCCESS
        assert f"Task {task.uuid} ({task.task_name}) started, attempt 1 of 1" in log
        assert f"Task {task.uuid} ({task.task_name}) ended with status success in " in log
    assert "stopped after 4 tasks" in log
    # Only task lines and the worker's own start and stop (besides the system
    # checks' output): its side loops end with it, not before.
    records = [line for line in log.splitlines() if line.startswith("[")]
    assert [line for line in records if "] INFO " not in line] == [], log


@pytest.mark.e2e
def test_burst_with_nothing_due_exits_0_at_once():
    queue = unique("empty")
    # Due later only: not waited for.
    later = tasks.echo.add_task("later", queue=queue)
    Task.objects.filter(pk=later.uuid).update(run_after=timezone.now() + timedelta(hours=1))

    # It does not wait the hour: run_worker gives up after a minute.
    result = run_worker("--queues", queue, "--burst")

    assert result.returncode == 0, result.stderr
    assert "stopped after 0 tasks" in result.stderr
    later.refresh_from_db()
    assert later.status == TaskStatus.NEW
    assert later.started_at is None


def test_max_tasks_exits_0_after_that_many(start_worker):
    queue = unique("max")
    queued = [tasks.record_order.add_task(f"t{number}", queue=queue) for number in range(4)]

    process = start_worker("--queues", queue, "--concurrency", "1", "--max-tasks", "2")
    assert process.wait(30) == 0

    statuses = []
    for task in queued:
        task.refresh_from_db()
        statuses.append(task.status)
    # The oldest two (same priority: first in, first out) ran; the others wait.
    assert statuses == [TaskStatus.SUCCESS, TaskStatus.SUCCESS, TaskStatus.NEW, TaskStatus.NEW]
    assert queued[2].started_at is None
    assert "stopped after 2 tasks" in process.log


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--concurrency", "0"), "argument --concurrency/-c: must be a whole number of at least 1"),
        (
            ("--concurrency", "two"),
            "argument --concurrency/-c: must be a whole number of at least 1",
        ),
        (("--max-tasks", "-1"), "argument --max-tasks: must be a whole number of at least 1"),
        (
            ("--prefetch", "-1"),
            "argument --prefetch: must be 'auto' or a whole number, 0 or more, not '-1'",
        ),
        (
            ("--prefetch", "x"),
            "argument --prefetch: must be 'auto' or a whole number, 0 or more, not 'x'",
        ),
        (("--loglevel", "nope"), "argument --loglevel/-l: invalid choice: 'NOPE'"),
        (("--shutdown-timeout", "-1"), "--shutdown-timeout must not be negative"),
    ],
)
@pytest.mark.e2e
def test_bad_options_are_refused_with_a_clear_message(args, message):
    result = run_worker(*args, "--burst", timeout=30)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert "started:" not in result.stderr


def test_sigusr1_logs_the_worker_state_and_every_thread_stack(start_worker):
    queue = unique("state")
    worker = start_worker("--queues", queue)
    running = tasks.sync_sleeper.add_task(30, queue=queue)
    worker.wait_for_log(f"Task {running.uuid} (sync_sleeper) started", timeout=60)

    state = worker.report_state()

    assert f"Worker {Task.objects.get(pk=running.pk).worker} state: 1 runs under way" in state
    assert "side loops: write_endings running, fail_over running" in state
    assert "Thread MainThread:" in state
    assert "in sync_sleeper" in state  # the task's thread, where it sleeps
    assert worker.process.poll() is None, "the worker goes on"
    running.cancel("done looking")
    assert wait_status(running, timeout=60).status == TaskStatus.CANCEL


@pytest.mark.e2e
def test_loglevel_is_case_insensitive_and_warning_hides_task_lines():
    queue = unique("quiet")
    queued = tasks.echo.add_task(1, queue=queue)
    result = run_worker("--queues", queue, "--burst", "--loglevel", "warning")
    assert result.returncode == 0, result.stderr
    assert wait_status(queued).status == TaskStatus.SUCCESS
    # (A warning may name it: on a busy machine, a redelivery of its message.)
    assert f"Task {queued.uuid} ({queued.task_name}) started" not in result.stderr
    assert "] INFO " not in result.stderr, result.stderr


# Heartbeats ------------------------------------------------------------------------


def test_running_worker_has_a_heartbeat_row_removed_on_clean_stop(start_worker):
    worker_id = unique("hb")
    process = start_worker(
        "--queues", "hb-one,hb-two", "--concurrency", "3", "--worker-id", worker_id
    )

    beat = WorkerHeartbeat.objects.get(worker_id=worker_id)
    assert beat.queues == ["hb-one", "hb-two"]
    assert beat.concurrency == 3
    assert beat.pid == process.process.pid
    assert beat.hostname
    assert beat.running == []
    first_beat = beat.last_heartbeat
    assert timezone.now() - first_beat < timedelta(seconds=10)

    # While a task runs, the heartbeat lists it, and keeps coming.
    running = tasks.async_sleeper.add_task(2, queue="hb-two")
    wait_status(running, TaskStatus.PROCESS)
    wait_until(
        lambda: WorkerHeartbeat.objects.get(worker_id=worker_id).running == [str(running.uuid)],
        timeout=5,
        message="the heartbeat to list the running task",
    )
    assert WorkerHeartbeat.objects.get(worker_id=worker_id).last_heartbeat > first_beat
    assert wait_status(running).status == TaskStatus.SUCCESS

    process.signal()
    assert process.wait(20) == 0
    assert not WorkerHeartbeat.objects.filter(worker_id=worker_id).exists()
    assert f"Worker {worker_id} stopped after 1 tasks" in process.log


@pytest.mark.e2e
def test_burst_worker_leaves_no_heartbeat_row():
    worker_id = unique("hb-burst")
    result = run_worker("--queues", unique("none"), "--burst", "--worker-id", worker_id)
    assert result.returncode == 0, result.stderr
    assert f"Worker {worker_id} started:" in result.stderr
    assert not WorkerHeartbeat.objects.filter(worker_id=worker_id).exists()
