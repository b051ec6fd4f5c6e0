"""``qtasks_worker --processes``: a supervisor, its child processes, and what it does when
they die, grow, or must be replaced. Real processes, real signals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from django_qtasks import app
from django_qtasks.models import Task, TaskStatus, WorkerHeartbeat
from tests.conftest import (
    ROOT,
    WorkerProcess,
    wait_all_final,
    wait_status,
    wait_until,
    worker_env,
)
from tests.testapp.tasks import leak, process_id, sync_sleeper

pytestmark = [
    pytest.mark.e2e,
    # Processes are the same on every database: once, on PostgreSQL; and
    # again on Redis and RabbitMQ, whose messages must survive a child's death.
    pytest.mark.db_independent,
    pytest.mark.broker,
    pytest.mark.amqp,
    # Forking, signals and exec on the oldest and newest Python too.
    pytest.mark.cells,
    pytest.mark.django_db(transaction=True),
]

#: Pool tests take tasks from a queue of their own: no other worker of the
#: test session (the shared one serves "default") takes them.
QUEUE = "pool"

StartWorker = Callable[..., WorkerProcess]


def children_started(worker: WorkerProcess) -> list[int]:
    """The pids of the children that the supervisor said it started, in order."""
    return [int(pid) for pid in re.findall(r"Child \S+ started: pid (\d+)", worker.log)]


def pool(
    start_worker: StartWorker, *args: str, settings: dict[str, object] | None = None
) -> WorkerProcess:
    env = {"QTASKS_TEST_SETTINGS": json.dumps(settings)} if settings else None
    return start_worker("--queues", QUEUE, *args, env=env)


def test_children_run_tasks_and_stop_with_the_supervisor(
    start_worker: StartWorker, admin_client: Client
) -> None:
    worker = pool(start_worker, "--processes", "2", "--concurrency", "2")
    wait_until(lambda: len(children_started(worker)) == 2, message=lambda: worker.log)
    children = set(children_started(worker))
    wait_until(lambda: WorkerHeartbeat.objects.filter(pid__in=children).count() == 2)
    supervisor = re.findall(r"Supervisor (\S+) started", worker.log)
    # The dashboard and the API show each child with its pid and its supervisor.
    shown = admin_client.get(reverse("admin:django_qtasks_task_dashboard_data")).json()
    assert {(row["pid"], row["supervisor"]) for row in shown["workers"]} >= {
        (pid, supervisor[0]) for pid in children
    }
    listed = admin_client.get("/api/qtasks/workers/").json()
    assert {(row["pid"], row["supervisor"]) for row in listed} >= {
        (pid, supervisor[0]) for pid in children
    }

    tasks = [process_id.add_task(queue=QUEUE) for _ in range(20)]
    assert wait_all_final([task.pk for task in tasks], stalled_for=60) == {"success": 20}
    ran_in = set(
        Task.objects.filter(pk__in=[t.pk for t in tasks]).values_list("returning", flat=True)
    )
    assert ran_in <= children  # never in the supervisor

    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    for pid in children:
        assert f"(pid {pid}) exited" in worker.log
    assert not WorkerHeartbeat.objects.filter(pid__in=children).exists()


def test_a_child_killed_by_signal_9_has_its_tasks_failed_over_at_once(
    start_worker: StartWorker,
) -> None:
    # Heartbeats alone would take a minute: only the supervisor can be this fast.
    worker = pool(
        start_worker, "--processes", "2", "--concurrency", "2", settings={"HEARTBEAT_TIMEOUT": 120}
    )
    wait_until(lambda: len(children_started(worker)) == 2, message=lambda: worker.log)
    doomed = sync_sleeper.add_task(120, queue=QUEUE)
    worker.wait_for_log(f"Task {doomed.uuid} (sync_sleeper) started")
    doomed.refresh_from_db()
    victim = WorkerHeartbeat.objects.get(worker_id=doomed.worker).pid
    os.kill(victim, signal.SIGKILL)

    doomed = wait_status(doomed, TaskStatus.ERROR, timeout=60)
    assert f"Worker process {victim} died: signal 9." in doomed.traceback
    assert f"Child {doomed.worker} (pid {victim}) died: signal 9" in worker.log
    # A new child takes its place, and runs tasks.
    wait_until(lambda: len(children_started(worker)) == 3, message=lambda: worker.log)
    after = process_id.add_task(queue=QUEUE)
    assert wait_status(after, timeout=60).status == TaskStatus.SUCCESS
    assert not WorkerHeartbeat.objects.filter(worker_id=doomed.worker).exists()


def test_a_child_past_its_memory_limit_ends_its_tasks_and_is_replaced(
    start_worker: StartWorker,
) -> None:
    worker = pool(start_worker, "--processes", "1", "--max-memory-per-child", "400M")
    first = children_started(worker)[0]
    leaked = leak.add_task(500, queue=QUEUE)
    assert wait_status(leaked, timeout=60).status == TaskStatus.SUCCESS
    assert leaked.returning == first
    assert leaked.attempts == 1
    worker.wait_for_log("over its limit of 400 MiB", timeout=60)
    wait_until(lambda: len(children_started(worker)) == 2, message=lambda: worker.log)
    wait_until(lambda: f"(pid {first}) exited" in worker.log, message=lambda: worker.log)
    after = process_id.add_task(queue=QUEUE)
    assert wait_status(after, timeout=60).returning == children_started(worker)[1]


def test_max_tasks_per_child_replaces_children_and_runs_every_task_once(
    start_worker: StartWorker,
) -> None:
    worker = pool(start_worker, "--processes", "1", "--max-tasks-per-child", "3")
    tasks = [process_id.add_task(0.05, queue=QUEUE) for _ in range(10)]
    assert wait_all_final([task.pk for task in tasks], stalled_for=60) == {"success": 10}
    rows = Task.objects.filter(pk__in=[task.pk for task in tasks])
    assert {row.attempts for row in rows} == {1}
    per_process = Counter(row.returning for row in rows)
    assert len(per_process) >= 4
    assert max(per_process.values()) <= 3
    assert set(per_process) <= set(children_started(worker))


def test_sighup_replaces_every_child_while_tasks_keep_coming(start_worker: StartWorker) -> None:
    worker = pool(start_worker, "--processes", "2", "--concurrency", "2")
    wait_until(lambda: len(children_started(worker)) == 2, message=lambda: worker.log)
    before = set(children_started(worker))
    sent: list[Task] = []
    done = threading.Event()

    def stream() -> None:
        try:
            while not done.is_set():
                sent.append(process_id.add_task(0.02, queue=QUEUE))
                time.sleep(0.02)
        finally:
            from django.db import connection

            connection.close()

    feeder = threading.Thread(target=stream)
    feeder.start()
    try:
        wait_until(lambda: len(sent) >= 20)
        worker.signal(signal.SIGHUP)
        worker.wait_for_log("restarted on the new code", timeout=120)
        wait_until(
            lambda: worker.log.count("retires: replaced by a child on the new code") == 2,
            timeout=120,
            message=lambda: worker.log,
        )
        mark = len(sent)
        wait_until(lambda: len(sent) >= mark + 20)
    finally:
        done.set()
        feeder.join()
    counts = wait_all_final([task.pk for task in sent], stalled_for=60)
    assert counts == {"success": len(sent)}, worker.log
    rows = Task.objects.filter(pk__in=[task.pk for task in sent])
    assert {row.attempts for row in rows} == {1}  # none ran twice
    after = set(children_started(worker)) - before
    assert len(after) == 2
    assert {row.returning for row in rows} & after
    for pid in before:
        wait_until(lambda pid=pid: f"(pid {pid}) exited" in worker.log, message=lambda: worker.log)


def test_autoscale_follows_the_queue_up_and_down(start_worker: StartWorker) -> None:
    worker = pool(
        start_worker, "--autoscale", "3,1", "--concurrency", "2", settings={"AUTOSCALE_IDLE": 1}
    )
    assert len(children_started(worker)) == 1
    tasks = [sync_sleeper.add_task(1, queue=QUEUE) for _ in range(30)]
    wait_until(lambda: len(children_started(worker)) == 3, timeout=60, message=lambda: worker.log)
    assert wait_all_final([task.pk for task in tasks], stalled_for=60) == {"success": 30}
    wait_until(
        lambda: worker.log.count("retires: the queues need fewer processes") == 2,
        timeout=60,
        message=lambda: worker.log,
    )
    assert len(children_started(worker)) == 3  # down to one, not flapping back up


def test_children_that_die_at_start_up_stop_the_supervisor(tmp_path: Path) -> None:
    # Its children cannot use this database (on SQLite: one with no tables);
    # the supervisor itself queries none to start.
    missing = "qtasks_no_such_database"
    if connection.vendor == "sqlite":
        missing = str(tmp_path / "empty.sqlite3")
        Path(missing).touch()
    worker = WorkerProcess(
        "--queues",
        QUEUE,
        "--processes",
        "2",
        ready="Supervisor",
        env={"QTASKS_DB_NAME": missing},
    )
    try:
        assert worker.wait(timeout=120) == 1
        assert "children in a row failed before taking tasks" in worker.log
    finally:
        worker.stop()


def test_an_import_error_stops_the_pool_before_any_child(tmp_path: Path) -> None:
    (tmp_path / "broken_settings.py").write_text(
        "from tests.settings import *  # noqa\nINSTALLED_APPS = [*INSTALLED_APPS, 'brokenapp']\n"
    )
    (tmp_path / "brokenapp").mkdir()
    (tmp_path / "brokenapp" / "__init__.py").write_text("")
    (tmp_path / "brokenapp" / "tasks.py").write_text("import no_such_module\n")
    env = {
        **worker_env(),
        "DJANGO_SETTINGS_MODULE": "broken_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), worker_env()["PYTHONPATH"]]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "django", "qtasks_worker", "--processes", "2"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "No module named 'no_such_module'" in result.stderr
    assert "Child" not in result.stderr


RELOAD_TASKS = """
    from django_qtasks import task

    @task(name="reload_probe", queue="{queue}")
    def reload_probe():
        return "{version}"
