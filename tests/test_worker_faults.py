"""End-to-end: a worker stopped by a signal, tasks cancelled from outside, a worker that dies.

Real ``qtasks_worker`` subprocesses; the fast intervals of tests/settings.py
(HEARTBEAT_TIMEOUT=5, CANCEL_GRACE=1, SHUTDOWN_TIMEOUT=5) keep these quick.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from django_qtasks.models import Task, TaskStatus, WorkerHeartbeat
from django_qtasks.worker.liveness import write_heartbeat
from django_qtasks.worker.worker import Worker
from tests.conftest import run_worker, wait_status, wait_until
from tests.testapp import tasks, tasks_lifecycle

pytestmark = [pytest.mark.broker, pytest.mark.amqp, pytest.mark.django_db(transaction=True)]

CANCEL_GRACE = timedelta(seconds=settings.QTASKS["CANCEL_GRACE"])
HEARTBEAT_TIMEOUT = settings.QTASKS["HEARTBEAT_TIMEOUT"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def run_burst(queue: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A later worker: runs what is due on ``queue``, then exits."""
    result = run_worker("--queues", queue, "--burst", *args)
    assert result.returncode == 0, result.stderr
    return result


def wait_logged(task: Task, message: str, timeout: float = 10) -> None:
    """Wait until a line the task logged is saved with it (saved while it runs)."""

    def logged() -> bool:
        task.refresh_from_db()
        return any(line["message"] == message for line in task.logs)

    wait_until(logged, timeout, f"{task.task_name} to log {message!r}")


def assert_interrupted_and_back(task: Task, worker_id: str, line: str = "going to sleep") -> None:
    """Stopped by its worker's shutdown, then back in the queue.

    The interrupted attempt is in the attempt log, its log lines say which
    attempt wrote them, and one more attempt is allowed: it used up no retry.
    """
    task.refresh_from_db()
    assert task.status == TaskStatus.NEW
    assert task.worker == ""
    assert task.started_at is None
    assert task.finished_at is None
    assert (task.attempts, task.max_attempts) == (1, 2)
    [attempt] = task.attempt_log
    assert attempt["attempt"] == 1
    assert attempt["status"] == "interrupted"
    assert attempt["worker"] == worker_id
    assert f"Worker {worker_id} stopped this run to shut down" in attempt["error"]
    assert [(kept["message"], kept["attempt"]) for kept in task.logs] == [(line, 1)]


# Graceful shutdown ---------------------------------------------------------------------


def test_sigterm_lets_running_tasks_end_and_takes_no_new_task(start_worker):
    queue, worker_id = unique("term"), unique("term")
    process = start_worker(
        "--queues",
        queue,
        "--concurrency",
        "4",
        "--shutdown-timeout",
        "10",
        "--worker-id",
        worker_id,
    )
    sync_task = tasks.sync_sleeper.add_task(1.5, queue=queue)
    async_task = tasks.async_sleeper.add_task(1.5, queue=queue)
    # Started, not only claimed (a claim's tasks that have not started when
    # the stop comes go back to the queue).
    for task in (sync_task, async_task):
        process.wait_for_log(f"Task {task.uuid} ({task.task_name}) started", timeout=60)

    process.signal(signal.SIGTERM)
    process.wait_for_log("Received SIGTERM: taking no new tasks")
    # Free slots, a due task, and the worker still does not take it.
    late = tasks.echo.add_task("late", queue=queue)

    assert process.wait(20) == 0
    for task in (sync_task, async_task):
        task.refresh_from_db()
        assert task.status == TaskStatus.SUCCESS
        assert task.returning == "woke up"
        assert task.attempts == 1
        assert f"Task {task.uuid} ({task.task_name}) ended with status success" in process.log
    late.refresh_from_db()
    assert late.status == TaskStatus.NEW
    assert late.started_at is None
    assert late.attempts == 0
    assert str(late.uuid) not in process.log
    assert f"Worker {worker_id} stopped after 2 tasks" in process.log
    assert not WorkerHeartbeat.objects.filter(worker_id=worker_id).exists()

    # Nothing was lost: the next worker runs it.
    run_burst(queue)
    assert wait_status(late).status == TaskStatus.SUCCESS


