"""The Prometheus exporter (``django_qtasks.metrics``): real worker processes scraped over
HTTP, one and several processes; the Django view on the real database; the dashboard."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import socket
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from django_qtasks.models import Task, TaskStatus, WorkerHeartbeat
from tests.conftest import ROOT, WorkerProcess, run_worker, wait_all_final, wait_status, wait_until
from tests.testapp.tasks import (
    echo,
    fails_with,
    module_loaded,
    process_id,
    retry_keyerror,
    sync_sleeper,
)

#: A queue of their own: no other worker of the test session takes these tasks.
QUEUE = "metrics"

StartWorker = Callable[..., WorkerProcess]
#: (metric sample name, its labels) -> value
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def parse(text: str) -> Samples:
    """Prometheus' text format, read by prometheus_client's own parser."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        return parse(answer.read().decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; 0 when there is none (a counter not incremented yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_for_counts(
    port: int, expected: dict[tuple[str, tuple[tuple[str, str], ...]], float]
) -> Samples:
    """Scrape until every expected sample has its value (the scrape can come before a write)."""
    seen: Samples = {}

    def reached() -> bool:
        nonlocal seen
        seen = scrape(port)
        return all(
            value(seen, name, **dict(labels)) == count for (name, labels), count in expected.items()
        )

    def differences() -> str:
        return ", ".join(
            f"{name}{dict(labels)} = {value(seen, name, **dict(labels))} (expected {count})"
            for (name, labels), count in expected.items()
            if value(seen, name, **dict(labels)) != count
        )

    wait_until(reached, timeout=30, message=differences)
    return seen