"""


def test_reload_restarts_children_on_new_code_and_keeps_them_on_broken_code(
    start_worker: StartWorker, tmp_path: Path
) -> None:
    app_dir = tmp_path / "reloadapp"
    app_dir.mkdir()
    (app_dir / "__init__.py").write_text("")
    tasks_file = app_dir / "tasks.py"
    tasks_file.write_text(textwrap.dedent(RELOAD_TASKS.format(queue=QUEUE, version="v1")))
    (tmp_path / "reload_settings.py").write_text(
        "from tests.settings import *  # noqa\nINSTALLED_APPS = [*INSTALLED_APPS, 'reloadapp']\n"
    )
    env = {
        "DJANGO_SETTINGS_MODULE": "reload_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), worker_env()["PYTHONPATH"]]),
    }
    worker = start_worker("--queues", QUEUE, "--processes", "1", "--reload", env=env)
    sys.path.insert(0, str(tmp_path))
    try:
        __import__("reloadapp.tasks")  # registers reload_probe here, to enqueue it
        run_reload_probes(worker, tasks_file)
    finally:
        sys.path.remove(str(tmp_path))
        app.unregister("reload_probe")
        for name in ("reloadapp.tasks", "reloadapp"):
            sys.modules.pop(name, None)


def run_reload_probes(worker: WorkerProcess, tasks_file: Path) -> None:
    def probe() -> object:
        return wait_status(app.add_task("reload_probe", queue=QUEUE), timeout=60).returning

    assert probe() == "v1"
    tasks_file.write_text(textwrap.dedent(RELOAD_TASKS.format(queue=QUEUE, version="v2")))
    worker.wait_for_log("restarted on the new code", timeout=120)
    wait_until(lambda: probe() == "v2", timeout=120, message=lambda: worker.log)

    tasks_file.write_text("import no_such_module\n")
    worker.wait_for_log("the new code does not load", timeout=120)
    assert "No module named 'no_such_module'" in worker.log
    assert probe() == "v2"  # the children on the last good code go on
