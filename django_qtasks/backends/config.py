"""``TASKS[alias]`` for the QTasks backend: read once, with one message per problem.

A bad configuration never stops imports (``@task`` validates against the
backend when a module is imported): ``manage.py check`` reports it with the
ids below, and ``enqueue`` refuses to run with the same messages.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django_qtasks.validation import is_max_time, is_retry

#: Django's default queue, ``django.tasks.DEFAULT_TASK_QUEUE_NAME``.
DEFAULT_QUEUES = ("default",)

DOCS = "See docs/django-tasks.md in the django-qtasks docs."


@dataclass(frozen=True)
class Option:
    default: Any
    help: str


#: ``OPTIONS`` keys: defaults for every task of the backend, which a task's own
#: ``@task(retry=..., max_time=..., tags=...)`` (Django 6.1+) overrides.
OPTIONS: dict[str, Option] = {
    "RETRY": Option(0, "an int, 0 or more: attempts after the first that fails"),
    "MAX_TIME": Option(None, "a positive number of seconds, or None: the run's time limit"),
    "TAGS": Option((), "a list of strings: tags stored with every task"),
}


@dataclass(frozen=True)
class Problem:
    id: str
    message: str
    hint: str = DOCS


@dataclass(frozen=True)
class BackendConfig:
    queues: frozenset[str] = frozenset(DEFAULT_QUEUES)
    retry: int = 0
    max_time: float | None = None
    tags: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()


def read_config(alias: str, params: Mapping[str, Any]) -> BackendConfig:
    """Parse ``TASKS[alias]``; what is wrong keeps its default and becomes a Problem."""
    where = f"TASKS[{alias!r}]"
    problems: list[Problem] = []
    queues = params.get("QUEUES", list(DEFAULT_QUEUES))
    if isinstance(queues, (list, tuple, set, frozenset)) and all(
        isinstance(name, str) and name for name in queues
    ):
        queue_set = frozenset(queues)
    else:
        problems.append(
            Problem(
                "django_qtasks.E101",
                f"{where}['QUEUES'] must be a list of queue names (non-empty strings), not "
                f"{type(queues).__name__} {queues!r}.",
                'Write it as a list, e.g. "QUEUES": ["default"]; an empty list allows any queue.',
            )
        )
        queue_set = frozenset(DEFAULT_QUEUES)
    values = {key: option.default for key, option in OPTIONS.items()}
    options = params.get("OPTIONS", {})
    if not isinstance(options, Mapping):
        problems.append(
            Problem(
                "django_qtasks.E102",
                f"{where}['OPTIONS'] must be a dict, not {type(options).__name__} {options!r}.",
                f"Use a dict with any of the keys {', '.join(OPTIONS)}, or leave it out.",
            )
        )
        options = {}
    for key, value in options.items():
        if key not in OPTIONS:
            problems.append(unknown_option(where, key))
            continue
        problem = option_problem(key, value)
        if problem:
            problems.append(
                Problem(
                    "django_qtasks.E104",
                    f"{where}['OPTIONS'][{key!r}] must be {OPTIONS[key].help}; got "
                    f"{type(value).__name__} {value!r}.",
                )
            )
        else:
            values[key] = value
    return BackendConfig(
        queues=queue_set,
        retry=values["RETRY"],
        max_time=values["MAX_TIME"],
        tags=tuple(values["TAGS"]),
        problems=tuple(problems),
    )


def unknown_option(where: str, key: Any) -> Problem:
    close = difflib.get_close_matches(str(key), OPTIONS, n=1)
    hint = f"Did you mean {close[0]!r}? " if close else ""
    return Problem(
        "django_qtasks.E103",
        f"{where}['OPTIONS'] has an unknown key {key!r}.",
        f"{hint}The QTasks backend knows {', '.join(OPTIONS)}.",
    )


def option_problem(key: str, value: Any) -> bool:
    """True when ``value`` is not valid for ``OPTIONS[key]`` (bool is never a number)."""
    if key == "RETRY":
        return not is_retry(value)
    if key == "MAX_TIME":
        return not is_max_time(value)
    if key == "TAGS":
        return not isinstance(value, (list, tuple)) or not all(isinstance(t, str) for t in value)
    raise KeyError(key)
