"""The REST API's task endpoints, as a client sees them: list, read, enqueue, cancel, retry."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from django_qtasks import app
from django_qtasks.models import Task, TaskStatus
from tests.api_helpers import TASKS, cancel_url, client_for, detail, make, retry_url, snapshot
from tests.conftest import ROOT, wait_status

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(db: None) -> APIClient:
    """A superuser's client: every permission."""
    return client_for("root", superuser=True)


def names(response: Any) -> list[str]:
    return [row["task_name"] for row in response.json()["results"]]


# List ---------------------------------------------------------------------------------------


def test_list_is_newest_first_and_leaves_out_heavy_fields(api):
    now = timezone.now()
    make(task_name="old", created_at=now - timedelta(hours=1))
    make(TaskStatus.ERROR, task_name="new", created_at=now, traceback="Traceback ...")
    response = api.get(TASKS)
    assert response.status_code == 200
    body = response.json()
    assert names(response) == ["new", "old"]
    assert body["next"] is None
    row = body["results"][0]
    assert row["status"] == "error"
    assert row["duration"] == 1.5
    # Heavy fields are left out of the list: the detail has them.
    assert not {"returning", "traceback", "logs", "attempt_log"} & set(row)
    assert {"uuid", "args", "kwargs", "run_after", "retry_of"} <= set(row)


def test_a_big_result_does_not_weigh_on_the_list(api):
    task = make(TaskStatus.SUCCESS, returning="x" * 1_000_000)
    listed = api.get(TASKS)
    assert listed.status_code == 200
    assert len(listed.content) < 10_000
    assert "returning" not in listed.json()["results"][0]
    assert api.get(detail(task)).json()["returning"] == "x" * 1_000_000


def test_list_pages_with_a_cursor_that_survives_new_tasks(api):
    now = timezone.now()
    for number in range(5):
        # Two tasks share each timestamp: the cursor must not skip or repeat one.
        make(task_name=f"t{number}", created_at=now - timedelta(seconds=number // 2))
    everything = names(api.get(TASKS))
    assert sorted(everything[:2]) == ["t0", "t1"]
    assert sorted(everything[2:4]) == ["t2", "t3"]
    first = api.get(TASKS, {"page_size": 2}).json()
    make(task_name="newest")  # arrives between two page loads
    seen = [row["task_name"] for row in first["results"]]
    page = first
    while page["next"]:
        assert len(page["results"]) == 2
        page = api.get(page["next"]).json()
        seen += [row["task_name"] for row in page["results"]]
    assert seen == everything
    back = api.get(page["previous"]).json()
    assert [row["task_name"] for row in back["results"]] == everything[2:4]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status": "new"}, ["a"]),
        ({"status": "success,error"}, ["c", "b"]),
        ({"status": ["success", "error"]}, ["c", "b"]),
        ({"task_name": "a"}, ["a"]),
        ({"queue": "other"}, ["c"]),
        ({"tag": "blue"}, ["c", "a"]),
        ({"tag": "blu"}, []),
        ({"worker": "host:2"}, ["c"]),
        ({"search": "B"}, ["c", "b"]),  # task name b, and "bad deploy": any case
        ({"search": "oth"}, ["c"]),
        ({"search": "deploy"}, ["c"]),
        ({"created_after": "2024-01-02T00:00:00Z"}, ["c", "b"]),
        ({"created_before": "2024-01-02T00:00:00Z"}, ["a"]),
        ({"created_after": "2024-01-02T00:00:00Z", "created_before": "2024-01-03"}, ["b"]),
        ({"status": "success", "queue": "default"}, ["b"]),
    ],
)
def test_list_filters(api, query, expected):
    day = datetime(2024, 1, 1, 12, tzinfo=dt_timezone.utc)
    make(task_name="a", tags=["blue", "x"], created_at=day)
    make(TaskStatus.SUCCESS, task_name="b", tags=["green"], created_at=day + timedelta(days=1))
    make(
        TaskStatus.ERROR,
        task_name="c",
        queue="other",
        tags=["blue"],
        worker="host:2",
        cancel_reason="bad deploy",
        created_at=day + timedelta(days=2),
    )
    response = api.get(TASKS, query)
    assert response.status_code == 200, response.json()
    assert names(response) == expected


def test_search_by_whole_uuid(api):
    wanted, _other = make(), make()
    assert [
        row["uuid"] for row in api.get(TASKS, {"search": str(wanted.uuid)}).json()["results"]
    ] == [str(wanted.uuid)]


# Retrieve -----------------------------------------------------------------------------------


