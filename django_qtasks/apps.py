from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

import django
from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django_qtasks.app import QTasksApp
    from django_qtasks.models import Task


class QTasksConfig(AppConfig):
    name = "django_qtasks"
    verbose_name = _("Tasks")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_qtasks import app, checks  # noqa: F401  (registers the checks)
        from django_qtasks.app import DJANGO_TASK_KEY, IMMEDIATE_RUNNER, register_row_runner
        from django_qtasks.immediate import run_delivered

        if django.VERSION >= (6, 0):
            # The django.tasks backend's rows run through its own runner.
            from django_qtasks.backends.runner import django_task_handle

            register_row_runner(DJANGO_TASK_KEY, django_task_handle)
        else:
            # A row of the backend (written by a project on Django 6 that
            # shares this database) fails saying why.
            register_row_runner(DJANGO_TASK_KEY, needs_django_tasks)
        IMMEDIATE_RUNNER[:] = [run_delivered]
        app.autodiscover()


def needs_django_tasks(app: QTasksApp, record: Task) -> NoReturn:
    """On Django < 6: raise the backend's own ImportError, which names both versions."""
    import django_qtasks.backends  # noqa: F401  (raises on this Django)

    raise AssertionError("django_qtasks.backends imported on Django < 6")
