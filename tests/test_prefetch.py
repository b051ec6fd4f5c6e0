"""Prefetch (tasks claimed ahead of a free slot) and the batched writes of results.

Real ``qtasks_worker`` processes on queues of their own, as in test_worker.py.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from django_qtasks import app
from django_qtasks.models import Task, TaskStatus, WorkerHeartbeat
from tests.conftest import WorkerProcess, run_worker, wait_status, wait_until
from tests.testapp import tasks

pytestmark = [pytest.mark.broker, pytest.mark.amqp, pytest.mark.django_db(transaction=True)]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def run_burst(*args: str) -> subprocess.CompletedProcess[str]:
    return run_worker("--burst", *args)


@pytest.mark.e2e
def test_prefetched_tasks_run_in_priority_order_each_with_its_own_start_time():
    queue = unique("prefetch")
    plan = [("p5", 5), ("p1", 1), ("p9", 9), ("p0", 0), ("p2", 2)]
    queued = [tasks.sync_sleeper.add_task(0.2, queue=queue, priority=p) for _, p in plan]

    result = run_burst("--queues", queue, "--concurrency", "1", "--prefetch", "4")
    assert result.returncode == 0, result.stderr

    done = list(Task.objects.filter(queue=queue).order_by("started_at"))
    assert [task.status for task in done] == [TaskStatus.SUCCESS] * len(plan)
    order = sorted(queued, key=lambda task: task.priority)
    assert [task.uuid for task in done] == [task.uuid for task in order]
    # Claimed together, started one after the other: each start is the
    # moment it ran, after the one before it ended, not the claim.
    for before, after in itertools.pairwise(done):
        assert before.finished_at <= after.started_at
        assert (after.finished_at - after.started_at).total_seconds() >= 0.2
    for task in done:
        assert task.attempts == 1
        assert task.attempt_log[0]["started_at"] == task.started_at.isoformat()
    assert "stopped after 5 tasks" in result.stderr


def test_a_stopping_worker_returns_its_prefetched_tasks_unattempted(start_worker):
    queue = unique("prefetch-stop")
    process = start_worker("--queues", queue, "--concurrency", "1", "--prefetch", "2")
    queued = [tasks.sync_sleeper.add_task(3, queue=queue) for _ in range(4)]
    wait_until(
        lambda: Task.objects.filter(queue=queue, status=TaskStatus.PROCESS).count() == 3,
        message="one task running and two prefetched",
    )
    # One of the three has started (a claim's tasks that have not started
    # when the stop comes all go back).
    wait_until(lambda: "started, attempt 1 of" in process.log, message="the first task to start")
    process.signal(signal.SIGTERM)
    assert process.wait(20) == 0

    states = list(Task.objects.filter(queue=queue))
    ran = [task for task in states if task.status == TaskStatus.SUCCESS]
    back = [task for task in states if task.status == TaskStatus.NEW]
    assert len(ran) == 1
    assert len(back) == 3  # two prefetched, one never claimed
    for task in back:
        assert (task.attempts, task.worker, task.started_at) == (0, "", None)
        assert task.attempt_log == []
        assert str(task.uuid) not in process.log

    # A later worker runs them, as first attempts.
    assert run_burst("--queues", queue).returncode == 0
    for task in queued:
        task.refresh_from_db()
        assert (task.status, task.attempts) == (TaskStatus.SUCCESS, 1)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="LOCK TABLE is PostgreSQL's")
def test_tasks_claimed_ahead_start_as_slots_free_up_while_the_next_claim_waits(start_worker):
    # A claim stuck behind a lock (a slow database) does not hold back the
    # tasks already claimed: each starts as soon as the slot before it frees.
    queue = unique("prefetch-slow-claim")
    queued = [tasks.sync_sleeper.add_task(0.3, queue=queue) for _ in range(8)]
    worker = start_worker("--queues", queue, "--concurrency", "1", "--prefetch", "4")
    wait_until(
        lambda: Task.objects.filter(queue=queue).exclude(status=TaskStatus.NEW).count() >= 5,
        message="the first claim: one task to run and four ahead",
    )
    with transaction.atomic(), connection.cursor() as cursor:
        # Claims and result writes wait for it; starting a claimed task does not.
        cursor.execute(f'LOCK TABLE "{Task._meta.db_table}" IN SHARE ROW EXCLUSIVE MODE')
        locked_at = timezone.now()
        # Held until the worker's log shows the four claimed ahead started
        # (however long that takes): the lock is what they must not wait for.
        starts_before = worker.log.count("(sync_sleeper) started")
        wait_until(
            lambda: worker.log.count("(sync_sleeper) started") >= starts_before + 4,
            timeout=60,
            message="four starts while the table is locked",
        )
        released_at = timezone.now()

    wait_until(
        lambda: Task.objects.filter(queue=queue, status=TaskStatus.SUCCESS).count() == 8,
        message="all eight to end",
    )
    starts = [task.started_at for task in Task.objects.filter(pk__in=[t.pk for t in queued])]
    # The four claimed ahead all started while the lock was held (one of them
    # may have started as it was taken; a worker that waited for its claim
    # would have started none).
    assert len([start for start in starts if locked_at < start < released_at]) >= 3


def test_cancel_of_a_prefetched_task_ends_it_without_running_it(start_worker, tmp_path):
    queue = unique("prefetch-cancel")
    start_worker("--queues", queue, "--concurrency", "1", "--prefetch", "2")
    release = tmp_path / "release"
    running = tasks.wait_for_file.add_task(str(release), queue=queue)
    waiting = tasks.sync_sleeper.add_task(3, queue=queue)
    wait_status(running, TaskStatus.PROCESS)
    wait_status(waiting, TaskStatus.PROCESS)  # claimed ahead, not started

    assert waiting.cancel("no longer needed", by="alice") is True
    # The first task runs until the test releases it: the slot is never free.
    ended = wait_status(waiting, timeout=60)
    assert ended.status == TaskStatus.CANCEL
    assert ended.cancel_reason == "no longer needed"
    assert ended.returning is None
    assert not any("going to sleep" in line["message"] for line in ended.logs)
    # The slot was never its own: the first task still runs.
    running.refresh_from_db()
    assert running.status == TaskStatus.PROCESS
    release.touch()
    assert wait_status(running, timeout=60).status == TaskStatus.SUCCESS


def test_a_killed_worker_prefetched_tasks_go_back_unattempted_its_running_one_fails(
    start_worker,
):
    queue, doomed_id, rescuer_id = unique("prefetch-kill"), unique("doomed"), unique("rescuer")
    doomed = start_worker(
        "--queues", queue, "--concurrency", "1", "--prefetch", "2", "--worker-id", doomed_id
    )
    running = tasks.sync_sleeper.add_task(60, queue=queue)  # no retry
    doomed.wait_for_log(f"Task {running.uuid} (sync_sleeper) started", timeout=60)
    prefetched = [tasks.echo.add_task(number, queue=queue) for number in (1, 2)]
    for task in prefetched:
        wait_status(task, TaskStatus.PROCESS)
    # A heartbeat after the claim: it lists the one task running.
    kill_after_a_heartbeat(doomed, doomed_id, max(task.started_at for task in prefetched))

    rescuer = start_worker("--queues", queue, "--worker-id", rescuer_id)
    failed = wait_status(running, timeout=20)
    assert failed.status == TaskStatus.ERROR
    assert f"Worker {doomed_id} stopped sending heartbeats while running" in failed.traceback
    assert failed.attempts == 1
    for number, task in enumerate(prefetched, start=1):
        ran = wait_status(task, timeout=20)
        assert (ran.status, ran.returning, ran.worker) == (TaskStatus.SUCCESS, number, rescuer_id)
        # Its first attempt: the dead worker's claim did not count.
        assert ran.attempts == 1
        assert [entry["worker"] for entry in ran.attempt_log] == [rescuer_id]
        assert f"Task {ran.uuid} (echo) started, attempt 1 of 1" in rescuer.log


@pytest.mark.e2e
@pytest.mark.timeout(660)  # the run's own bound is 600 s
def test_a_busy_worker_with_prefetch_runs_every_task_once():
    queue = unique("prefetch-many")
    queued = [tasks.echo.add_task(number, queue=queue) for number in range(300)]

    # (How fast is benchmarks/' business: the run only has to end.)
    result = run_worker(
        "--burst", "--queues", queue, "--concurrency", "2", "--prefetch", "16", timeout=600
    )
    assert result.returncode == 0, result.stderr

    done = {task.uuid: task for task in Task.objects.filter(queue=queue)}
    assert len(done) == 300
    for task in queued:
        row = done[task.uuid]
        assert (row.status, row.returning, row.attempts) == (TaskStatus.SUCCESS, task.args[0], 1)
        assert row.started_at <= row.finished_at
    assert "stopped after 300 tasks" in result.stderr


# PREFETCH = "auto", the default ----------------------------------------------------


def start_warmed_worker(start_worker, queue: str, worker_id: str) -> None:
    """A worker at concurrency 1 that ran short tasks: "auto" expects milliseconds."""
    start_worker("--queues", queue, "--concurrency", "1", "--worker-id", worker_id)
    for number in range(5):
        assert wait_status(tasks.echo.add_task(number, queue=queue)).status == "success"


def enqueue_behind_a_long_run(queue: str, numbers: range, release: Path) -> tuple[Task, list[Task]]:
    """In one commit, a run that lasts until ``release`` exists, then short ones (echo each)."""
    with transaction.atomic():
        slow = tasks.wait_for_file.add_task(str(release), queue=queue, priority=0)
        quick = [tasks.echo.add_task(number, queue=queue, priority=1) for number in numbers]
    return slow, quick


def test_auto_prefetch_hands_tasks_held_behind_a_long_run_to_an_idle_worker(
    monkeypatch, start_worker, tmp_path
):
    queue, busy_id, idle_id = unique("auto"), unique("busy"), unique("idle")
    # No outbox sweep during the test: held tasks are published again by the
    # hand-back itself, or not at all.
    monkeypatch.setenv(
        "QTASKS_TEST_SETTINGS", json.dumps({"OUTBOX_INTERVAL": 3600, "REDELIVER_AFTER": 7200})
    )
    start_warmed_worker(start_worker, queue, busy_id)

    # Then, in one commit: a long run first, short ones behind it. The worker
    # claims them together, expecting them all to start soon. The long run
    # lasts until the test creates ``release``.
    release = tmp_path / "release"
    slow, quick = enqueue_behind_a_long_run(queue, range(3), release)
    wait_status(slow, TaskStatus.PROCESS)
    # None of them starts within 0.1 s: they go back to the queue, unattempted.
    for task in quick:
        wait_until(
            lambda task=task: Task.objects.get(pk=task.pk).status == TaskStatus.NEW,
            message="a held task back in the queue",
        )
    if settings.QTASKS["BROKER_URL"] != "django://":
        # In the broker again by the hand-back, not by an outbox sweep (none runs).
        unpublished = Task.objects.filter(pk__in=[task.pk for task in quick], published_at=None)
        wait_until(lambda: not unpublished.exists(), message="held tasks published")

    # An idle worker runs them while the long one still runs on the first.
    # On a message broker, the busy worker may receive one of them again (it
    # takes up to --concurrency messages ahead of its claims): that one waits
    # for the long run.
    start_worker("--queues", queue, "--worker-id", idle_id)
    by_idle = Task.objects.filter(
        pk__in=[task.pk for task in quick], status=TaskStatus.SUCCESS, worker=idle_id
    )
    wanted = len(quick) if settings.QTASKS["BROKER_URL"] == "django://" else len(quick) - 1
    wait_until(
        lambda: by_idle.count() >= wanted, timeout=60, message=f"{wanted} run by the idle worker"
    )
    assert Task.objects.get(pk=slow.pk).status == TaskStatus.PROCESS

    release.touch()
    ran = [wait_status(task, timeout=60) for task in quick]
    assert [(task.status, task.returning, task.attempts) for task in ran] == [
        (TaskStatus.SUCCESS, number, 1) for number in range(3)
    ]
    assert sum(task.worker == busy_id for task in ran) <= len(quick) - wanted
    done = wait_status(slow, timeout=60)
    assert (done.status, done.worker, done.returning) == (TaskStatus.SUCCESS, busy_id, "released")


@pytest.mark.skipif(
    settings.QTASKS["BROKER_URL"] == "django://",
    reason="messages received ahead of claims are a message broker's",
)
def test_auto_prefetch_gives_back_messages_held_behind_a_long_run(start_worker, tmp_path):
    queue, busy_id, idle_id = unique("auto-msg"), unique("busy"), unique("idle")
    start_warmed_worker(start_worker, queue, busy_id)

    # The worker claims the first commit's tasks ahead; the second's come in
    # while its reserve is full, and wait among its received messages (on
    # Redis; RabbitMQ sends no more than a message a slot).
    release = tmp_path / "release"
    slow, quick = enqueue_behind_a_long_run(queue, range(10), release)
    with transaction.atomic():
        quick += [tasks.echo.add_task(number, queue=queue, priority=1) for number in range(10, 20)]

    # Both go back once nothing has started for 0.1 s; the busy worker then
    # takes at most one message a slot, and an idle worker runs the rest
    # while the long run lasts.
    wait_status(slow, TaskStatus.PROCESS)
    start_worker("--queues", queue, "--worker-id", idle_id)
    by_idle = Task.objects.filter(
        pk__in=[task.pk for task in quick], status=TaskStatus.SUCCESS, worker=idle_id
    )
    wait_until(lambda: by_idle.count() >= 19, timeout=60, message="19 run by the idle worker")
    assert Task.objects.get(pk=slow.pk).status == TaskStatus.PROCESS

    release.touch()
    ran = [wait_status(task, timeout=60) for task in quick]
    assert [(task.status, task.returning, task.attempts) for task in ran] == [
        (TaskStatus.SUCCESS, number, 1) for number in range(20)
    ]
    assert sum(task.worker == busy_id for task in ran) <= 1, [task.worker for task in ran]
    done = wait_status(slow, timeout=60)
    assert (done.status, done.worker) == (TaskStatus.SUCCESS, busy_id)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_stat_activity is PostgreSQL's")
def test_a_worker_killed_while_reaping_leaves_the_dead_workers_prefetched_tasks_unattempted(
    start_worker,
):
    # Reaping a dead worker takes several statements. A reaper that dies
    # halfway must leave the next one able to tell its tasks apart.
    queue, doomed_id = unique("prefetch-reap"), unique("doomed")
    doomed = start_worker(
        "--queues", queue, "--concurrency", "1", "--prefetch", "20", "--worker-id", doomed_id
    )
    running = tasks.sync_sleeper.add_task(60, queue=queue)  # no retry
    wait_status(running, TaskStatus.PROCESS)
    # At once: one claim takes them all ahead.
    prefetched = app.add_tasks((tasks.echo.s(number) for number in range(20)), queue=queue)
    wait_until(
        lambda: Task.objects.filter(queue=queue, status=TaskStatus.PROCESS).count() == 21,
        message="twenty tasks claimed ahead",
    )
    claimed = Task.objects.filter(queue=queue).latest("started_at").started_at
    kill_after_a_heartbeat(doomed, doomed_id, claimed)

    with transaction.atomic():
        # The reaper's first write to the dead worker's tasks waits for
        # these locks; the reaper is killed there.
        list(Task.objects.select_for_update().filter(queue=queue))
        reaper = start_worker("--queues", queue, "--worker-id", unique("reaper"))
        wait_until(lambda: waiting_for_a_lock() > 0, message="a reaper waiting for the lock")
        reaper.signal(signal.SIGKILL)
        assert reaper.wait(10) == -signal.SIGKILL

    rescuer_id = unique("rescuer")
    start_worker("--queues", queue, "--concurrency", "4", "--worker-id", rescuer_id)
    failed = wait_status(running, timeout=20)
    assert (failed.status, failed.attempts) == (TaskStatus.ERROR, 1)
    for number, task in enumerate(prefetched):
        ran = wait_status(task, timeout=20)
        assert (ran.status, ran.returning, ran.attempts) == (TaskStatus.SUCCESS, number, 1), (
            f"{ran.traceback}\nattempts: {ran.attempt_log}"
        )
        assert [entry["worker"] for entry in ran.attempt_log] == [rescuer_id]


def kill_after_a_heartbeat(worker: WorkerProcess, worker_id: str, after: datetime) -> None:
    """SIGKILL ``worker`` once a heartbeat of its, later than ``after``, is written."""
    later = WorkerHeartbeat.objects.filter(worker_id=worker_id, last_heartbeat__gt=after)
    wait_until(later.exists, message=f"a heartbeat of {worker_id} after {after}")
    worker.signal(signal.SIGKILL)
    assert worker.wait(10) == -signal.SIGKILL


def waiting_for_a_lock() -> int:
    """How many other sessions of this database wait for a lock."""
    with connection.cursor() as cursor:
        # Read afresh: in a transaction, PostgreSQL keeps its first reading.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])
