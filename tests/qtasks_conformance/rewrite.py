"""The import rewrite that ports a QTasks program: only its import lines change.

Each ``from <qtasks module> import <name>`` becomes an import of the name
listed here (``as`` keeps the program's own name); the rest of the program
is untouched. docs/coming-from-qtasks.md shows the same table.
"""

from __future__ import annotations

import re

#: (QTasks module, name) -> (django_qtasks module, name).
NAMES: dict[tuple[str, str], tuple[str, str]] = {
    ("qtasks", "QueueTasks"): ("django_qtasks.compat", "QueueTasks"),
    ("qtasks.asyncio", "QueueTasks"): ("django_qtasks.asyncio", "QueueTasks"),
    ("qtasks.qtasks", "QueueTasks"): ("django_qtasks.compat", "QueueTasks"),
    ("qtasks.asyncio.qtasks", "QueueTasks"): ("django_qtasks.asyncio", "QueueTasks"),
    ("qtasks", "shared_task"): ("django_qtasks", "shared_task"),
    ("qtasks", "SyncRouter"): ("django_qtasks.routers", "SyncRouter"),
    ("qtasks", "AsyncRouter"): ("django_qtasks.routers", "AsyncRouter"),
    ("qtasks.routers", "SyncRouter"): ("django_qtasks.routers", "SyncRouter"),
    ("qtasks.routers", "AsyncRouter"): ("django_qtasks.routers", "AsyncRouter"),
    ("qtasks.registries", "SyncTask"): ("django_qtasks", "SyncTask"),
    ("qtasks.registries", "AsyncTask"): ("django_qtasks", "AsyncTask"),
    ("qtasks.registries.sync_task_decorator", "SyncTask"): ("django_qtasks", "SyncTask"),
    ("qtasks.registries.async_task_decorator", "AsyncTask"): ("django_qtasks", "AsyncTask"),
    ("qtasks.exc", "TaskPluginTriggerError"): ("django_qtasks.plugins", "TaskPluginTriggerError"),
    ("qtasks.plugins.base", "BasePlugin"): ("django_qtasks.plugins", "BasePlugin"),
    ("qtasks.stats", "SyncStats"): ("django_qtasks.stats", "SyncStats"),
    ("qtasks.stats", "AsyncStats"): ("django_qtasks.stats", "AsyncStats"),
    ("qtasks.stats.sync_stats", "SyncStats"): ("django_qtasks.stats", "SyncStats"),
    ("qtasks.stats.async_stats", "AsyncStats"): ("django_qtasks.stats", "AsyncStats"),
    ("qtasks.tests", "SyncTestCase"): ("django_qtasks.testing", "SyncTestCase"),
    ("qtasks.tests", "AsyncTestCase"): ("django_qtasks.testing", "AsyncTestCase"),
    ("qtasks.schemas.test", "TestConfig"): ("django_qtasks.testing", "TestConfig"),
    ("qtasks.enums.task_status", "TaskStatusEnum"): ("django_qtasks.models", "TaskStatus"),
    ("qtasks.middlewares", "TaskMiddleware"): ("django_qtasks.middlewares", "TaskMiddleware"),
    ("qtasks.executors.base", "BaseTaskExecutor"): ("django_qtasks.executors", "BaseTaskExecutor"),
    ("qtasks.results", "SyncResult"): ("django_qtasks.results", "SyncResult"),
    ("qtasks.results", "AsyncResult"): ("django_qtasks.results", "AsyncResult"),
    ("qtasks.plugins", "Depends"): ("django_qtasks.plugins", "Depends"),
    ("qtasks.plugins", "AsyncState"): ("django_qtasks.plugins", "AsyncState"),
    ("qtasks.plugins", "SyncState"): ("django_qtasks.plugins", "SyncState"),
    ("qtasks.plugins.depends", "Depends"): ("django_qtasks.plugins", "Depends"),
    ("qtasks.plugins.depends", "ScopeEnum"): ("django_qtasks.plugins", "ScopeEnum"),
    ("qtasks.plugins.states", "AsyncState"): ("django_qtasks.plugins", "AsyncState"),
    ("qtasks.plugins.states", "SyncState"): ("django_qtasks.plugins", "SyncState"),
    ("qtasks.utils.tasks.async_task_utils", "AsyncTaskUtils"): (
        "django_qtasks.task_utils",
        "AsyncTaskUtils",
    ),
    ("qtasks.utils.tasks.sync_task_utils", "SyncTaskUtils"): (
        "django_qtasks.task_utils",
        "SyncTaskUtils",
    ),
    ("qtasks.middlewares.task", "TaskMiddleware"): ("django_qtasks.middlewares", "TaskMiddleware"),
    ("qtasks.contrib.django", "autodiscover_tasks"): ("django_qtasks.compat", "autodiscover_tasks"),
    ("qtasks", "Depends"): ("django_qtasks.plugins", "Depends"),
    ("qtasks.plugins", "BasePlugin"): ("django_qtasks.plugins", "BasePlugin"),
    ("qtasks.executors", "SyncTaskExecutor"): ("django_qtasks.executors", "SyncTaskExecutor"),
    ("qtasks.executors", "AsyncTaskExecutor"): ("django_qtasks.executors", "AsyncTaskExecutor"),
}

IMPORT = re.compile(r"^(\s*)from (qtasks[\w.]*) import (.+)$")


def port(source: str) -> str:
    """``source`` with each QTasks import replaced by its django_qtasks equivalent."""
    lines = []
    for line in source.splitlines():
        match = IMPORT.match(line)
        if match is None:
            if re.match(r"\s*import qtasks\b", line):
                raise ValueError(f"No rewrite for {line.strip()!r}")
            lines.append(line)
            continue
        indent, module, names = match.groups()
        for item in names.split(","):
            name, _, alias = item.strip().partition(" as ")
            target = NAMES.get((module, name))
            if target is None:
                raise ValueError(f"No rewrite for {name!r} from {module!r}")
            local = alias or name
            suffix = f" as {local}" if local != target[1] else ""
            lines.append(f"{indent}from {target[0]} import {target[1]}{suffix}")
    return "\n".join(lines) + "\n"
