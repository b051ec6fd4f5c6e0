from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

import django
from django.apps import AppConfig
from django.conf import settings
from django.core.signals import setting_changed
from django.utils.translation import gettext_lazy as _

from django_qtasks.conf import SETTING_NAME
from django_qtasks.tracer import TRACER

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
        plug_tracing()
        setting_changed.connect(tracing_setting_changed, dispatch_uid="django_qtasks.tracing")
        app.autodiscover()


def plug_tracing() -> None:
    """Put the OpenTelemetry tracer in ``TRACER`` when ``QTASKS["OPENTELEMETRY"]`` is on,
    or take it out.

    Read from the raw setting, so that a broken QTASKS does not raise here (E001
    says what is wrong). On without opentelemetry installed, it stays out (E007).
    """
    raw = getattr(settings, SETTING_NAME, {})
    if not (isinstance(raw, Mapping) and raw.get("OPENTELEMETRY") is True):
        TRACER.clear()
        return
    try:
        from django_qtasks.tracing import OpenTelemetryTracer
    except ImportError:
        TRACER.clear()
        return
    if not (TRACER and isinstance(TRACER[0], OpenTelemetryTracer)):
        TRACER[:] = [OpenTelemetryTracer()]


def tracing_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        plug_tracing()


def needs_django_tasks(app: QTasksApp, record: Task) -> NoReturn:
    """On Django < 6: raise the backend's own ImportError, which names both versions."""
    import django_qtasks.backends  # noqa: F401  (raises on this Django)

    raise AssertionError("django_qtasks.backends imported on Django < 6")