def finished(task_name: str, status: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return "qtasks_tasks_finished_total", (("task_name", task_name), ("status", status))


def with_name(metric: str, task_name: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return metric, (("task_name", task_name),)


# A worker process, scraped -------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_worker_counts_endings_retries_and_durations(start_worker: StartWorker) -> None:
    port = free_port()
    worker = start_worker("--queues", QUEUE, "--concurrency", "2", "--metrics-port", str(port))
    assert f"Metrics served at http://127.0.0.1:{port}/metrics" in worker.log
    tasks = [echo.add_task(number, queue=QUEUE) for number in range(3)]
    tasks.append(fails_with.add_task("boom", queue=QUEUE))
    tasks.append(retry_keyerror.add_task(1, queue=QUEUE))  # fails once, then succeeds
    assert wait_all_final([task.pk for task in tasks], stalled_for=60) == {
        "success": 4,
        "error": 1,
    }
    samples = wait_for_counts(
        port,
        {
            finished("echo", "success"): 3,
            finished("fails_with", "error"): 1,
            finished("retry_keyerror", "success"): 1,
            finished("retry_keyerror", "error"): 0,
            with_name("qtasks_tasks_retried_total", "retry_keyerror"): 1,
            # Every attempt is timed: the retried task's two included.
            with_name("qtasks_task_duration_seconds_count", "echo"): 3,
            with_name("qtasks_task_duration_seconds_count", "retry_keyerror"): 2,
            with_name("qtasks_task_duration_seconds_count", "fails_with"): 1,
        },
    )
    # Buckets are cumulative, up to +Inf, which holds every attempt.
    buckets = sorted(
        (float(dict(labels)["le"]), count)
        for (name, labels), count in samples.items()
        if name == "qtasks_task_duration_seconds_bucket" and ("task_name", "echo") in labels
    )
    assert buckets[0][0] == 0.005
    assert buckets[-2][0] == 3600.0
    assert [count for _, count in buckets] == sorted(count for _, count in buckets)
    assert buckets[-1] == (float("inf"), 3)
    assert value(samples, "qtasks_task_duration_seconds_sum", task_name="echo") > 0
    # The database's figures: this worker serves the queue.
    assert value(samples, "qtasks_queue_workers", queue=QUEUE) == 1
    assert value(samples, "qtasks_queue_depth", queue=QUEUE) == 0
    assert value(samples, "qtasks_workers_alive") >= 1
    # The worker runs with prometheus_client loaded; see the next test for one without.
    assert wait_status(module_loaded.add_task("prometheus_client", queue=QUEUE)).returning is True


@pytest.mark.django_db(transaction=True)
def test_without_metrics_a_worker_does_not_load_prometheus_client(worker: WorkerProcess) -> None:
    # The shared worker runs without --metrics-port and METRICS_DIR: nothing of
    # the exporter is loaded, so nothing of it runs per task.
    assert wait_status(module_loaded.add_task("prometheus_client")).returning is False


@pytest.mark.django_db(transaction=True)
def test_a_pool_adds_up_its_children_the_dead_included(start_worker: StartWorker) -> None:
    port = free_port()
    pool = start_worker(
        "--queues", QUEUE, "--processes", "2", "--concurrency", "1", "--prefetch", "0",
        "--metrics-port", str(port),
    )  # fmt: skip
    wait_until(lambda: pool.log.count(" started: pid ") == 2, message=lambda: pool.log)
    wait_until(lambda: WorkerHeartbeat.objects.filter(queues=[QUEUE]).count() == 2)
    tasks = [process_id.add_task(0.2, queue=QUEUE) for _ in range(12)]
    assert wait_all_final([task.pk for task in tasks], stalled_for=60) == {"success": 12}
    pids = set(
        Task.objects.filter(pk__in=[t.pk for t in tasks]).values_list("returning", flat=True)
    )
    assert len(pids) == 2, "both children ran tasks"
    samples = wait_for_counts(
        port,
        {
            finished("process_id", "success"): 12,
            with_name("qtasks_task_duration_seconds_count", "process_id"): 12,
        },
    )
    assert value(samples, "qtasks_queue_workers", queue=QUEUE) == 2
    assert value(samples, "qtasks_queue_depth", queue=QUEUE) == 0

    # A child killed while it runs a task: its supervisor fails that task
    # over (counted there), and what the dead child counted still counts.
    doomed = sync_sleeper.add_task(120, queue=QUEUE)
    pool.wait_for_log(f"Task {doomed.uuid} (sync_sleeper) started")
    doomed.refresh_from_db()
    victim = WorkerHeartbeat.objects.get(worker_id=doomed.worker).pid
    wait_for_counts(port, {("qtasks_queue_running", (("queue", QUEUE),)): 1})
    os.kill(victim, signal.SIGKILL)
    assert wait_status(doomed, timeout=60).status == TaskStatus.ERROR
    wait_for_counts(
        port,
        {
            (
                "qtasks_tasks_failed_over_total",
                (("task_name", "sync_sleeper"), ("outcome", "error")),
            ): 1,
            finished("sync_sleeper", "error"): 1,
            finished("process_id", "success"): 12,
            with_name("qtasks_task_duration_seconds_count", "process_id"): 12,
        },
    )
    directory = re.findall(r"Metrics of this worker's processes kept in (\S+)", pool.log)[0]
    assert Path(directory).is_dir()
    pool.signal(signal.SIGTERM)
    assert pool.wait() == 0
    assert not Path(directory).exists(), "a pool removes its files when it stops"


@pytest.mark.django_db(transaction=True)
def test_a_pool_restarted_on_new_code_keeps_its_counts_and_its_directory(
    start_worker: StartWorker, tmp_path: Path
) -> None:
    port = free_port()
    config = {"METRICS_DIR": str(tmp_path)}
    pool = start_worker(
        "--queues", QUEUE, "--processes", "2", "--concurrency", "1", "--metrics-port", str(port),
        env={"QTASKS_TEST_SETTINGS": json.dumps(config)},
    )  # fmt: skip
    directory = Path(re.findall(r"Metrics of this worker's processes kept in (\S+)", pool.log)[0])
    assert directory.parent == tmp_path
    first = [process_id.add_task(queue=QUEUE) for _ in range(4)]
    assert wait_all_final([task.pk for task in first], stalled_for=60) == {"success": 4}
    wait_for_counts(port, {finished("process_id", "success"): 4})

    # The supervisor replaces itself (exec): the same directory, still locked,
    # the same port, and the counts of its first children go on counting.
    pool.signal(signal.SIGHUP)
    pool.wait_for_log("restarted on the new code", timeout=120)
    wait_until(
        lambda: pool.log.count("retires: replaced by a child on the new code") == 2,
        timeout=120,
        message=lambda: pool.log,
    )
    assert (
        re.findall(r"Metrics of this worker's processes kept in (\S+)", pool.log)
        == [str(directory)] * 2
    )
    with open(directory / "lock") as lock, pytest.raises(BlockingIOError):
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    then = [process_id.add_task(queue=QUEUE) for _ in range(4)]
    assert wait_all_final([task.pk for task in then], stalled_for=60) == {"success": 4}
    wait_for_counts(port, {finished("process_id", "success"): 8})
    pool.signal(signal.SIGTERM)
    assert pool.wait() == 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.django_db(transaction=True)
def test_the_view_serves_the_counters_of_the_workers_of_this_host(
    start_worker: StartWorker, admin_client: Client, tmp_path: Path
) -> None:
    # Left by a worker that was killed: no process holds its lock any more.
    stale = tmp_path / quote("gone:1:abcdef", safe="")
    stale.mkdir()
    (stale / "lock").touch()
    config = {"METRICS_DIR": str(tmp_path)}
    worker = start_worker("--queues", QUEUE, env={"QTASKS_TEST_SETTINGS": json.dumps(config)})
    assert not stale.exists()
    worker_id = re.findall(r"Worker (\S+) started", worker.log)[0]
    tasks = [echo.add_task(number, queue=QUEUE) for number in range(2)]
    tasks.append(fails_with.add_task("boom", queue=QUEUE))
    assert wait_all_final([task.pk for task in tasks], stalled_for=60) == {"success": 2, "error": 1}

    with override_settings(QTASKS={**settings.QTASKS, **config}):

        def view() -> Samples:
            answer = admin_client.get(reverse("qtasks-metrics"))
            assert answer.status_code == 200
            return parse(answer.content.decode())

        expected = {
            ("echo", "success"): 2,
            ("fails_with", "error"): 1,
        }
        wait_until(
            lambda: all(
                value(
                    view(),
                    "qtasks_tasks_finished_total",
                    task_name=name,
                    status=status,
                    worker=worker_id,
                )
                == count
                for (name, status), count in expected.items()
            ),
            message=lambda: str(view()),
        )
        assert value(view(), "qtasks_queue_workers", queue=QUEUE) == 1
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
        # Its series end with it: they are not summed with those of other workers.
        assert not any(("worker", worker_id) in labels for _, labels in view())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.e2e  # worker processes, which stop at once
def test_metrics_options_refuse_what_cannot_work(django_db_setup: None) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_worker("--queues", QUEUE, "--metrics-port", str(port))
    assert result.returncode != 0
    assert f"--metrics-port: cannot listen on 127.0.0.1 port {port}" in result.stderr
    result = run_worker("--queues", QUEUE, "--metrics-addr", "0.0.0.0")
    assert result.returncode != 0
    assert "--metrics-addr goes with --metrics-port" in result.stderr


@pytest.mark.db_independent
def test_a_metrics_directory_is_held_while_its_worker_lives(tmp_path: Path) -> None:
    from django_qtasks.metrics.files import RunDirectory

    tmp_path.chmod(0o750)
    first = RunDirectory.create("host:1:abc", str(tmp_path))
    assert Path(first.path) == tmp_path / "host%3A1%3Aabc"
    assert Path(first.path).stat().st_mode & 0o777 == 0o750
    with pytest.raises(FileExistsError, match="must not share a --worker-id"):
        RunDirectory.create("host:1:abc", str(tmp_path))
    # Another worker's start leaves it alone, while it is held...
    other = RunDirectory.create("host:2:def", str(tmp_path))
    assert Path(first.path).is_dir()
    # ... and removes it once no process holds it (a worker killed with SIGKILL).
    assert first.lock is not None
    os.close(first.lock)
    third = RunDirectory.create("host:3:ghi", str(tmp_path))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["host%3A2%3Adef", "host%3A3%3Aghi"]
    other.remove()
    third.remove()
    assert list(tmp_path.iterdir()) == []


# The Django view: the database's figures, and who may read them ---------------------------


@pytest.mark.django_db
def test_the_view_reads_queues_running_tasks_and_workers_from_the_database(
    admin_client: Client,
) -> None:
    now = timezone.now()

    def row(
        status: str, *, created: float, run_after: float | None = None, queue: str = QUEUE
    ) -> None:
        Task.objects.create(
            task_name="echo",
            queue=queue,
            status=status,
            created_at=now - timedelta(seconds=created),
            run_after=None if run_after is None else now - timedelta(seconds=run_after),
        )

    row(TaskStatus.NEW, created=600)  # due for 10 minutes: the oldest
    row(TaskStatus.NEW, created=30)
    row(TaskStatus.NEW, created=3600, run_after=60)  # due for a minute only (a delay)
    row(TaskStatus.RETRY, created=7200, run_after=-300)  # its backoff ends in 5 minutes
    row(TaskStatus.NEW, created=10, run_after=-60)  # delayed: a minute to go
    row(TaskStatus.PROCESS, created=100)
    row(TaskStatus.PROCESS, created=100)
    row(TaskStatus.SUCCESS, created=9000)  # ended: in no gauge
    row(TaskStatus.NEW, created=5, queue="metrics-other")
    WorkerHeartbeat.objects.create(
        worker_id="metrics-live", hostname="h", pid=1, queues=[QUEUE, "metrics-idle"], concurrency=3
    )
    WorkerHeartbeat.objects.create(
        worker_id="metrics-dead",
        hostname="h",
        pid=2,
        queues=[QUEUE],
        concurrency=5,
        last_heartbeat=now - timedelta(hours=1),
    )

    answer = admin_client.get(reverse("qtasks-metrics"))
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/plain")
    samples = parse(answer.content.decode())
    assert value(samples, "qtasks_queue_depth", queue=QUEUE) == 3
    assert value(samples, "qtasks_queue_scheduled", queue=QUEUE) == 2
    assert value(samples, "qtasks_queue_running", queue=QUEUE) == 2
    assert 600 <= value(samples, "qtasks_queue_oldest_waiting_seconds", queue=QUEUE) < 3600
    assert value(samples, "qtasks_queue_workers", queue=QUEUE) == 1  # the live one only
    assert value(samples, "qtasks_queue_depth", queue="metrics-other") == 1
    assert value(samples, "qtasks_queue_workers", queue="metrics-other") == 0
    assert 5 <= value(samples, "qtasks_queue_oldest_waiting_seconds", queue="metrics-other") < 600
    # A queue that a live worker serves is listed with nothing in it; so is the default one.
    assert ("qtasks_queue_depth", frozenset({("queue", "metrics-idle")})) in samples
    assert (
        "qtasks_queue_depth",
        frozenset({("queue", settings.QTASKS.get("DEFAULT_QUEUE", "default"))}),
    ) in samples
    assert value(samples, "qtasks_queue_oldest_waiting_seconds", queue="metrics-idle") == 0
    assert value(samples, "qtasks_workers_alive") >= 1
    assert value(samples, "qtasks_worker_slots") >= 3
    # No METRICS_DIR: no worker counters here.
    assert not any(name.startswith("qtasks_tasks_") for name, _ in samples)


@pytest.mark.django_db
def test_the_view_answers_staff_and_the_bearer_of_the_token_only(
    client: Client, admin_client: Client
) -> None:
    url = reverse("qtasks-metrics")
    assert client.get(url).status_code == 403
    User.objects.create_user("someone", password="pw")
    client.login(username="someone", password="pw")
    assert client.get(url).status_code == 403  # logged in, not staff
    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url).status_code == 405
    anonymous = Client()
    assert anonymous.get(url, headers={"Authorization": "Bearer s3cret"}).status_code == 403
    with override_settings(QTASKS={**settings.QTASKS, "METRICS_TOKEN": "s3cret"}):
        assert anonymous.get(url).status_code == 403
        assert anonymous.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 403
        answer = anonymous.get(url, headers={"Authorization": "Bearer s3cret"})
        assert answer.status_code == 200
        assert b"qtasks_workers_alive" in answer.content
        # A scraper that asks for OpenMetrics gets it.
        answer = anonymous.get(
            url,
            headers={
                "Authorization": "bearer s3cret",
                "Accept": "application/openmetrics-text; version=1.0.0",
            },
        )
        assert answer["Content-Type"].startswith("application/openmetrics-text")
        assert answer.content.endswith(b"# EOF\n")


# The dashboard ---------------------------------------------------------------------------

DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
EXPORTED = {
    "qtasks_tasks_finished_total",
    "qtasks_tasks_retried_total",
    "qtasks_tasks_failed_over_total",
    "qtasks_task_duration_seconds_bucket",
    "qtasks_task_duration_seconds_count",
    "qtasks_task_duration_seconds_sum",
    "qtasks_queue_depth",
    "qtasks_queue_scheduled",
    "qtasks_queue_oldest_waiting_seconds",
    "qtasks_queue_running",
    "qtasks_queue_workers",
    "qtasks_workers_alive",
    "qtasks_worker_slots",
}


@pytest.mark.db_independent
def test_the_grafana_dashboard_is_json_that_graphs_the_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    used = {name for expr in expressions for name in re.findall(r"\bqtasks_\w+", expr)}
    assert used - EXPORTED == set(), "the dashboard graphs metrics that do not exist"
    unused = {name for name in EXPORTED if not name.endswith(("_count", "_sum"))} - used
    assert unused == set(), "metrics without a panel"
    assert "metrics.md" in (ROOT / "mkdocs.yml").read_text()
    assert "grafana-dashboard.json" in (ROOT / "docs" / "metrics.md").read_text()
