"""What each task costs: per task name, over a window, the tasks that ended in it.

Runs, failures, retries, run time (wall clock, p50 and p95) and CPU time,
from ``Task.run_time``/``cpu_time`` (summed over each task's attempts) and
the ``finished_at`` index. The admin's dashboard and the API's ``costs/``
show it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, router
from django.db.models import Aggregate, Case, Count, F, FloatField, Q, Sum, When

from django_qtasks.models import FINAL_STATUSES, Task, TaskStatus

#: The windows the API offers (the dashboard's periods).
WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}

#: Task names in the table: the costliest by CPU time, then by run time.
MAX_NAMES = 50
#: Run times read for the percentiles where the database has no percentile
#: function (SQLite, MySQL): the most recent ones of the window.
SAMPLE_SIZE = 20_000


class PercentileCont(Aggregate):
    """PostgreSQL's ``percentile_cont(p) WITHIN GROUP (ORDER BY ...)``."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, fraction: float, **extra: Any) -> None:
        super().__init__(expression, fraction=float(fraction), **extra)


@dataclass
class TaskCost:
    task_name: str
    #: Tasks of this name that ended in the window, and how many in error.
    runs: int
    failed: int
    #: Attempts beyond the first, over those tasks.
    retries: int
    #: Run time (seconds, all attempts of a task) at the median and the 95th percentile.
    run_time_p50: float | None
    run_time_p95: float | None
    run_time_total: float
    cpu_time_total: float
    cpu_time_mean: float | None

    @property
    def failure_rate(self) -> float:
        return self.failed / self.runs if self.runs else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failure_rate": round(self.failure_rate, 4)}


def task_costs(since: datetime) -> list[TaskCost]:
    """The cost of each task name over the tasks that ended since ``since``, costliest first."""
    using = router.db_for_read(Task)
    ended = Task.objects.using(using).filter(finished_at__gte=since, status__in=FINAL_STATUSES)
    percentiles = connections[using].vendor == "postgresql"
    extra = (
        {"p50": PercentileCont("run_time", 0.5), "p95": PercentileCont("run_time", 0.95)}
        if percentiles
        else {}
    )
    rows = list(
        ended.values("task_name")
        .annotate(
            runs=Count("pk"),
            failed=Count("pk", filter=Q(status=TaskStatus.ERROR)),
            retries=Sum(Case(When(attempts__gt=1, then=F("attempts") - 1), default=0)),
            run_total=Sum("run_time"),
            cpu_total=Sum("cpu_time"),
            timed=Count("cpu_time"),
            **extra,
        )
        .order_by(F("cpu_total").desc(nulls_last=True), F("run_total").desc(nulls_last=True))[
            :MAX_NAMES
        ]
    )
    if not percentiles:
        sampled = run_time_percentiles(ended, [row["task_name"] for row in rows])
        for row in rows:
            row["p50"], row["p95"] = sampled.get(row["task_name"], (None, None))
    return [
        TaskCost(
            task_name=row["task_name"],
            runs=row["runs"],
            failed=row["failed"],
            retries=row["retries"] or 0,
            run_time_p50=rounded(row["p50"]),
            run_time_p95=rounded(row["p95"]),
            run_time_total=rounded(row["run_total"]) or 0.0,
            cpu_time_total=rounded(row["cpu_total"]) or 0.0,
            cpu_time_mean=rounded(row["cpu_total"] / row["timed"]) if row["timed"] else None,
        )
        for row in rows
    ]


def run_time_percentiles(ended: Any, names: list[str]) -> dict[str, tuple[float, float]]:
    """p50 and p95 of the run times of ``names``, from the most recent ``SAMPLE_SIZE``."""
    times: dict[str, list[float]] = {}
    recent = (
        ended.filter(task_name__in=names, run_time__isnull=False)
        .order_by("-finished_at")
        .values_list("task_name", "run_time")[:SAMPLE_SIZE]
    )
    for name, run_time in recent:
        times.setdefault(name, []).append(run_time)
    return {
        name: (percentile(sorted(values), 0.5), percentile(sorted(values), 0.95))
        for name, values in times.items()
    }


def percentile(ordered: list[float], fraction: float) -> float:
    """As PostgreSQL's ``percentile_cont``: linear between the two nearest values."""
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)
