"""The Django admin of django-qtasks: tasks, their actions, a dashboard, and schedules.

``TaskAdmin`` (changelist, read-only detail, cancel and retry) lives in
``task_admin``, the dashboard in ``dashboard``, ``ScheduleAdmin`` (periodic
tasks: Run now, Enable, Disable) in ``schedule_admin``; all are documented
in docs/admin.md.
"""

from django.contrib import admin

from django_qtasks.admin.schedule_admin import ScheduleAdmin
from django_qtasks.admin.task_admin import TaskAdmin
from django_qtasks.models import Schedule, Task

__all__ = ["ScheduleAdmin", "TaskAdmin"]

admin.site.register(Task, TaskAdmin)
admin.site.register(Schedule, ScheduleAdmin)
