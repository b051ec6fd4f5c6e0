"""The project's default app, for the modules below it.

The app (``django_qtasks.app``: the registry of tasks and enqueueing) sits
above the models, the brokers and the schedules' validation, which need it
now and then: ``Task.retry`` enqueues a copy, ``Schedule.clean`` checks that
its task is registered. They find the app here, where the package puts its
default one when it makes it (as Django's ``apps`` registry is filled by
``setup()``), rather than importing upward.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django_qtasks.app import QTasksApp

_default_app: QTasksApp | None = None


def default_app() -> QTasksApp:
    """``django_qtasks.app``, set by the package's ``__init__`` as soon as it is made."""
    assert _default_app is not None, "django_qtasks/__init__.py sets it first"
    return _default_app


def set_default_app(app: QTasksApp) -> None:
    global _default_app
    _default_app = app
