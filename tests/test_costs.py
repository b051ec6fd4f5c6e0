"""What tasks cost: run and CPU time per attempt, and the table of the dashboard and the API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from django_qtasks.costs import percentile, task_costs
from django_qtasks.models import Task, TaskStatus
from tests.api_helpers import client_for, make
from tests.conftest import wait_status
from tests.testapp import tasks, tasks_testing

COSTS = "/api/qtasks/costs/"


def ended(name: str, status: str, run_time: float | None, cpu_time: float | None, **fields):
    return make(status, task_name=name, run_time=run_time, cpu_time=cpu_time, **fields)


@pytest.fixture
def history(db: None) -> None:
    """Tasks that ended within the last hour, and some that do not count."""
    for run_time in (1.0, 2.0, 3.0, 4.0):
        ended("report", TaskStatus.SUCCESS, run_time, run_time / 2)
    ended("report", TaskStatus.ERROR, 10.0, 1.0, attempts=3)
    ended("email", TaskStatus.SUCCESS, 0.5, 0.01, attempts=2)
    ended("email", TaskStatus.CANCEL, None, None, attempts=0)  # cancelled before it ran
    ended("report", TaskStatus.PROCESS, None, None)  # not ended
    old = timezone.now() - timedelta(days=2)
    ended("report", TaskStatus.SUCCESS, 99.0, 99.0, created_at=old, finished_at=old)


def test_percentile_interpolates_as_postgresqls_percentile_cont():
    assert percentile([1.0, 2.0, 3.0, 4.0, 10.0], 0.5) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 10.0], 0.95) == pytest.approx(8.8)
    assert percentile([7.0], 0.95) == 7.0


def test_costs_by_task_name_over_a_window(history):
    costs = {cost.task_name: cost for cost in task_costs(timezone.now() - timedelta(hours=1))}
    assert list(costs) == ["report", "email"]  # costliest CPU first
    report = costs["report"]
    assert (report.runs, report.failed, report.retries) == (5, 1, 2)
    assert report.failure_rate == 0.2
    assert report.run_time_p50 == 3.0
    assert report.run_time_p95 == pytest.approx(8.8)
    assert (report.run_time_total, report.cpu_time_total) == (20.0, 6.0)
    assert report.cpu_time_mean == 1.2
    email = costs["email"]
    assert (email.runs, email.failed, email.retries) == (2, 0, 1)
    assert (email.run_time_p50, email.run_time_p95) == (0.5, 0.5)
    assert email.cpu_time_mean == 0.01  # over the runs that have a time


def test_the_api_gives_the_costs_of_a_period(history):
    api = client_for("root", superuser=True)
    response = api.get(COSTS, {"period": "1h"})
    assert response.status_code == 200
    report = response.json()[0]
    assert report == {
        "task_name": "report",
        "runs": 5,
        "failed": 1,
        "failure_rate": 0.2,
        "retries": 2,
        "run_time_p50": 3.0,
        "run_time_p95": pytest.approx(8.8),
        "run_time_total": 20.0,
        "cpu_time_total": 6.0,
        "cpu_time_mean": 1.2,
    }
    assert [row["task_name"] for row in api.get(COSTS, {"period": "7d"}).json()] == [
        "report",
        "email",
    ]
    assert api.get(COSTS, {"period": "7d"}).json()[0]["runs"] == 6


def test_the_api_refuses_an_unknown_period_and_needs_the_view_permission(history):
    response = client_for("root", superuser=True).get(COSTS, {"period": "1y"})
    assert response.status_code == 400
    assert list(response.json()) == ["period"]
    assert client_for("staff").get(COSTS).status_code == 403
    assert client_for("viewer", "view_task").get(COSTS).status_code == 200


def test_the_dashboard_shows_the_costs(admin_client, history):
    data = admin_client.get(reverse("admin:django_qtasks_task_dashboard_data")).json()
    assert [cost["task_name"] for cost in data["costs"]] == ["report", "email"]
    page = admin_client.get(reverse("admin:django_qtasks_task_dashboard")).content.decode()
    assert "Cost by task (1h)" in page
    assert 'id="qtasks-costs"' in page


# --- What a run records ------------------------------------------------------------


@pytest.mark.django_db
def test_each_attempt_records_its_run_and_cpu_time_and_the_row_their_sums(qtasks_immediate):
    row = tasks_testing.fails_until_user.add_task("lea")
    assert [entry["status"] for entry in row.attempt_log] == ["retry", "success"]
    for entry in row.attempt_log:
        assert entry["run_time"] > 0
        # One thread cannot use more CPU time than the time that passed.
        assert 0 <= entry["cpu_time"] <= entry["run_time"] + 0.001
    assert row.run_time == pytest.approx(sum(e["run_time"] for e in row.attempt_log), abs=1e-5)
    assert row.cpu_time == pytest.approx(sum(e["cpu_time"] for e in row.attempt_log), abs=1e-5)


@pytest.mark.django_db
def test_an_async_tasks_cpu_time_is_counted_too(qtasks_immediate):
    row = tasks.async_echo.add_task("x")
    assert row.cpu_time is not None
    assert 0 < row.cpu_time <= row.run_time + 0.001


@pytest.mark.django_db(transaction=True)
def test_a_worker_records_the_cost_of_a_run(worker):
    slept = wait_status(tasks.sync_sleeper.add_task(0.3), TaskStatus.SUCCESS, timeout=60)
    assert slept.run_time >= 0.3  # it slept that long
    assert slept.cpu_time < slept.run_time  # asleep, it used no CPU
    (attempt,) = slept.attempt_log
    assert (attempt["run_time"], attempt["cpu_time"]) == (slept.run_time, slept.cpu_time)
    failed = wait_status(tasks.retry_wrong_exc.add_task(), TaskStatus.ERROR, timeout=60)
    assert failed.run_time is not None
    assert Task.objects.get(pk=failed.pk).cpu_time is not None