def test_retrieve_has_every_field(api):
    task = make(
        TaskStatus.ERROR,
        args=[1],
        kwargs={"b": 2},
        traceback="Traceback: boom",
        logs=[{"level": "INFO", "message": "hi"}],
    )
    response = api.get(detail(task))
    assert response.status_code == 200
    body = response.json()
    assert body["uuid"] == str(task.uuid)
    assert (body["args"], body["kwargs"], body["traceback"]) == ([1], {"b": 2}, "Traceback: boom")
    assert body["logs"] == [{"level": "INFO", "message": "hi"}]
    assert body["duration"] == 1.5
    assert set(body) >= {
        "priority", "queue", "extra", "tags", "returning", "cancel_reason", "canceled_by",
        "attempts", "max_attempts", "attempt_log", "worker", "retry_of", "created_at",
        "updated_at", "run_after", "started_at", "finished_at", "schedule", "chain_previous",
        "chain_steps",
    }  # fmt: skip


@pytest.mark.parametrize("uuid", ["00000000-0000-0000-0000-000000000000", "not-a-uuid"])
def test_retrieve_of_an_unknown_uuid_is_404_naming_it(api, uuid):
    response = api.get(detail(uuid))
    assert response.status_code == 404
    assert response.json() == {"detail": f"No task with uuid {uuid!r}."}


# Create -------------------------------------------------------------------------------------


def test_create_enqueues_with_the_tasks_own_options(api):
    response = api.post(TASKS, {"task_name": "options_report"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert response["Location"].endswith(detail(body["uuid"]))
    task = Task.objects.get(pk=body["uuid"])
    assert (task.status, task.priority, task.queue) == ("new", 3, "default")
    assert (task.args, task.kwargs, task.tags, task.extra) == (
        [],
        {},
        ["a", "b"],
        {"color": "blue"},
    )
    assert task.run_after is None
    assert body["tags"] == ["a", "b"]


def test_create_with_every_parameter(api):
    before = timezone.now()
    payload = {
        "task_name": "echo",
        "args": [{"nested": [1, 2.5, None, True, "x"]}],
        "kwargs": {},
        "priority": -5,
        "queue": "other",
        "delay": 30,
    }
    response = api.post(TASKS, payload, format="json")
    assert response.status_code == 201, response.json()
    task = Task.objects.get(pk=response.json()["uuid"])
    assert task.args == [{"nested": [1, 2.5, None, True, "x"]}]
    assert (task.priority, task.queue) == (-5, "other")
    assert (
        before + timedelta(seconds=30) <= task.run_after <= timezone.now() + timedelta(seconds=30)
    )
    # The database broker leaves it alone until then.
    assert not Task.objects.due(["other"]).filter(pk=task.pk).exists()
    assert Task.objects.due(["other"], now=task.run_after).filter(pk=task.pk).exists()


def test_create_with_an_eta_sets_run_after_to_it(api):
    # Two days ahead, at 10:30 in UTC+01:00, sent with its offset.
    day = (timezone.now() + timedelta(days=2)).date()
    eta = f"{day.isoformat()}T10:30:00+01:00"
    response = api.post(
        TASKS, {"task_name": "echo", "args": [1], "queue": "other", "eta": eta}, format="json"
    )
    assert response.status_code == 201, response.json()
    task = Task.objects.get(pk=response.json()["uuid"])
    expected = datetime(day.year, day.month, day.day, 9, 30, tzinfo=dt_timezone.utc)
    assert task.run_after == expected
    assert response.json()["run_after"] == expected.isoformat().replace("+00:00", "Z")
    assert not Task.objects.due(["other"]).filter(pk=task.pk).exists()


def test_an_eta_in_the_past_is_due_at_once(api):
    response = api.post(
        TASKS, {"task_name": "echo", "args": [1], "eta": "2020-01-01T00:00:00Z"}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert Task.objects.due(["default"]).filter(pk=response.json()["uuid"]).exists()


def test_enqueue_refuses_a_bad_delay():
    with pytest.raises(TypeError, match="delay must be finite and >= 0, not -1"):
        app.enqueue(app.get_task("echo"), [1], {}, delay=-1)
    with pytest.raises(TypeError, match="delay must be a number of seconds, not True"):
        app.enqueue(app.get_task("echo"), [1], {}, delay=True)
    assert not Task.objects.exists()


# Cancel -------------------------------------------------------------------------------------


def test_cancel_of_a_waiting_task_ends_it_and_records_who_and_why(api):
    task = make()
    response = api.post(cancel_url(task), {"reason": "not needed"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "cancel"
    task.refresh_from_db()
    assert (task.status, task.cancel_reason, task.canceled_by) == ("cancel", "not needed", "root")


def test_cancel_of_a_running_task_asks_its_worker_to_stop(api):
    task = make(TaskStatus.PROCESS)
    response = api.post(cancel_url(task), {"reason": "stop"}, format="json")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "process"
    assert body["cancel_requested_at"] is not None
    assert body["canceled_by"] == "root"


@pytest.mark.parametrize("status", [TaskStatus.SUCCESS, TaskStatus.ERROR, TaskStatus.CANCEL])
def test_cancel_of_an_ended_task_is_a_conflict_and_changes_nothing(api, status):
    task = make(status)
    before = snapshot()
    response = api.post(cancel_url(task), {"reason": "too late"}, format="json")
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"Task {task.uuid} has already ended (status {status.value!r}): there is "
        "nothing to cancel."
    }
    assert snapshot() == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "This field is required."),
        ({"reason": ""}, "This field may not be blank."),
        ({"reason": 5}, "Not a valid string."),
        ({"reason": "x" * 1001}, "Ensure this field has no more than 1000 characters."),
    ],
)
def test_cancel_needs_a_reason(api, body, message):
    task = make()
    before = snapshot()
    response = api.post(cancel_url(task), body, format="json")
    assert response.status_code == 400
    assert response.json() == {"reason": [message]}
    assert snapshot() == before


# Retry --------------------------------------------------------------------------------------


def test_retry_of_an_ended_task_creates_a_linked_copy(api):
    task = make(TaskStatus.ERROR, args=[7], kwargs={"k": 1}, priority=2, queue="other")
    response = api.post(retry_url(task))
    assert response.status_code == 201
    body = response.json()
    assert response["Location"].endswith(detail(body["uuid"]))
    assert (body["retry_of"], body["status"], body["args"]) == (str(task.uuid), "new", [7])
    copy = Task.objects.get(pk=body["uuid"])
    assert (copy.kwargs, copy.priority, copy.queue) == ({"k": 1}, 2, "other")
    task.refresh_from_db()
    assert task.status == "error"  # the original keeps its history


@pytest.mark.parametrize("status", [TaskStatus.NEW, TaskStatus.PROCESS, TaskStatus.RETRY])
def test_retry_of_a_task_that_has_not_ended_is_a_conflict(api, status):
    task = make(status)
    before = snapshot()
    response = api.post(retry_url(task))
    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"Task {task.uuid} has not ended (status {status.value!r}): only a task in success, "
        "error or cancel can be retried."
    )
    assert snapshot() == before


