"""``QueueTasks()`` for programs written for QTasks: it returns the project's app.

``from qtasks import QueueTasks`` becomes ``from django_qtasks.compat import
QueueTasks``, and ``app = QueueTasks()`` then names ``django_qtasks.app``,
whose tasks the worker runs. The broker, storage and worker are settings
here (``QTASKS``), so QTasks' constructor arguments are accepted and ignored.
QTasks' Django integration, ``from qtasks.contrib.django import
autodiscover_tasks``, is ``autodiscover_tasks`` here.
"""

from __future__ import annotations

import logging
from typing import Any

from django_qtasks.app import TASK_MODULES, QTasksApp
from django_qtasks.registry import default_app

logger = logging.getLogger("django_qtasks")


def QueueTasks(*args: Any, **kwargs: Any) -> QTasksApp:
    note_ignored(args, kwargs)
    return default_app()


def note_ignored(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Say, once per ``QueueTasks(...)``, that its arguments are settings here."""
    if args or kwargs:
        logger.info(
            "QueueTasks(%s): the broker, storage and worker come from settings.QTASKS here; "
            "the arguments are ignored.",
            ", ".join([*map(repr, args), *(f"{key}={value!r}" for key, value in kwargs.items())]),
        )


def autodiscover_tasks(app: Any = None, modules: list[str] | None = None) -> None:
    """QTasks' ``qtasks.contrib.django.autodiscover_tasks``: import ``modules``
    (``["tasks"]`` by default) of every installed app, so that their tasks register.

    Every process that sets Django up already imports each installed app's
    ``tasks`` module; other names are added to those, in every process that
    calls this. Called before the apps are loaded (in ``manage.py``, as
    QTasks' docs show), the modules are imported once they are, with the
    ``tasks`` modules. ``app`` is accepted for QTasks' signature: a module's
    tasks register with the app it uses. Unlike QTasks, a module that fails
    to import raises, as Django's own autodiscovery does, instead of being
    logged and skipped.
    """
    from django.apps import apps
    from django.utils.module_loading import autodiscover_modules

    names = list(modules or ["tasks"])
    TASK_MODULES.extend(name for name in names if name not in TASK_MODULES)
    if apps.ready:
        autodiscover_modules(*names)
