"""QTasks' stats: ``SyncStats(app=app).inspect().tasks()`` and the async twin.

An inspection of the app's registry and settings, as text or JSON; it runs
nothing. The task counts by status are in the admin's dashboard and the API.
"""

from __future__ import annotations

import inspect
import json as jsonlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django_qtasks.conf import qtasks_settings

if TYPE_CHECKING:
    from django_qtasks.app import QTasksApp
    from django_qtasks.task import BaseTask

LABEL_WIDTH = 26


class InspectStats:
    """What ``(A)syncStats.inspect()`` returns."""

    def __init__(self, app: QTasksApp) -> None:
        self._app = app

    def app(self, json: bool = False) -> str:
        """The app: its class, its settings, how many tasks and plugins."""
        from django_qtasks.brokers import get_broker

        info = {
            "Name": type(self._app).__name__,
            "Method": "async" if getattr(self._app, "is_async", False) else "sync",
            "Version": _version(),
            "Config": qtasks_settings.as_dict(),
            "Tasks Count": len(self._app.tasks),
            "Plugins Count": len(self._app.plugins),
            "Broker": type(get_broker()).__name__,
            "Worker": "manage.py qtasks_worker",
            "Storage": "django_qtasks.models.Task",
        }
        if json:
            return _dumps(info)
        return _block(info)

    def task(self, task_name: str, json: bool = False) -> str:
        """One registered task; raises UnknownTask for a name no task has."""
        handle = self._app.get_task(task_name)
        return _dumps(task_info(handle)) if json else _block(task_info(handle))

    def tasks(self, *tasks: str, json: bool = False) -> str:
        """The registered tasks, or those named (names no task has are left out)."""
        registry = self._app.tasks
        names: Iterable[str] = tasks or sorted(registry)
        infos = [task_info(registry[name]) for name in names if name in registry]
        if json:
            return _dumps(infos)
        return "\n".join(_block(info) for info in infos)


class SyncStats:
    """``SyncStats(app=app).inspect()``."""

    def __init__(self, app: QTasksApp, plugins: Any = None) -> None:
        self.app = app

    def inspect(self) -> InspectStats:
        return InspectStats(self.app)


class AsyncStats(SyncStats):
    """``await AsyncStats(app=app).inspect()``."""

    async def inspect(self) -> InspectStats:  # type: ignore[override]
        return InspectStats(self.app)


def task_info(handle: BaseTask) -> dict[str, Any]:
    args, kwargs = [], {}
    for parameter in inspect.signature(handle.func).parameters.values():
        if parameter.default is inspect.Parameter.empty:
            args.append(parameter.name)
        else:
            kwargs[parameter.name] = parameter.default
    generating: str | bool = False
    if inspect.isasyncgenfunction(handle.func):
        generating = "async"
    elif inspect.isgeneratorfunction(handle.func):
        generating = "sync"
    return {
        "Task name": handle.task_name,
        "Priority": handle.priority,
        "Description": handle.description or "—",
        "Tags": handle.tags,
        "Awaiting": handle.is_async,
        "Generating": generating,
        "Task Self": handle.echo,
        "Args": args,
        "Kwargs": kwargs,
        "Retry Count": handle.retry,
        "Retry on Exception": [exc.__name__ for exc in handle.retry_on_exc],
        "Queue": handle.queue,
        "Max time": handle.max_time,
        "Middlewares Before": [repr(item) for item in handle.middlewares_before],
        "Middlewares After": [repr(item) for item in handle.middlewares_after],
        "Extra": handle.extra,
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("django-qtasks")
    except PackageNotFoundError:
        return "unknown"


def _dumps(data: Any) -> str:
    return jsonlib.dumps(data, ensure_ascii=False, indent=2, default=str)


def _block(info: dict[str, Any]) -> str:
    lines = [f"{label:<{LABEL_WIDTH}}: {value}" for label, value in info.items()]
    return "\n".join([*lines, "-" * 50])
