"""The worker's counters and histogram: what its processes did, recorded where they run.

``MetricsRecorder`` is the worker's observer (``worker.observer``): the
worker calls it once per attempt that ended, on its event loop, and once per
task it took over from a dead worker, in its database thread. Each call is a
dictionary look-up and two writes to a memory-mapped file (prometheus_client's
multiprocess mode, ``metrics.files``); a failure to record is logged once
and never reaches the task.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram

from django_qtasks.statuses import TaskStatus

logger = logging.getLogger("django_qtasks.metrics")

#: Seconds: from a few milliseconds (a cache refresh) to an hour (a report).
DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1200.0,
    1800.0,
    3600.0,
)

#: Statuses that end a task (``qtasks_tasks_finished_total``).
FINISHED = {str(TaskStatus.SUCCESS), str(TaskStatus.ERROR), str(TaskStatus.CANCEL)}


class MetricsRecorder:
    """``qtasks_tasks_finished_total``, ``qtasks_tasks_retried_total``,
    ``qtasks_tasks_failed_over_total`` and ``qtasks_task_duration_seconds``."""

    def __init__(self) -> None:
        # In no registry: whoever serves them reads the processes' files.
        self.finished = Counter(
            "qtasks_tasks_finished",
            "Tasks that ended, by task name and final status (success, error, cancel).",
            ["task_name", "status"],
            registry=None,
        )
        self.retried = Counter(
            "qtasks_tasks_retried",
            "Attempts that failed and were followed by another one, by task name.",
            ["task_name"],
            registry=None,
        )
        self.failed_over_count = Counter(
            "qtasks_tasks_failed_over",
            "Tasks of dead workers taken over, by task name and outcome (retry or error).",
            ["task_name", "outcome"],
            registry=None,
        )
        self.duration = Histogram(
            "qtasks_task_duration_seconds",
            "Wall-clock seconds of each attempt, by task name.",
            ["task_name"],
            buckets=DURATION_BUCKETS,
            registry=None,
        )
        #: (task name, status) -> the counter and histogram of that pair.
        self._runs: dict[tuple[str, str], tuple[Counter | None, Histogram]] = {}
        self._failed = False

    def run_ended(self, task_name: str, status: str, seconds: float) -> None:
        try:
            pair = self._runs.get((task_name, status))
            if pair is None:
                pair = self._runs[(task_name, status)] = self.children(task_name, str(status))
            count, duration = pair
            if count is not None:
                count.inc()
            duration.observe(seconds)
        except Exception as exc:
            self.failure(exc)

    def children(self, task_name: str, status: str) -> tuple[Counter | None, Histogram]:
        if status in FINISHED:
            count: Counter | None = self.finished.labels(task_name, status)
        elif status == TaskStatus.RETRY:
            count = self.retried.labels(task_name)
        else:
            count = None
        return count, self.duration.labels(task_name)

    def failed_over(self, task_name: str, retried: bool) -> None:
        try:
            if retried:
                self.failed_over_count.labels(task_name, "retry").inc()
                self.retried.labels(task_name).inc()
            else:
                self.failed_over_count.labels(task_name, "error").inc()
                self.finished.labels(task_name, str(TaskStatus.ERROR)).inc()
        except Exception as exc:
            self.failure(exc)

    def failure(self, exc: Exception) -> None:
        if not self._failed:
            self._failed = True
            logger.error("Could not record a task's metrics (said once per process)", exc_info=exc)