def test_task_longer_than_shutdown_timeout_goes_back_to_the_queue(start_worker, tmp_path):
    queue, worker_id = unique("term-long"), unique("term-long")
    process = start_worker("--queues", queue, "--shutdown-timeout", "0.5", "--worker-id", worker_id)
    # They run until the test creates ``release``: interrupted, they stop at
    # their next ctx.sleep.
    release = tmp_path / "release"
    sync_task = tasks.wait_for_file.add_task(str(release), queue=queue)
    async_task = tasks.async_wait_for_file.add_task(str(release), queue=queue)
    wait_logged(sync_task, f"waiting for {release}")
    wait_logged(async_task, f"waiting for {release}")

    process.signal(signal.SIGTERM)
    # It did not wait for the tasks to end: they could not.
    assert process.wait(60) == 0

    for task in (sync_task, async_task):
        assert_interrupted_and_back(task, worker_id, f"waiting for {release}")
        assert (
            f"Task {task.uuid} ({task.task_name}) was stopped and returned to the queue"
            in process.log
        )
        # Stopped, not left running: its body never got to return.
        assert f"Task {task.uuid} ({task.task_name}) ended" not in process.log
    assert "Stopping 2 running tasks" in process.log
    assert not WorkerHeartbeat.objects.filter(worker_id=worker_id).exists()

    # A later worker runs them to the end, as second attempts of two.
    release.touch()
    run_burst(queue)
    for task in (sync_task, async_task):
        task.refresh_from_db()
        assert task.status == TaskStatus.SUCCESS
        assert task.returning == "released"
        assert (task.attempts, task.max_attempts) == (2, 2)
        assert [entry["status"] for entry in task.attempt_log] == ["interrupted", "success"]
        assert task.worker != worker_id
        assert [(line["message"], line["attempt"]) for line in task.logs] == [
            (f"waiting for {release}", 1),
            (f"waiting for {release}", 2),
        ]


