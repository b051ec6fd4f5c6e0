"""Helpers of the admin tests: tasks in any state, clients with given permissions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_qtasks.models import Task, TaskStatus

CHANGELIST = "admin:django_qtasks_task_changelist"


def make(status: str = TaskStatus.NEW, **fields: Any) -> Task:
    now = timezone.now()
    defaults: dict[str, Any] = {"task_name": "echo", "status": status, "created_at": now}
    if status in (TaskStatus.PROCESS, TaskStatus.SUCCESS, TaskStatus.ERROR, TaskStatus.CANCEL):
        defaults.update(started_at=now, worker="host:1:abc", attempts=1)
    if status in (TaskStatus.SUCCESS, TaskStatus.ERROR, TaskStatus.CANCEL):
        defaults["finished_at"] = now + timedelta(seconds=1.5)
    defaults.update(fields)
    return Task.objects.create(**defaults)


def url(name: str, *args: Any) -> str:
    return reverse(f"admin:django_qtasks_task_{name}", args=args)


def staff(*codenames: str) -> Client:
    user = User.objects.create_user(f"staff-{'-'.join(codenames)}", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def text(response: Any) -> str:
    return response.content.decode()


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]
