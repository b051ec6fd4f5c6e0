"""Who may use the REST API: permission classes from QTASKS, model permissions, throttling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from django_qtasks.checks import check_settings
from django_qtasks.models import Task, TaskStatus
from tests.api_helpers import (
    REGISTRY,
    STATS,
    TASKS,
    WORKERS,
    cancel_url,
    client_for,
    detail,
    make,
    retry_url,
    snapshot,
)

pytestmark = pytest.mark.django_db

Call = Callable[[APIClient, Task], Any]

READS: dict[str, Call] = {
    "list": lambda client, task: client.get(TASKS),
    "retrieve": lambda client, task: client.get(detail(task)),
    "registry": lambda client, task: client.get(REGISTRY),
    "workers": lambda client, task: client.get(WORKERS),
    "stats": lambda client, task: client.get(STATS),
}
WRITES: dict[str, Call] = {
    "create": lambda client, task: client.post(
        TASKS, {"task_name": "echo", "args": [1]}, format="json"
    ),
    "cancel": lambda client, task: client.post(cancel_url(task), {"reason": "r"}, format="json"),
    "retry": lambda client, task: client.post(retry_url(task)),
}
EVERY = {**READS, **WRITES}
#: The status a task needs for each write to succeed.
WRITE_STATUS = {"create": TaskStatus.NEW, "cancel": TaskStatus.NEW, "retry": TaskStatus.ERROR}
WRITE_PERMISSION = {"create": "add_task", "cancel": "cancel_task", "retry": "retry_task"}
DOING = {"create": "enqueue tasks", "cancel": "cancel tasks", "retry": "retry tasks"}


@pytest.mark.parametrize("endpoint", EVERY)
def test_anonymous_clients_are_refused_everywhere(endpoint):
    task = make(TaskStatus.ERROR)
    before = snapshot()
    response = EVERY[endpoint](APIClient(), task)
    assert response.status_code in (401, 403)
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert snapshot() == before


@pytest.mark.parametrize("endpoint", EVERY)
def test_users_who_are_not_staff_are_refused_by_default(endpoint):
    task = make(TaskStatus.ERROR)
    client = client_for("user", "add_task", "cancel_task", "retry_task", staff=False)
    before = snapshot()
    response = EVERY[endpoint](client, task)
    assert response.status_code == 403
    assert response.json() == {"detail": "You do not have permission to perform this action."}
    assert snapshot() == before


#: The permission each read needs, as the admin asks it for the same data.
READ_PERMISSION = {
    "list": "view_task",
    "retrieve": "view_task",
    "registry": "view_task",
    "workers": "view_workerheartbeat",
    "stats": "view_task",
}
READ_WHAT = {"view_task": "tasks", "view_workerheartbeat": "workers"}


@pytest.mark.parametrize("endpoint", READS)
def test_staff_users_without_the_view_permission_are_refused(endpoint):
    task = make(TaskStatus.ERROR, args=["secret-arg"], traceback="secret-traceback")
    # Every other permission of the app, writes included: still no read.
    others = [
        "add_task",
        "cancel_task",
        "retry_task",
        "view_schedule",
        "change_schedule",
        *(name for name in READ_PERMISSION.values() if name != READ_PERMISSION[endpoint]),
    ]
    before = snapshot()
    response = READS[endpoint](client_for("staff", *others), task)
    needed = READ_PERMISSION[endpoint]
    assert response.status_code == 403
    assert response.json() == {
        "detail": f"You need the permission django_qtasks.{needed} to read {READ_WHAT[needed]}."
    }
    assert "secret" not in response.content.decode()
    assert snapshot() == before


@pytest.mark.parametrize("endpoint", READS)
@pytest.mark.parametrize("kind", ["view", "change", "superuser"])
def test_staff_users_with_the_view_or_change_permission_can_read(endpoint, kind):
    needed = READ_PERMISSION[endpoint]
    if kind == "superuser":
        client = client_for("root", superuser=True)
    else:
        client = client_for("staff", needed.replace("view_", f"{kind}_"))
    assert READS[endpoint](client, make()).status_code == 200


def test_a_user_who_may_cancel_but_not_view_reads_nothing():
    task = make(TaskStatus.ERROR, kwargs={"token": "secret-kwarg"})
    client = client_for("canceller", "cancel_task", "retry_task", "add_task")
    for response in (client.get(TASKS), client.get(detail(task)), client.get(STATS)):
        assert response.status_code == 403
        assert "secret" not in response.content.decode()


@pytest.mark.parametrize("endpoint", WRITES)
def test_writes_need_the_model_permission_of_the_same_change_in_the_admin(endpoint):
    task = make(WRITE_STATUS[endpoint])
    others = [name for name in WRITE_PERMISSION.values() if name != WRITE_PERMISSION[endpoint]]
    before = snapshot()
    refused = WRITES[endpoint](client_for("without", *others), task)
    assert refused.status_code == 403
    assert refused.json() == {
        "detail": f"You need the permission django_qtasks.{WRITE_PERMISSION[endpoint]} to "
        f"{DOING[endpoint]}."
    }
    assert snapshot() == before
    # Writes need their own permission only, as before.
    allowed = WRITES[endpoint](client_for("with", WRITE_PERMISSION[endpoint]), task)
    assert allowed.status_code in (200, 201)


def test_permission_classes_are_a_setting():
    task = make()
    user = client_for("user", "cancel_task", staff=False)
    anonymous = APIClient()
    classes = ["rest_framework.permissions.IsAuthenticated"]
    with override_settings(QTASKS={"API_PERMISSION_CLASSES": classes}):
        assert user.get(TASKS).status_code == 200
        assert user.post(cancel_url(task), {"reason": "r"}, format="json").status_code == 200
        assert anonymous.get(TASKS).status_code == 403
    with override_settings(
        QTASKS={"API_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"]}
    ):
        assert anonymous.get(STATS).status_code == 200
        # Changes still need the model permission, which nobody anonymous has.
        assert (
            anonymous.post(TASKS, {"task_name": "echo", "args": [1]}, format="json").status_code
            == 403
        )
    assert user.get(TASKS).status_code == 403
    assert Task.objects.count() == 1


def test_a_permission_class_that_cannot_be_imported_is_improperly_configured():
    client = client_for("staff", "view_task", "view_workerheartbeat")
    setting = {"API_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdmin"]}
    with override_settings(QTASKS=setting), pytest.raises(ImproperlyConfigured) as raised:
        client.get(TASKS)
    assert str(raised.value).startswith(
        "QTASKS['API_PERMISSION_CLASSES'] names 'rest_framework.permissions.IsAdmin', "
        'which cannot be imported (Module "rest_framework.permissions" does not define a '
        '"IsAdmin" attribute/class).'
    )


@pytest.mark.parametrize("key", ["API_PERMISSION_CLASSES", "API_THROTTLE_CLASSES"])
@pytest.mark.parametrize("value", [["IsAdminUser"], "rest_framework.permissions.IsAdminUser", [1]])
def test_class_settings_are_checked(key, value):
    with override_settings(QTASKS={key: value}):
        [error] = check_settings()
        with pytest.raises(ImproperlyConfigured, match=r"dotted import strings|must be list"):
            client_for("staff", "view_task", "view_workerheartbeat").get(TASKS)
    assert error.id == "django_qtasks.E001"
    assert error.msg.startswith(f"QTASKS[{key!r}] must be list or tuple")
    assert error.msg.endswith(f"not {type(value).__name__} {value!r}.")


# Throttling ----------------------------------------------------------------------------------


@pytest.fixture
def throttle_rates(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    # DRF copies DEFAULT_THROTTLE_RATES onto the class at import: patch the copy.
    rates = {"qtasks": "2/minute"}
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", rates)
    cache.clear()
    yield rates
    cache.clear()


def test_throttle_classes_are_a_setting(throttle_rates):
    client = client_for("staff", "view_task", "view_workerheartbeat")
    throttles = ["rest_framework.throttling.ScopedRateThrottle"]
    with override_settings(QTASKS={"API_THROTTLE_CLASSES": throttles}):
        assert [client.get(STATS).status_code for _ in range(2)] == [200, 200]
        throttled = client.get(TASKS)
        assert throttled.status_code == 429
        assert throttled.json()["detail"].startswith("Request was throttled.")
        assert "Retry-After" in throttled
    # Unset, the API follows REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] (none here).
    assert client.get(STATS).status_code == 200
    with override_settings(QTASKS={"API_THROTTLE_CLASSES": []}):
        assert client.get(STATS).status_code == 200


def test_without_the_qtasks_rate_the_scoped_throttle_says_so(throttle_rates):
    throttle_rates.clear()
    throttles = ["rest_framework.throttling.ScopedRateThrottle"]
    missing = "No default throttle rate set for 'qtasks'"
    with (
        override_settings(QTASKS={"API_THROTTLE_CLASSES": throttles}),
        pytest.raises(ImproperlyConfigured, match=missing),
    ):
        client_for("staff", "view_task", "view_workerheartbeat").get(STATS)


def test_the_api_cannot_delete_tasks():
    running, ended = make(TaskStatus.PROCESS), make(TaskStatus.SUCCESS)
    client = client_for("root", superuser=True)
    for task in (running, ended):
        response = client.delete(detail(task))
        assert response.status_code == 405
        assert response.json() == {"detail": 'Method "DELETE" not allowed.'}
    assert Task.objects.count() == 2