def test_a_thread_that_cannot_be_stopped_keeps_its_row_until_its_worker_is_gone(start_worker):
    queue, worker_id = unique("blocked"), unique("blocked")
    process = start_worker("--queues", queue, "--shutdown-timeout", "0.2", "--worker-id", worker_id)
    task = tasks.sync_blocked.add_task(120, queue=queue)
    wait_logged(task, "blocking")

    process.signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert f"Task {task.uuid} could not be stopped" in process.log
    # Not handed back while its thread ran: the row is still this worker's,
    # and so is the heartbeat that other workers judge it by.
    task.refresh_from_db()
    assert (task.status, task.worker, task.attempts) == (TaskStatus.PROCESS, worker_id, 1)
    assert WorkerHeartbeat.objects.filter(worker_id=worker_id).exists()

    # The process is gone: once its heartbeat is out of date, fail-over ends
    # the task (no retry left), once.
    start_worker("--queues", queue)
    done = wait_status(task, timeout=HEARTBEAT_TIMEOUT + 30)
    assert done.status == TaskStatus.ERROR
    assert f"Worker {worker_id} stopped sending heartbeats" in done.traceback
    assert done.returning is None
    assert [(entry["worker"], entry["status"]) for entry in done.attempt_log] == [
        (worker_id, TaskStatus.ERROR)
    ]
    # Its heartbeat goes once its tasks are dealt with, in the same pass.
    wait_until(
        lambda: not WorkerHeartbeat.objects.filter(worker_id=worker_id).exists(),
        message="the dead worker's heartbeat to go",
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_second_signal_stops_at_once_and_requeues_running_tasks(start_worker, signum):
    queue, worker_id = unique("twice"), unique("twice")
    process = start_worker("--queues", queue, "--shutdown-timeout", "600", "--worker-id", worker_id)
    sync_task = tasks.sync_sleeper.add_task(600, queue=queue)
    async_task = tasks.async_sleeper.add_task(600, queue=queue)
    wait_logged(sync_task, "going to sleep")
    wait_logged(async_task, "going to sleep")

    name = signal.Signals(signum).name
    process.signal(signum)
    process.wait_for_log(f"Received {name}: taking no new tasks")
    process.signal(signum)
    # Not the 600 s shutdown timeout, nor the tasks' 600 s.
    assert process.wait(60) == 0

    assert f"Received {name} again: stopping now" in process.log
    for task in (sync_task, async_task):
        assert_interrupted_and_back(task, worker_id)
        assert (
            f"Task {task.uuid} ({task.task_name}) was stopped and returned to the queue"
            in process.log
        )
    # Its own release is not taken for a take-over by its heartbeat's fencing.
    assert "was taken from worker" not in process.log
    assert not WorkerHeartbeat.objects.filter(worker_id=worker_id).exists()


def test_a_task_handed_back_with_a_cancel_request_ends_cancelled_without_running(
    start_worker, monkeypatch
):
    # The workers look for cancel requests only every hour: this one stops first.
    monkeypatch.setenv("QTASKS_TEST_SETTINGS", json.dumps({"CANCEL_POLL_INTERVAL": 3600}))
    queue = unique("cancel-handed-back")
    worker_id = unique("cancel-handed-back")
    process = start_worker("--queues", queue, "--shutdown-timeout", "0.5", "--worker-id", worker_id)
    task = tasks.sync_sleeper.add_task(600, queue=queue)
    wait_logged(task, "going to sleep")
    assert task.cancel("not needed any more", by="bob") is True
    process.signal(signal.SIGTERM)
    assert process.wait(20) == 0
    task.refresh_from_db()
    # Handed back with the request unseen, as a rule. (CI runs on RabbitMQ
    # have found it already cancelled here, which is also what the user
    # asked for. What matters is below: it never runs again.)
    handed_back = task.status != TaskStatus.CANCEL
    if handed_back:
        assert_interrupted_and_back(task, worker_id)
        assert task.cancel_requested_at is not None

    # Run, it would have slept its 600 s (run_burst gives up after 60 s): no
    # cancel poll comes in that time.
    result = run_burst(queue)
    task.refresh_from_db()
    assert task.status == TaskStatus.CANCEL
    assert task.cancel_reason == "not needed any more"
    assert task.canceled_by == "bob"
    assert task.returning is None
    if handed_back:
        assert f"Task {task.uuid} was canceled due to: not needed any more" in result.stderr


# Cancel from outside ---------------------------------------------------------------------


@pytest.mark.e2e
def test_cancel_of_a_queued_task_means_it_never_starts():
    queue = unique("cancel-queued")
    queued = tasks.echo.add_task("never", queue=queue)
    kept = tasks.echo.add_task("kept", queue=queue)

    assert queued.cancel("changed my mind", by="alice") is True
    # Ended at once: no worker needed.
    assert queued.status == TaskStatus.CANCEL
    assert queued.cancel_reason == "changed my mind"
    assert queued.canceled_by == "alice"
    assert queued.finished_at is not None

    result = run_burst(queue)

    queued.refresh_from_db()
    assert queued.status == TaskStatus.CANCEL
    assert queued.started_at is None
    assert queued.attempts == 0
    assert queued.worker == ""
    assert queued.returning is None
    assert str(queued.uuid) not in result.stderr
    assert wait_status(kept).status == TaskStatus.SUCCESS
    assert "stopped after 1 tasks" in result.stderr


def test_cancel_of_a_running_async_task_stops_it_at_its_next_await(worker):
    running = tasks.async_sleeper.add_task(30)
    wait_logged(running, "going to sleep")

    assert running.cancel("no longer needed", by="alice") is True
    # The worker acts on it (cancel() reads the row back: it may have already).
    assert running.status in (TaskStatus.PROCESS, TaskStatus.CANCEL)
    assert running.cancel_requested_at is not None

    done = wait_status(running, timeout=60)
    assert done.status == TaskStatus.CANCEL
    assert done.cancel_reason == "no longer needed"
    assert done.canceled_by == "alice"
    assert done.returning is None
    assert done.started_at is not None
    # Stopped at its await, not when its 30 s sleep was over.
    assert done.finished_at - done.started_at < timedelta(seconds=30)
    assert [line["message"] for line in done.logs] == ["going to sleep"]
    assert done.attempt_log[-1]["status"] == TaskStatus.CANCEL
    worker.wait_for_log(f"Task {done.uuid} was canceled due to: no longer needed")


def test_cancel_of_a_running_sync_task_stops_it_at_its_next_ctx_sleep(worker):
    running = tasks.sync_sleeper.add_task(30)
    wait_logged(running, "going to sleep")

    assert running.cancel("stop sleeping", by="bob") is True
    done = wait_status(running, timeout=10)

    assert done.status == TaskStatus.CANCEL
    assert done.cancel_reason == "stop sleeping"
    assert done.canceled_by == "bob"
    assert done.returning is None
    # ctx.sleep woke up: it did not need the grace period.
    assert done.finished_at - done.cancel_requested_at < CANCEL_GRACE
    worker.wait_for_log(f"Task {done.uuid} was canceled due to: stop sleeping")


def test_cancel_of_a_sync_task_that_never_checks_stops_it_after_the_grace(worker):
    running = tasks.sync_busy.add_task(600)
    wait_status(running, TaskStatus.PROCESS)
    time.sleep(0.2)  # well into its loop

    assert running.cancel("too busy", by="carol") is True
    # Stopped, not ended: it would have run for 600 s.
    done = wait_status(running, timeout=60)

    assert done.status == TaskStatus.CANCEL
    assert done.cancel_reason == "too busy"
    assert done.canceled_by == "carol"
    assert done.returning is None
    took = done.finished_at - done.cancel_requested_at
    assert CANCEL_GRACE <= took < timedelta(seconds=60)
    worker.wait_for_log(f"Task {done.uuid} was canceled due to: too busy")
    # Its thread was stopped: the worker goes on running tasks.
    assert wait_status(tasks.echo.add_task("after")).status == TaskStatus.SUCCESS


@pytest.mark.timeout(600)
def test_a_cancelled_task_whose_thread_stays_blocked_does_not_take_a_slot(start_worker):
    """Its thread cannot be stopped (blocked in C): the task ends cancelled, and the
    worker runs the next tasks beside that thread instead of queueing them behind it."""
    queue = unique("left")
    worker = start_worker("--queues", queue, "--concurrency", "1")
    blocked = tasks.sync_blocked.add_task(600, queue=queue)
    wait_logged(blocked, "blocking", timeout=60)

    assert blocked.cancel("stuck in C") is True
    assert wait_status(blocked, timeout=60).status == TaskStatus.CANCEL
    worker.wait_for_log(f"Task {blocked.uuid} is still running in its thread", timeout=60)
    # Its thread sleeps for 600 s more: these run beside it, long before.
    after = [tasks.echo.add_task(number, queue=queue) for number in range(3)]
    for number, task in enumerate(after):
        done = wait_status(task, timeout=120)
        assert (done.status, done.returning) == (TaskStatus.SUCCESS, number)


def test_cancel_of_a_finished_task_returns_false_and_changes_nothing(worker):
    done = wait_status(tasks.echo.add_task("done"))
    assert done.status == TaskStatus.SUCCESS
    before = Task.objects.filter(pk=done.uuid).values().get()

    assert done.cancel("too late", by="dave") is False

    assert Task.objects.filter(pk=done.uuid).values().get() == before
    assert done.status == TaskStatus.SUCCESS
    assert done.cancel_reason == ""
    assert done.canceled_by == ""
    assert done.cancel_requested_at is None

    # Nor can a cancelled task be cancelled again.
    cancelled = tasks.echo.add_task("x", queue=unique("nobody"))
    assert cancelled.cancel("first", by="erin") is True
    assert cancelled.cancel("second", by="frank") is False
    cancelled.refresh_from_db()
    assert (cancelled.cancel_reason, cancelled.canceled_by) == ("first", "erin")


# Worker death ------------------------------------------------------------------------------


def test_killed_worker_tasks_are_retried_or_failed_by_a_live_worker(start_worker):
    queue, doomed_id, rescuer_id = unique("death"), unique("doomed"), unique("rescuer")
    doomed = start_worker("--queues", queue, "--concurrency", "2", "--worker-id", doomed_id)
    retried = tasks_lifecycle.worker_slow_first_attempt.add_task(60, queue=queue)  # retry=1
    failed = tasks.sync_sleeper.add_task(60, queue=queue)  # no retry
    wait_logged(retried, "first attempt: sleeping")
    wait_logged(failed, "going to sleep")
    for task in (retried, failed):
        assert (task.status, task.worker, task.attempts) == (TaskStatus.PROCESS, doomed_id, 1)

    rescuer = start_worker("--queues", queue, "--worker-id", rescuer_id)
    doomed.signal(signal.SIGKILL)
    assert doomed.wait(10) == -signal.SIGKILL
    killed = time.monotonic()

    # Until its heartbeat expires, the dead worker's tasks are left alone.
    time.sleep(1)
    for task in (retried, failed):
        task.refresh_from_db()
        assert task.status == TaskStatus.PROCESS

    message = f"Worker {doomed_id} stopped sending heartbeats while running this task."
    failed = wait_status(failed, timeout=20)
    assert time.monotonic() - killed >= HEARTBEAT_TIMEOUT - 1
    assert failed.status == TaskStatus.ERROR
    assert message in failed.traceback
    assert failed.attempts == 1
    assert failed.finished_at is not None
    assert [(entry["worker"], entry["status"], entry["error"]) for entry in failed.attempt_log] == [
        (doomed_id, TaskStatus.ERROR, message)
    ]

    retried = wait_status(retried, timeout=20)
    assert retried.status == TaskStatus.SUCCESS, retried.traceback
    assert retried.returning == 2  # the second attempt ran
    assert retried.attempts == 2
    assert retried.worker == rescuer_id
    assert [(entry["worker"], entry["status"]) for entry in retried.attempt_log] == [
        (doomed_id, TaskStatus.ERROR),
        (rescuer_id, TaskStatus.SUCCESS),
    ]
    assert retried.attempt_log[0]["error"] == message
    assert f"Task {retried.uuid} (worker_slow_first_attempt) started, attempt 2 of 2" in rescuer.log

    assert not Task.objects.filter(queue=queue, status=TaskStatus.PROCESS).exists()
    # Its heartbeat goes once its tasks are dealt with, in the same pass.
    wait_until(
        lambda: not WorkerHeartbeat.objects.filter(worker_id=doomed_id).exists(),
        message="the dead worker's heartbeat to go",
    )
    assert WorkerHeartbeat.objects.filter(worker_id=rescuer_id).exists()


def test_a_row_left_in_process_for_a_live_worker_that_is_not_running_it_is_taken_over(
    start_worker,
):
    # As after a database crash that took back the commit of a result: the
    # row says the worker runs it, the worker knows nothing of it.
    worker = start_worker("--queues", unique("lost"))
    worker_id = worker.log.split("Worker ")[1].split(" started")[0]
    row = {
        "task_name": "echo",
        "status": TaskStatus.PROCESS,
        "worker": worker_id,
        "queue": unique("unserved"),  # so that no worker runs the retry meanwhile
        "attempts": 1,
    }
    long_ago = timezone.now() - timedelta(minutes=1)
    once = Task.objects.create(**row, started_at=long_ago)
    twice = Task.objects.create(**row, started_at=long_ago, max_attempts=2)
    just_claimed = Task.objects.create(**row, started_at=timezone.now())
    failed = wait_status(once, TaskStatus.ERROR, timeout=10)
    assert (
        f"Worker {worker_id} is not running this task: it restarted, or the database lost its "
        "result." in failed.traceback
    )
    assert wait_status(twice, TaskStatus.RETRY, timeout=10).run_after is not None
    just_claimed.refresh_from_db()
    assert just_claimed.status == TaskStatus.PROCESS  # within the margin: left alone


# A live worker is never failed over -----------------------------------------------------


@pytest.mark.skipif(
    connection.vendor == "sqlite", reason="SQLite locks the whole database, not a row"
)
def test_a_result_write_held_by_a_row_lock_does_not_stop_the_heartbeat(start_worker):
    queue, slow_id, other_id = unique("locked"), unique("slow"), unique("other")
    slow = start_worker("--queues", queue, "--worker-id", slow_id)
    other = start_worker("--queues", queue, "--worker-id", other_id)
    task = tasks.sync_sleeper.add_task(1, queue=queue)
    wait_logged(task, "going to sleep")
    holder_worker = Task.objects.get(pk=task.pk).worker

    # Another connection holds the row while the run ends: its result write
    # waits on the lock, well past HEARTBEAT_TIMEOUT.
    with transaction.atomic():
        Task.objects.select_for_update().get(pk=task.pk)
        time.sleep(2 * HEARTBEAT_TIMEOUT + 1)

    done = wait_status(task, timeout=30)
    assert done.status == TaskStatus.SUCCESS
    assert done.returning == "woke up"
    assert (done.attempts, done.worker) == (1, holder_worker)
    assert [entry["status"] for entry in done.attempt_log] == [TaskStatus.SUCCESS]
    for process in (slow, other):
        assert "stopped sending heartbeats" not in process.log
        assert "was taken from worker" not in process.log


@pytest.mark.skipif(
    connection.vendor == "sqlite", reason="SQLite locks the whole database, not a row"
)
def test_a_database_call_blocked_on_a_lock_is_logged_with_its_stack(start_worker, monkeypatch):
    monkeypatch.setenv("QTASKS_TEST_SETTINGS", json.dumps({"STALL_WARNING": 1}))
    queue = unique("stall")
    worker = start_worker("--queues", queue)
    task = tasks.sync_sleeper.add_task(0.5, queue=queue)
    wait_logged(task, "going to sleep")

    # Another connection holds the row: the worker's write of the result
    # waits on the lock until the warning is out.
    with transaction.atomic():
        Task.objects.select_for_update().get(pk=task.pk)
        worker.wait_for_log("has not returned for", timeout=60)

    worker.wait_for_log("returned after", timeout=60)
    assert wait_status(task, timeout=30).status == TaskStatus.SUCCESS
    warning = worker.log.split("has not returned for", 1)[1].split(" returned after", 1)[0]
    # Where it waits: in the database driver, under the worker's write.
    assert "in execute" in warning, worker.log


def test_an_async_task_that_blocks_the_event_loop_is_named_in_the_log(start_worker, monkeypatch):
    monkeypatch.setenv("QTASKS_TEST_SETTINGS", json.dumps({"STALL_WARNING": 1}))
    queue = unique("blocking")
    worker = start_worker("--queues", queue)
    task = tasks.async_blocks_loop.add_task(4, queue=queue)

    assert wait_status(task, timeout=60).returning == "unblocked"
    worker.wait_for_log("The worker's event loop runs again after", timeout=30)
    warning = worker.log.split("The worker's event loop has run nothing for", 1)[1]
    assert "in async_blocks_loop" in warning, worker.log
    assert "time.sleep(seconds)" in warning, worker.log


@pytest.mark.django_db(transaction=False)
def test_a_worker_never_fails_over_its_own_tasks_whatever_its_heartbeat_says():
    # Its heartbeat an hour old, as when its heartbeat thread was starved or
    # its heartbeat row deleted: the worker reaping is alive, and goes on. The
    # rows are in this test's transaction, which no worker process sees.
    worker = Worker(queues=[unique("self")], worker_id=unique("late"))
    dead_id = unique("dead")
    long_ago = timezone.now() - timedelta(hours=1)
    for worker_id in (worker.worker_id, dead_id):
        write_heartbeat(worker_id, [], queues=worker.queues, concurrency=1)
    WorkerHeartbeat.objects.update(last_heartbeat=long_ago)
    row = {"task_name": "echo", "status": TaskStatus.PROCESS, "started_at": long_ago, "attempts": 1}
    own = Task.objects.create(**row, worker=worker.worker_id)
    orphan = Task.objects.create(**row, worker=dead_id)

    worker.failover.dead_workers()

    own.refresh_from_db()
    assert (own.status, own.worker, own.traceback) == (TaskStatus.PROCESS, worker.worker_id, "")
    assert WorkerHeartbeat.objects.filter(worker_id=worker.worker_id).exists()
    orphan.refresh_from_db()  # control: a dead worker's task is taken over
    assert orphan.status == TaskStatus.ERROR
    assert f"Worker {dead_id} stopped sending heartbeats" in orphan.traceback
    assert not WorkerHeartbeat.objects.filter(worker_id=dead_id).exists()


@pytest.mark.django_db(transaction=False)
@pytest.mark.parametrize(
    ("running", "queues", "status"),
    [
        # Written by another program: what is no uuid is not read as one; the
        # orphan's own uuid, in capitals, still is (it ran: it is taken over).
        (["not-a-uuid", 5, None, {"a": 1}, "ORPHAN"], ["q"], TaskStatus.ERROR),
        (5, ["q"], TaskStatus.NEW),  # lists nothing: the orphan was only prefetched
        ("text", ["q"], TaskStatus.NEW),
        ([], 5, TaskStatus.NEW),
        ([], [{"a": 1}, None, ["q"]], TaskStatus.NEW),
    ],
)
def test_a_dead_worker_whose_heartbeat_holds_odd_values_is_failed_over(running, queues, status):
    # The rows are in this test's transaction, which no worker process sees.
    worker = Worker(queues=[unique("self")], worker_id=unique("reaper"))
    dead_id = unique("odd")
    long_ago = timezone.now() - timedelta(hours=1)
    orphan = Task.objects.create(
        task_name="echo",
        status=TaskStatus.PROCESS,
        started_at=long_ago - timedelta(minutes=1),
        attempts=1,
        worker=dead_id,
    )
    if isinstance(running, list):
        running = [str(orphan.pk).upper() if item == "ORPHAN" else item for item in running]
    WorkerHeartbeat.objects.create(
        worker_id=dead_id, hostname="h", pid=1, queues=queues, concurrency=1, running=running
    )
    WorkerHeartbeat.objects.filter(worker_id=dead_id).update(last_heartbeat=long_ago)

    worker.failover.dead_workers()

    orphan.refresh_from_db()
    assert orphan.status == status
    assert not WorkerHeartbeat.objects.filter(worker_id=dead_id).exists()


def test_a_run_whose_row_was_taken_from_its_worker_stops_and_writes_nothing(worker):
    task = tasks.sync_sleeper.add_task(30)
    wait_logged(task, "going to sleep")
    worker_id = Task.objects.get(pk=task.pk).worker
    # What a fail-over by another worker does to the row.
    Task.objects.filter(pk=task.pk).update(
        status=TaskStatus.ERROR, traceback="Taken over.", finished_at=timezone.now()
    )

    worker.wait_for_log(f"Task {task.uuid} was taken from worker {worker_id} while it ran")
    worker.wait_for_log(f"Task {task.uuid} ({task.task_name}) was stopped")
    task.refresh_from_db()
    assert (task.status, task.traceback, task.returning) == (
        TaskStatus.ERROR,
        "Taken over.",
        None,
    )
    assert f"Task {task.uuid} ({task.task_name}) ended" not in worker.log
    # The worker goes on: its slot is free again.
    assert wait_status(tasks.echo.add_task("after")).status == TaskStatus.SUCCESS
