"""The dashboard: what is waiting, running, ending and failing, and who runs it.

Every number comes from an indexed query: waiting and running tasks from the
claim index, tasks that ended from the ``finished_at`` index over a recent
window (and what each task name cost, ``django_qtasks.costs``), workers from
their heartbeat rows. The page draws the first data at
once and then polls ``dashboard/data/`` (JSON) by itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.db.models import Count, Min
from django.db.models.functions import TruncHour, TruncMinute
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views import View

from django_qtasks.conf import qtasks_settings
from django_qtasks.costs import task_costs
from django_qtasks.models import FINAL_STATUSES, Task, TaskStatus, WorkerHeartbeat

if TYPE_CHECKING:
    from django_qtasks.admin.task_admin import TaskAdmin

#: period -> (window, bucket, SQL truncation, seconds between refreshes)
PERIODS: dict[str, tuple[timedelta, timedelta, Any, int]] = {
    "1h": (timedelta(hours=1), timedelta(minutes=1), TruncMinute, 5),
    "24h": (timedelta(hours=24), timedelta(hours=1), TruncHour, 10),
    # A week of a busy project is many rows to group: refreshed less often.
    "7d": (timedelta(days=7), timedelta(hours=1), TruncHour, 30),
}
ACTIVE_STATUSES = (TaskStatus.NEW, TaskStatus.RETRY, TaskStatus.PROCESS)


def floor_time(moment: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)
    return epoch + (moment - epoch) // step * step


def dashboard_data(period: str, task_url: str) -> dict[str, Any]:
    window, step, trunc, _refresh = PERIODS[period]
    now = timezone.now()
    start = floor_time(now - window, step) + step

    counts = dict.fromkeys(TaskStatus.values, 0)
    queues: dict[str, dict[str, Any]] = {}
    active = (
        Task.objects.filter(status__in=ACTIVE_STATUSES)
        .values("status", "queue")
        .annotate(count=Count("pk"), oldest=Min("created_at"))
        .order_by()
    )
    for row in active:
        counts[row["status"]] += row["count"]
        queue = queues.setdefault(
            row["queue"],
            {"queue": row["queue"], "waiting": 0, "running": 0, "oldest_waiting": None},
        )
        if row["status"] == TaskStatus.PROCESS:
            queue["running"] += row["count"]
        else:
            queue["waiting"] += row["count"]
            oldest = queue["oldest_waiting"]
            queue["oldest_waiting"] = min(oldest, row["oldest"]) if oldest else row["oldest"]

    buckets = {
        start + step * i: dict.fromkeys(FINAL_STATUSES, 0) for i in range(int(window / step))
    }
    ended = (
        Task.objects.filter(finished_at__gte=start, status__in=FINAL_STATUSES)
        .annotate(bucket=trunc("finished_at", tzinfo=dt_timezone.utc))
        .values("bucket", "status")
        .annotate(count=Count("pk"))
        .order_by()
    )
    for row in ended:
        if row["bucket"] in buckets:
            buckets[row["bucket"]][row["status"]] += row["count"]
            counts[row["status"]] += row["count"]

    heartbeats = list(WorkerHeartbeat.objects.order_by("worker_id"))
    running_ids = [key for beat in heartbeats for key in beat.running_uuids()]
    running = {
        str(task.uuid): task
        for task in Task.objects.filter(pk__in=running_ids).only("uuid", "task_name", "started_at")
    }
    timeout = qtasks_settings.HEARTBEAT_TIMEOUT
    failures = Task.objects.filter(status=TaskStatus.ERROR).order_by("-created_at")
    failures = failures.only("uuid", "task_name", "finished_at", "traceback")[:8]

    def link(pk: Any) -> str:
        return task_url.replace("00000000-0000-0000-0000-000000000000", str(pk))

    return {
        "generated_at": now.isoformat(),
        "costs": [cost.as_dict() for cost in task_costs(start)],
        "period": period,
        "counts": counts,
        "series": {
            "step": step.total_seconds(),
            "buckets": [{"t": t.isoformat(), **values} for t, values in buckets.items()],
        },
        "queues": [
            {**queue, "oldest_waiting": iso(queue["oldest_waiting"])}
            for _name, queue in sorted(queues.items())
        ],
        "workers": [
            {
                "id": beat.worker_id,
                "hostname": beat.hostname,
                "pid": beat.pid,
                "supervisor": beat.supervisor,
                "queues": beat.queue_names(),
                "concurrency": beat.concurrency,
                "started_at": iso(beat.started_at),
                "last_heartbeat": iso(beat.last_heartbeat),
                "age": round((now - beat.last_heartbeat).total_seconds(), 1),
                "alive": (now - beat.last_heartbeat).total_seconds() < timeout,
                "running": [
                    {
                        "uuid": key,
                        "task_name": running[key].task_name if key in running else "",
                        "started_at": iso(running[key].started_at) if key in running else None,
                        "url": link(key),
                    }
                    for key in beat.running_uuids()
                ],
            }
            for beat in heartbeats
        ],
        "failures": [
            {
                "uuid": str(task.uuid),
                "task_name": task.task_name,
                "finished_at": iso(task.finished_at),
                "error": (task.traceback.strip().splitlines() or [""])[-1][:200],
                "url": link(task.uuid),
            }
            for task in failures
        ],
    }


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


class DashboardView(View):
    model_admin: TaskAdmin | None = None
    template_name = "admin/django_qtasks/task/dashboard.html"

    def check(self, request: HttpRequest) -> tuple[TaskAdmin, str, str]:
        admin = self.model_admin
        assert admin is not None
        if not admin.has_view_permission(request):
            raise PermissionDenied
        period = request.GET.get("period", "1h")
        name = f"{admin.admin_site.name}:{admin.opts.app_label}_{admin.opts.model_name}"
        url = reverse(f"{name}_change", args=["00000000-0000-0000-0000-000000000000"])
        return admin, (period if period in PERIODS else "1h"), url

    def get(self, request: HttpRequest) -> HttpResponse:
        admin, period, task_url = self.check(request)
        context = {
            **admin.admin_site.each_context(request),
            "title": _("Task dashboard"),
            "opts": admin.opts,
            "period": period,
            "periods": [(key, key == period) for key in PERIODS],
            "data": dashboard_data(period, task_url),
            "labels": labels(),
            "refresh_seconds": refresh_seconds(request, PERIODS[period][3]),
        }
        return TemplateResponse(request, self.template_name, context)


class DashboardDataView(DashboardView):
    def get(self, request: HttpRequest) -> HttpResponse:
        _admin, period, task_url = self.check(request)
        return JsonResponse(dashboard_data(period, task_url))


def refresh_seconds(request: HttpRequest, default: int) -> int:
    """``?refresh=N`` (1 to 3600 seconds) overrides how often the page refreshes."""
    try:
        return min(max(int(request.GET.get("refresh", default)), 1), 3600)
    except ValueError:
        return default


def labels() -> dict[str, Any]:
    """The words the dashboard's script writes, translated here."""
    return {
        "status": {value: str(label) for value, label in TaskStatus.choices},
        "noQueues": _("No task is waiting or running."),
        "noWorkers": _("No worker is running. Start one with: manage.py qtasks_worker"),
        "noFailures": _("No failed tasks."),
        "noCosts": _("No task ended in this period."),
        "idle": _("idle"),
        "alive": _("alive"),
        "silent": _("silent"),
        "secondsAgo": _("%(count)s s ago"),
        "minutesAgo": _("%(count)s min ago"),
        "hoursAgo": _("%(count)s h ago"),
        "updated": _("Updated at %(time)s"),
        "process": _("pid %(pid)s"),
        "child": _("pid %(pid)s, child of supervisor %(supervisor)s"),
        "updateFailed": _("Could not refresh: %(error)s"),
        "chartTitle": _("%(time)s: %(success)s succeeded, %(error)s failed, %(cancel)s cancelled"),
    }
