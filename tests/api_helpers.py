"""Helpers of the REST API tests: URLs, clients with given rights, tasks in any state."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from django_qtasks.models import Task, TaskStatus

TASKS = "/api/qtasks/tasks/"
REGISTRY = "/api/qtasks/registry/"
WORKERS = "/api/qtasks/workers/"
STATS = "/api/qtasks/stats/"


def detail(task: Task | str) -> str:
    uuid = task if isinstance(task, str) else task.uuid
    return reverse("qtasks_api:task-detail", kwargs={"uuid": uuid})


def cancel_url(task: Task | str) -> str:
    return detail(task) + "cancel/"


def retry_url(task: Task | str) -> str:
    return detail(task) + "retry/"


def client_for(
    username: str, *codenames: str, staff: bool = True, superuser: bool = False
) -> APIClient:
    """A client logged in as a new user with these django_qtasks permissions."""
    user = User.objects.create_user(
        username, password="pw", is_staff=staff or superuser, is_superuser=superuser
    )
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_qtasks", codename__in=codenames)
    )
    client = APIClient()
    client.force_authenticate(user)
    return client


def make(status: str = TaskStatus.NEW, **fields: Any) -> Task:
    """A Task row in ``status``, with the timestamps that status implies."""
    now = timezone.now()
    values: dict[str, Any] = {"task_name": "echo", "status": status, "created_at": now}
    if status != TaskStatus.NEW and status != TaskStatus.RETRY:
        values.update(started_at=now, worker="host:1:abc", attempts=1)
    if status in (TaskStatus.SUCCESS, TaskStatus.ERROR, TaskStatus.CANCEL):
        values["finished_at"] = now + timedelta(seconds=1.5)
    values.update(fields)
    return Task.objects.create(**values)


def snapshot() -> list[tuple[Any, ...]]:
    """Every task row, to show that a refused request changed nothing."""
    return list(Task.objects.order_by("uuid").values_list())
