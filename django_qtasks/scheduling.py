"""Periodic schedules declared in code and settings, and their validation.

A task declares one with ``@app.task(schedule="*/5 * * * *")`` (a cron
expression) or ``schedule=timedelta(minutes=5)`` / a number of seconds (an
interval); settings with ``QTASKS["SCHEDULES"] = {"name": {"task": ...,
"cron": ... | "interval": ..., "args": [...], "kwargs": {...}}}``. The beat
writes them to Schedule rows when it starts (``beat.sync_declared_schedules``),
so the admin shows every schedule, whoever declared it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django_qtasks.conf import qtasks_settings
from django_qtasks.cron import validate_cron
from django_qtasks.exceptions import InvalidSchedule, TaskSignatureError
from django_qtasks.registry import default_app
from django_qtasks.validation import is_int, is_json, is_number

if TYPE_CHECKING:
    from django_qtasks.models import Schedule
    from django_qtasks.task import BaseTask

logger = logging.getLogger("django_qtasks.beat")

#: Keys of one ``QTASKS["SCHEDULES"]`` entry.
SETTING_KEYS = frozenset(
    {"task", "cron", "interval", "args", "kwargs", "queue", "priority", "description"}
)


@dataclass
class DeclaredSchedule:
    name: str
    task_name: str
    source: str
    cron: str = ""
    interval: timedelta | None = None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str = ""
    priority: int | None = None
    description: str = ""


def parse_timing(value: Any, where: str) -> tuple[str, timedelta | None]:
    """``(cron, interval)`` from a ``schedule=`` value; raises InvalidSchedule."""
    if isinstance(value, str):
        try:
            validate_cron(value)
        except InvalidSchedule as exc:
            raise InvalidSchedule(f"{where}: {exc}") from None
        return value.strip(), None
    if isinstance(value, timedelta):
        interval = value
    elif is_number(value):
        interval = timedelta(seconds=value)
    else:
        raise InvalidSchedule(
            f"{where}: a schedule is a cron expression such as '*/5 * * * *', a timedelta or "
            f"a number of seconds, not {type(value).__name__} {value!r}."
        )
    if interval <= timedelta(0):
        raise InvalidSchedule(f"{where}: the interval must be positive, not {value!r}.")
    return "", interval


def declared_schedules() -> list[DeclaredSchedule]:
    """Schedules of ``@app.task(schedule=...)`` and of ``QTASKS["SCHEDULES"]``.

    Raises InvalidSchedule for a bad settings entry (the system check
    reports those first, with every problem at once).
    """
    declared = [
        DeclaredSchedule(
            name=handle.task_name,
            task_name=handle.task_name,
            source="code",
            cron=handle.schedule_cron,
            interval=handle.schedule_interval,
            description=handle.description or "",
        )
        for handle in default_app().tasks.values()
        if handle.schedule is not None
    ]
    for name, entry in qtasks_settings.SCHEDULES.items():
        problems = settings_entry_problems(name, entry)
        if problems:
            raise InvalidSchedule(" ".join(problems))
        timing = entry.get("cron", entry.get("interval"))
        cron, interval = parse_timing(timing, f"QTASKS['SCHEDULES'][{name!r}]")
        declared.append(
            DeclaredSchedule(
                name=name,
                task_name=entry["task"],
                source="settings",
                cron=cron,
                interval=interval,
                args=list(entry.get("args", [])),
                kwargs=dict(entry.get("kwargs", {})),
                queue=entry.get("queue", ""),
                priority=entry.get("priority"),
                description=entry.get("description", ""),
            )
        )
    return declared


def settings_entry_problems(name: Any, entry: Any) -> list[str]:
    """What is wrong with one ``QTASKS["SCHEDULES"]`` entry (empty when valid)."""
    tasks = default_app().tasks
    where = f"QTASKS['SCHEDULES'][{name!r}]"
    if not isinstance(name, str) or not name:
        return [f"{where}: schedule names must be non-empty strings."]
    if not isinstance(entry, dict):
        return [f"{where} must be a dict with 'task' and 'cron' or 'interval', not {entry!r}."]
    problems = []
    unknown = sorted(set(entry) - SETTING_KEYS)
    if unknown:
        problems.append(f"{where} has unknown keys {unknown}; known: {sorted(SETTING_KEYS)}.")
    task_name = entry.get("task")
    if not isinstance(task_name, str) or task_name not in tasks:
        known = ", ".join(sorted(tasks)) or "none"
        problems.append(f"{where}['task'] = {task_name!r} is not a registered task ({known}).")
    if ("cron" in entry) == ("interval" in entry):
        problems.append(f"{where} needs exactly one of 'cron' and 'interval'.")
    else:
        try:
            parse_timing(entry.get("cron", entry.get("interval")), where)
        except InvalidSchedule as exc:
            problems.append(str(exc))
    arguments = _arguments_problems(entry.get("args", []), entry.get("kwargs", {}), where)
    if not arguments and isinstance(task_name, str) and task_name in tasks:
        mismatch = call_problem(tasks[task_name], entry.get("args", []), entry.get("kwargs", {}))
        if mismatch is not None:
            arguments.append(f"{where}: {mismatch}")
    problems += arguments
    priority = entry.get("priority")
    if priority is not None and not is_int(priority):
        problems.append(f"{where}['priority'] must be an int, not {priority!r}.")
    return problems


def check_schedule(schedule: Schedule) -> dict[str, str]:
    """Problems of a Schedule row by field name, for the admin form and ``clean()``."""
    problems: dict[str, str] = {}
    if schedule.task_name not in default_app().tasks:
        problems["task_name"] = f"No task named {schedule.task_name!r} is registered."
    if bool(schedule.cron) == bool(schedule.interval):
        problems["cron"] = "Give either a cron expression or an interval (one of the two)."
    elif schedule.cron:
        try:
            validate_cron(schedule.cron)
        except InvalidSchedule as exc:
            problems["cron"] = str(exc)
    elif schedule.interval is not None and schedule.interval <= timedelta(0):
        problems["interval"] = "The interval must be positive."
    if not isinstance(schedule.args, list):
        problems["args"] = "Arguments must be a JSON list, e.g. [1, 2]."
    if not isinstance(schedule.kwargs, dict):
        problems["kwargs"] = 'Keyword arguments must be a JSON object, e.g. {"key": 1}.'
    handle = default_app().tasks.get(schedule.task_name)
    if handle is not None and not ({"args", "kwargs"} & set(problems)):
        try:
            handle.check_call(schedule.args, schedule.kwargs)
        except TaskSignatureError as exc:
            problems[exc.field] = str(exc)
    return problems


def call_problem(handle: BaseTask, args: Any, kwargs: Any) -> str | None:
    """Why the task cannot be called with ``args`` and ``kwargs``; None if it can."""
    try:
        handle.check_call(list(args), dict(kwargs))
    except TaskSignatureError as exc:
        return str(exc)
    return None


def _arguments_problems(args: Any, kwargs: Any, where: str) -> list[str]:
    problems = []
    if not isinstance(args, (list, tuple)) or not is_json(list(args)):
        problems.append(f"{where}['args'] must be a JSON list, not {args!r}.")
    if not isinstance(kwargs, dict) or not is_json(kwargs):
        problems.append(f"{where}['kwargs'] must be a JSON object, not {kwargs!r}.")
    return problems