@pytest.mark.parametrize("url", [cancel_url, retry_url])
def test_cancel_and_retry_of_an_unknown_uuid_are_404(api, url):
    uuid = "6f1c5c1e-0000-4000-8000-000000000000"
    response = api.post(url(uuid), {"reason": "x"}, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": f"No task with uuid {uuid!r}."}


# With a real worker -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_task_created_through_the_api_runs_and_is_read_back(worker):
    api = client_for("root", superuser=True)
    response = api.post(TASKS, {"task_name": "echo", "args": ["from the api"]}, format="json")
    assert response.status_code == 201
    wait_status(Task.objects.get(pk=response.json()["uuid"]))
    body = api.get(detail(response.json()["uuid"])).json()
    assert (body["status"], body["returning"], body["attempts"]) == ("success", "from the api", 1)
    assert body["worker"]
    assert body["finished_at"]
    assert body["duration"] is not None


@pytest.mark.django_db(transaction=True)
def test_a_delayed_task_waits_for_its_delay(worker):
    api = client_for("root", superuser=True)
    response = api.post(TASKS, {"task_name": "echo", "args": [1], "delay": 1.5}, format="json")
    task = Task.objects.get(pk=response.json()["uuid"])
    assert task.run_after is not None
    wait_status(task)
    assert task.status == "success"
    assert task.started_at >= task.run_after


# Packaging ----------------------------------------------------------------------------------

WITHOUT_DRF = """
import sys

class NoDRF:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("rest_framework", "drf_spectacular"):
            raise ImportError(f"No module named {name!r} (hidden by the test)")

sys.meta_path.insert(0, NoDRF())
import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_qtasks"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
)
django.setup()
import django_qtasks.models, django_qtasks.worker.worker  # noqa
from django_qtasks import app
print("ok", len(app.tasks) >= 0)
try:
    import django_qtasks.api
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_django_qtasks_works_without_drf_and_its_api_says_what_is_missing():
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_DRF], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines() == [
        "ok True",
        "ImproperlyConfigured django_qtasks.api needs djangorestframework and drf-spectacular "
        "(No module named 'drf_spectacular' (hidden by the test)). Install them with: "
        "pip install 'django-qtasks[api]'.",
    ]
