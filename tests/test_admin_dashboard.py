"""The admin dashboard (page and JSON), and the paginator that spares COUNT(*)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from django_qtasks.admin.pagination import EstimatedCountPaginator, estimated_rows
from django_qtasks.models import Task, TaskStatus, WorkerHeartbeat
from tests.admin_helpers import make, staff, text, url

pytestmark = pytest.mark.django_db


@pytest.fixture
def busy() -> dict[str, Task]:
    now = timezone.now()
    # Ended by now: make()'s own finished_at, 1.5 s ahead, falls in a minute
    # the dashboard has not reached yet when the fixture runs near its end.
    ended = {"started_at": now - timedelta(seconds=1.5), "finished_at": now}
    tasks = {
        "waiting": make(queue="emails", created_at=now - timedelta(minutes=5)),
        "waiting2": make(queue="emails"),
        "retry": make(TaskStatus.RETRY),
        "running": make(TaskStatus.PROCESS, task_name="sync_sleeper"),
        "ok": make(TaskStatus.SUCCESS, **ended),
        "failed": make(TaskStatus.ERROR, traceback="Traceback\nValueError: broken <pipe>", **ended),
        "cancelled": make(TaskStatus.CANCEL, **ended),
        "old": make(TaskStatus.SUCCESS, finished_at=now - timedelta(days=3)),
    }
    WorkerHeartbeat.objects.create(
        worker_id="host:1:abc",
        hostname="host",
        pid=1,
        queues=["default", "emails"],
        concurrency=4,
        running=[str(tasks["running"].pk)],
    )
    WorkerHeartbeat.objects.create(
        worker_id="host:2:dead",
        hostname="host",
        pid=2,
        queues=["default"],
        concurrency=4,
        last_heartbeat=now - timedelta(minutes=5),
    )
    return tasks


def test_dashboard_data_counts_series_queues_workers_and_failures(admin_client, busy):
    data = admin_client.get(url("dashboard_data"), {"period": "1h"}).json()
    assert data["period"] == "1h"
    assert data["counts"] == {
        "new": 2,
        "retry": 1,
        "process": 1,
        "success": 1,
        "error": 1,
        "cancel": 1,
    }
    buckets = data["series"]["buckets"]
    assert len(buckets) == 60
    assert data["series"]["step"] == 60
    assert sum(b["success"] + b["error"] + b["cancel"] for b in buckets) == 3
    queues = {q["queue"]: q for q in data["queues"]}
    assert (queues["emails"]["waiting"], queues["emails"]["running"]) == (2, 0)
    assert (queues["default"]["waiting"], queues["default"]["running"]) == (1, 1)
    assert queues["emails"]["oldest_waiting"] == busy["waiting"].created_at.isoformat()
    alive, dead = data["workers"]
    assert (alive["id"], alive["alive"], dead["alive"]) == ("host:1:abc", True, False)
    assert alive["running"] == [
        {
            "uuid": str(busy["running"].pk),
            "task_name": "sync_sleeper",
            "started_at": busy["running"].started_at.isoformat(),
            "url": url("change", busy["running"].pk),
        }
    ]
    assert data["failures"][0]["error"] == "ValueError: broken <pipe>"
    assert data["failures"][0]["url"] == url("change", busy["failed"].pk)

    week = admin_client.get(url("dashboard_data"), {"period": "7d"}).json()
    assert len(week["series"]["buckets"]) == 168
    assert week["counts"]["success"] == 2
    assert admin_client.get(url("dashboard_data"), {"period": "bogus"}).json()["period"] == "1h"


def test_a_worker_whose_running_list_holds_no_uuid_does_not_break_the_dashboard(admin_client):
    task = make(TaskStatus.PROCESS, task_name="sync_sleeper")
    WorkerHeartbeat.objects.create(
        worker_id="host:3:odd",
        hostname="host",
        pid=3,
        queues=["default"],
        concurrency=4,
        running=["not-a-uuid", 5, None, {"a": 1}, str(task.pk)],
    )
    data = admin_client.get(url("dashboard_data"))
    assert data.status_code == 200
    [worker] = data.json()["workers"]
    assert [entry["uuid"] for entry in worker["running"]] == [str(task.pk)]
    assert worker["running"][0]["task_name"] == "sync_sleeper"
    page = admin_client.get(url("dashboard"))
    assert page.status_code == 200
    assert "host:3:odd" in text(page)


@pytest.mark.parametrize(
    ("queues", "shown"),
    [(5, []), ("emails", []), ([{"a": 1}, None, 5, ["x"], "emails"], ["emails"])],
)
def test_a_worker_whose_queues_are_not_a_list_of_names_breaks_no_page(admin_client, queues, shown):
    # A heartbeat row written by another program.
    WorkerHeartbeat.objects.create(
        worker_id="host:4:odd", hostname="host", pid=4, queues=queues, concurrency=1
    )
    data = admin_client.get(url("dashboard_data"))
    assert data.status_code == 200
    [worker] = data.json()["workers"]
    assert worker["queues"] == shown
    assert admin_client.get(url("dashboard")).status_code == 200
    tasks = admin_client.get(reverse("admin:django_qtasks_task_changelist"))
    assert tasks.status_code == 200
    assert ("?queue=emails" in text(tasks)) == bool(shown)


def test_dashboard_page_embeds_its_data_and_translated_labels(admin_client, busy):
    page = text(admin_client.get(url("dashboard"), {"period": "24h"}))
    assert 'id="qtasks-data"' in page
    assert 'id="qtasks-labels"' in page
    assert "django_qtasks/dashboard.js" in page
    assert "Throughput and failures" in page
    assert "Succeeded (24h)" in page
    assert url("dashboard_data") + "?period=24h" in page
    assert url("dashboard") in text(
        admin_client.get(reverse("admin:django_qtasks_task_changelist"))
    )


def test_dashboard_runs_a_constant_number_of_queries(
    admin_client, busy, django_assert_max_num_queries
):
    with django_assert_max_num_queries(10):
        admin_client.get(url("dashboard_data"))


def test_dashboard_needs_the_view_permission():
    assert staff().get(url("dashboard")).status_code == 403
    assert staff("add_task").get(url("dashboard_data")).status_code == 403
    assert staff("view_task").get(url("dashboard_data")).status_code == 200


def test_paginator_counts_small_or_filtered_lists_exactly():
    for _ in range(3):
        make()
    paginator = EstimatedCountPaginator(Task.objects.order_by("pk"), 50)
    assert paginator.count == 3
    assert estimated_rows(Task.objects.filter(status="new")) is None
    assert estimated_rows(Task.objects.all()[:5]) is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the estimate is PostgreSQL's")
def test_paginator_takes_the_planners_estimate_of_a_big_unfiltered_table(monkeypatch):
    Task.objects.bulk_create(Task(task_name="echo") for _ in range(500))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_qtasks_task")
    estimate = estimated_rows(Task.objects.all())
    assert estimate is not None
    assert 400 <= estimate <= 600
    monkeypatch.setattr(EstimatedCountPaginator, "exact_below", 100)
    assert EstimatedCountPaginator(Task.objects.order_by("pk"), 50).count == estimate
    filtered = Task.objects.filter(task_name="echo").order_by("pk")
    assert EstimatedCountPaginator(filtered, 50).count == 500
