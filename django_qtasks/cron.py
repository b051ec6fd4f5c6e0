"""Cron expressions of periodic schedules.

Five fields (minute, hour, day of month, month, day of week), evaluated in the
project's time zone (``TIME_ZONE``), so ``0 9 * * *`` means nine o'clock
local time, summer and winter alike. Parsing is cronsim's.
"""

from __future__ import annotations

from datetime import datetime

from cronsim import CronSim, CronSimError
from django.utils import timezone

from django_qtasks.exceptions import InvalidSchedule

FORMAT_HINT = (
    "Use five fields: minute hour day-of-month month day-of-week, e.g. '*/5 * * * *' "
    "(every five minutes) or '0 9 * * MON-FRI' (9:00 on weekdays)."
)


def validate_cron(expression: str) -> None:
    """Raise InvalidSchedule, with what is wrong, unless ``expression`` is a valid cron."""
    _parse(expression, timezone.now())


def next_cron_time(expression: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that matches ``expression``."""
    local = timezone.localtime(after)
    try:
        return next(_parse(expression, local))
    except StopIteration:  # e.g. '0 0 30 2 *': February never has a 30th
        raise InvalidSchedule(
            f"The cron expression {expression!r} never matches any date. {FORMAT_HINT}"
        ) from None


def describe_cron(expression: str) -> str:
    """A reading of ``expression`` in English, e.g. 'At 09:00 on Monday through Friday'."""
    try:
        return _parse(expression, timezone.now()).explain()
    except (InvalidSchedule, ValueError):
        return expression


def _parse(expression: str, start: datetime) -> CronSim:
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidSchedule(f"A cron expression is required, not {expression!r}. {FORMAT_HINT}")
    try:
        return CronSim(expression.strip(), start)
    except CronSimError as exc:
        raise InvalidSchedule(
            f"Invalid cron expression {expression!r}: {exc}. {FORMAT_HINT}"
        ) from None
