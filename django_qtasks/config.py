"""``app.config``: QTasks' ``QueueConfig`` names over the QTASKS setting.

A QTasks program reads and sets ``app.config.<name>``. Here the settings
are Django's: a name with a QTASKS counterpart reads it, the others keep
QTasks' defaults, and any QTASKS key reads in lower case
(``app.config.default_queue``). A value set here is kept in this process and
read back; the worker takes its settings from QTASKS.
"""

from __future__ import annotations

import logging
from typing import Any

from django_qtasks.conf import qtasks_settings

#: QTasks names whose value is a QTASKS key here.
QTASKS_KEYS = {"max_tasks_process": "CONCURRENCY"}

#: QTasks 1.7.3's defaults for the names without a QTASKS counterpart.
QTASKS_DEFAULTS: dict[str, Any] = {
    "running_older_tasks": False,
    "delete_finished_tasks": False,
    "task_default_priority": 0,
    "task_default_decode": None,
    "global_config_status_ttl": 20,
    "global_config_status_set_periodic": 17,
    "logs_default_level_server": logging.INFO,
    "logs_default_level_client": logging.INFO,
    "logs_format": "%(asctime)s [%(name)s: %(levelname)s] (%(subname)s) %(message)s",
    "result_time_interval": 1.0,
    "result_statuses_end": ["success", "error", "cancel"],
    "environ_prefix": "QTASKS_",
}


class QueueConfig:
    """``app.config``: attribute reads and writes with QTasks' names."""

    def __init__(self) -> None:
        object.__setattr__(self, "_values", {})

    def __getattr__(self, name: str) -> Any:
        values: dict[str, Any] = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        if name in QTASKS_KEYS:
            return getattr(qtasks_settings, QTASKS_KEYS[name])
        if name in QTASKS_DEFAULTS:
            default = QTASKS_DEFAULTS[name]
            return list(default) if isinstance(default, list) else default
        if not name.startswith("_") and name.upper() in qtasks_settings.as_dict():
            return qtasks_settings.as_dict()[name.upper()]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        object.__getattribute__(self, "_values")[name] = value

    def as_dict(self) -> dict[str, Any]:
        """QTasks' names with their values here."""
        names = [*QTASKS_KEYS, *QTASKS_DEFAULTS, *object.__getattribute__(self, "_values")]
        return {name: getattr(self, name) for name in dict.fromkeys(names)}

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.as_dict().items())
        return f"QueueConfig({fields})"
