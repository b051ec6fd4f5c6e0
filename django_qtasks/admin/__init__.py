"""The Django admin of django-qtasks: tasks, their actions, and a dashboard.

``TaskAdmin`` (changelist, read-only detail, cancel and retry) lives in
``task_admin``, the dashboard in ``dashboard``; both are documented in
docs/admin.md.
"""

from django.contrib import admin

from django_qtasks.admin.task_admin import TaskAdmin
from django_qtasks.models import Task

__all__ = ["TaskAdmin"]

admin.site.register(Task, TaskAdmin)
