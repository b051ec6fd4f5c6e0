"""A date hierarchy that probes the ``created_at`` index instead of scanning.

Django's date hierarchy lists the days (or months, years) that have rows
with ``SELECT DISTINCT date_trunc(...)`` over every row of the month: a
scan of hundreds of thousands of rows on a busy task table. Here, each
candidate period between the first and the last row becomes an
``EXISTS (... LIMIT 1)`` probe of the index, all of them in one query.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Exists, Max, Min
from django.utils import timezone

from django_qtasks.models import TaskQuerySet

#: More candidate periods than this: let Django's own query decide.
MAX_PROBES = 64


def period_start(moment: datetime, kind: str) -> datetime:
    moment = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind in ("month", "year"):
        moment = moment.replace(day=1)
    if kind == "year":
        moment = moment.replace(month=1)
    return moment


def next_period(start: datetime, kind: str) -> datetime:
    if kind == "day":
        naive = start.replace(tzinfo=None) + timedelta(days=1)
    elif kind == "month":
        year, month = divmod(start.month, 12)
        naive = start.replace(tzinfo=None, year=start.year + year, month=month + 1)
    else:
        naive = start.replace(tzinfo=None, year=start.year + 1)
    # Re-localized: a period may start at another UTC offset (DST).
    return timezone.make_aware(naive) if timezone.is_aware(start) else naive


class ProbedDatesQuerySet(TaskQuerySet):
    def datetimes(self, field_name: str, kind: Any, *args: Any, **kwargs: Any) -> Any:
        if kind not in ("day", "month", "year") or args or kwargs:
            return super().datetimes(field_name, kind, *args, **kwargs)
        bounds = self.order_by().aggregate(first=Min(field_name), last=Max(field_name))
        if bounds["first"] is None:
            return []
        first, last = bounds["first"], bounds["last"]
        if timezone.is_aware(first):
            first, last = timezone.localtime(first), timezone.localtime(last)
        try:
            starts = [period_start(first, kind)]
            while next_period(starts[-1], kind) <= last:
                if len(starts) >= MAX_PROBES:
                    return super().datetimes(field_name, kind)
                starts.append(next_period(starts[-1], kind))
            ends = [next_period(start, kind) for start in starts]
        except (ValueError, OverflowError):  # a period that ends past year 9999
            return super().datetimes(field_name, kind)
        probes = {
            f"p{index}": Exists(
                self.order_by().filter(**{f"{field_name}__gte": start, f"{field_name}__lt": end})
            )
            for index, (start, end) in enumerate(zip(starts, ends, strict=True))
        }
        row = self.order_by().annotate(**probes).values(*probes)[:1]
        found = row[0] if row else {}
        return [start for index, start in enumerate(starts) if found.get(f"p{index}")]
