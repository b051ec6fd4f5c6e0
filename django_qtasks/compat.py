"""``QueueTasks()`` for programs written for QTasks: it returns the project's app.

``from qtasks import QueueTasks`` becomes ``from django_qtasks.compat import
QueueTasks``, and ``app = QueueTasks()`` then names ``django_qtasks.app``,
whose tasks the worker runs. The broker, storage and worker are settings
here (``QTASKS``), so QTasks' constructor arguments are accepted and ignored.
"""

from __future__ import annotations

import logging
from typing import Any

from django_qtasks.app import QTasksApp
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
