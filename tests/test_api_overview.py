"""The REST API's read-only views: the registry, live workers, counts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from django_qtasks import app
from django_qtasks.models import Task, TaskStatus, WorkerHeartbeat
from tests.api_helpers import REGISTRY, STATS, TASKS, WORKERS, client_for, make

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(db: None) -> APIClient:
    return client_for("root", superuser=True)  # no permission queries in the counts


def test_registry_lists_every_task_with_its_options(api):
    response = api.get(REGISTRY)
    assert response.status_code == 200
    by_name = {entry["name"]: entry for entry in response.json()}
    assert list(by_name) == sorted(app.tasks)
    assert by_name["options_report"] == {
        "name": "options_report",
        "description": "Shows its options",
        "priority": 3,
        "queue": "default",
        "tags": ["a", "b"],
        "retry": 0,
        "retry_on_exc": [],
        "max_time": None,
        "echo": True,
        "is_async": False,
        "is_generator": False,
        "extra": {"color": "blue"},
    }
    assert by_name["retry_keyerror"]["retry"] == 3
    assert by_name["retry_keyerror"]["retry_on_exc"] == ["KeyError"]
    assert by_name["on_other_queue"]["queue"] == "other"
    assert by_name["async_too_slow"]["max_time"] == 0.5
    assert by_name["async_gen"]["is_async"]
    assert by_name["async_gen"]["is_generator"]
    assert by_name["sync_busy"]["description"] == (
        "Ignores cancel requests: never calls ctx.sleep (pure Python loop)."
    )
    assert by_name["renamed.shared"]["description"] is None


def test_registry_shows_the_effective_default_queue(api):
    with override_settings(QTASKS={"DEFAULT_QUEUE": "main"}):
        by_name = {entry["name"]: entry for entry in api.get(REGISTRY).json()}
    assert by_name["echo"]["queue"] == "main"
    assert by_name["on_other_queue"]["queue"] == "other"


def heartbeat(worker_id: str, age: float, running: list[str]) -> WorkerHeartbeat:
    return WorkerHeartbeat.objects.create(
        worker_id=worker_id,
        hostname="host",
        pid=1,
        queues=["default"],
        concurrency=4,
        running=running,
        last_heartbeat=timezone.now() - timedelta(seconds=age),
    )


def test_workers_are_the_live_ones_with_their_running_tasks(api):
    task = make(TaskStatus.PROCESS, task_name="sync_sleeper", worker="host:1:live")
    heartbeat("host:1:live", 1, [str(task.uuid), "00000000-0000-0000-0000-000000000000"])
    heartbeat("host:2:dead", 60, [])  # tests.settings: HEARTBEAT_TIMEOUT = 5
    response = api.get(WORKERS)
    assert response.status_code == 200
    [worker] = response.json()
    assert (worker["worker_id"], worker["hostname"], worker["pid"]) == ("host:1:live", "host", 1)
    assert (worker["queues"], worker["concurrency"]) == (["default"], 4)
    assert worker["last_heartbeat"]
    assert worker["started_at"]
    # A uuid whose row has gone is left out.
    assert worker["running"] == [
        {
            "uuid": str(task.uuid),
            "task_name": "sync_sleeper",
            "started_at": task.started_at.isoformat().replace("+00:00", "Z"),
        }
    ]


@pytest.mark.parametrize(
    "running", [["not-a-uuid", 5, None, {"a": 1}, "1" * 5000], {"a": 1}, "text"]
)
def test_a_running_list_that_holds_no_uuid_is_read_as_such(api, running):
    task = make(TaskStatus.PROCESS, task_name="sync_sleeper", worker="host:1:live")
    heartbeat("host:1:live", 1, [str(task.uuid).upper()])
    heartbeat("host:2:odd", 1, running)
    response = api.get(WORKERS)
    assert response.status_code == 200
    by_id = {worker["worker_id"]: worker["running"] for worker in response.json()}
    assert [entry["uuid"] for entry in by_id["host:1:live"]] == [str(task.uuid)]
    assert by_id["host:2:odd"] == []


def test_stats_count_every_status_and_the_depth_of_each_queue(api, django_assert_num_queries):
    make(), make(), make(TaskStatus.RETRY, queue="other"), make(queue="other")
    make(TaskStatus.PROCESS), make(TaskStatus.SUCCESS, queue="other")
    heartbeat("host:1:live", 0, [])
    with django_assert_num_queries(3):  # two GROUP BYs and the live workers
        response = api.get(STATS)
    assert response.status_code == 200
    assert response.json() == {
        "by_status": {"new": 3, "process": 1, "success": 1, "error": 0, "cancel": 0, "retry": 1},
        "total": 6,
        "queue_depth": {"default": 2, "other": 2},
        "workers": 1,
    }


def test_stats_of_an_empty_system(api):
    assert api.get(STATS).json() == {
        "by_status": {status.value: 0 for status in TaskStatus},
        "total": 0,
        "queue_depth": {},
        "workers": 0,
    }


def test_reads_change_nothing(api):
    make()
    rows = list(Task.objects.values_list())
    for url in (TASKS, REGISTRY, WORKERS, STATS):
        api.get(url)
    assert list(Task.objects.values_list()) == rows


@pytest.mark.parametrize("url", [REGISTRY, WORKERS, STATS])
def test_read_only_endpoints_refuse_writes(api, url):
    response = api.post(url, {}, format="json")
    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "POST" not allowed.'}
