"""QTasks-style plugins: objects whose ``trigger(name, **kwargs)`` the worker calls.

``app.add_plugin(plugin, trigger_names=[...], component="worker")`` registers
one, as in QTasks. The triggers the worker fires are listed in ``TRIGGERS``;
a plugin registered without names receives every trigger. ``trigger`` may be
a plain method or a coroutine, whatever the task's flavour.
"""

from __future__ import annotations

import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

from django_qtasks.exceptions import QTasksError
from django_qtasks.plugins.depends import Depends as Depends
from django_qtasks.plugins.depends import ScopeEnum as ScopeEnum
from django_qtasks.plugins.states import AsyncState as AsyncState
from django_qtasks.plugins.states import SyncState as SyncState

logger = logging.getLogger("django_qtasks.plugins")

#: The name a plugin registered without trigger names is filed under.
GLOBALS = "Globals"

#: The triggers fired by the worker, with the keyword arguments each one gets.
TRIGGERS = {
    # ctx.plugin_error() or TaskPluginTriggerError in a task: a plugin that
    # answers {"result": value} ends the task with that result.
    "task_executor_run_task_trigger_error": "task_executor, task_func, task_broker, e",
}


class TaskPluginTriggerError(QTasksError):
    """Raised in a task (or by ``self.ctx.plugin_error(**kwargs)``) to hand it to the plugins.

    The worker fires ``task_executor_run_task_trigger_error``; a plugin that
    returns ``{"result": value}`` ends the task with ``value`` (status
    ``success``); when none does, the task fails with this error.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args)
        self.kwargs = kwargs


class BasePlugin(ABC):
    """The base of a plugin, with QTasks' shape: ``name``, ``trigger``, ``start``, ``stop``."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name

    @abstractmethod
    def trigger(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Handle trigger ``name``; a dict returned may replace what the caller holds."""

    def start(self, *args: Any, **kwargs: Any) -> Any:
        """Called by QTasks when its app starts; kept for the shape, not called here."""

    def stop(self, *args: Any, **kwargs: Any) -> Any:
        """Called by QTasks when its app stops; kept for the shape, not called here."""


class Plugins:
    """The plugins of an app, by trigger name."""

    def __init__(self) -> None:
        self.by_trigger: dict[str, list[Any]] = {}

    def add(self, plugin: Any, trigger_names: Iterable[str] | None = None) -> None:
        if not callable(getattr(plugin, "trigger", None)):
            raise TypeError(f"A plugin needs a trigger(name, **kwargs) method: {plugin!r}.")
        for name in list(trigger_names or [GLOBALS]):
            self.by_trigger.setdefault(name, []).append(plugin)

    def for_trigger(self, name: str) -> list[Any]:
        return self.by_trigger.get(name, []) + self.by_trigger.get(GLOBALS, [])

    def __len__(self) -> int:
        return len({id(plugin) for plugins in self.by_trigger.values() for plugin in plugins})

    async def atrigger(self, name: str, **kwargs: Any) -> dict[str, Any] | None:
        """Call every plugin of ``name``; the last dict one returned, or None."""
        answer = None
        for plugin in self.for_trigger(name):
            value = plugin.trigger(name, **kwargs)
            if inspect.isawaitable(value):
                value = await value
            if isinstance(value, dict):
                answer = value
        return answer
