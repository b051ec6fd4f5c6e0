"""Bad input to the admin: a 4xx or the admin's "?e=1", never a 500, and nothing changed."""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.urls import reverse

from django_qtasks.models import CANCEL_REASON_MAX_LENGTH, Schedule, Task, TaskStatus
from tests.admin_helpers import CHANGELIST, make, staff, text, url

pytestmark = pytest.mark.django_db

SCHEDULES = "admin:django_qtasks_schedule_changelist"


@pytest.fixture
def tasks() -> list[Task]:
    return [make(), make(TaskStatus.SUCCESS, queue="emails", tags=["x"])]


@pytest.mark.parametrize(
    ("page", "query"),
    [
        (CHANGELIST, {"queue": "\x00"}),
        (CHANGELIST, {"task_name": "\x00"}),
        (CHANGELIST, {"tag": "a\x00"}),
        (SCHEDULES, {"task_name": "\x00"}),
    ],
)
def test_a_nul_in_a_filter_or_search_is_a_bad_lookup(admin_client, tasks, page, query):
    response = admin_client.get(reverse(page), query)
    assert response.status_code == 302
    assert response.url.endswith("?e=1")
    # The admin's own answer to a bad lookup: the list, unfiltered.
    assert admin_client.get(response.url).status_code == 200


def test_a_schedule_id_of_other_digits_than_ascii_ones_is_a_bad_lookup(admin_client, tasks):
    # str.isdigit() takes a superscript two, which int() refuses.
    response = admin_client.get(reverse(CHANGELIST), {"schedule__id__exact": "\u00b2"})
    assert response.status_code == 302
    assert response.url.endswith("?e=1")


@pytest.mark.parametrize(
    "query",
    [
        {"created_at__year": "9999"},
        {"created_at__year": "9999", "created_at__month": "12"},
        {"created_at__year": "9999", "created_at__month": "12", "created_at__day": "31"},
    ],
)
def test_a_date_whose_period_ends_past_year_9999_is_a_bad_lookup(admin_client, tasks, query):
    # The period's end is past what a datetime holds.
    response = admin_client.get(reverse(CHANGELIST), query)
    assert response.status_code == 302
    assert response.url.endswith("?e=1")


def test_a_task_created_in_year_9999_leaves_the_list_and_its_date_hierarchy_working(
    admin_client,
):
    # A row written by hand: the date hierarchy's probes would go past year 9999.
    make(created_at=datetime(9999, 12, 31, 12, tzinfo=dt_timezone.utc))
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    assert "created_at__year=9999" in text(response)


@pytest.mark.parametrize(
    ("page", "action", "selected"),
    [
        (CHANGELIST, "cancel_selected", "not-a-uuid"),
        (CHANGELIST, "retry_selected", "\x00"),
        (CHANGELIST, "delete_selected", "1"),
        (SCHEDULES, "run_selected", "abc"),
        (SCHEDULES, "enable_selected", "\u00b2"),
    ],
)
def test_an_action_on_a_selection_that_is_no_key_of_the_list_is_400(
    admin_client, tasks, page, action, selected
):
    Schedule.objects.create(name="nightly", task_name="echo", interval=timedelta(minutes=1))
    before = list(Task.objects.order_by("pk").values_list()), list(Schedule.objects.values_list())
    payload = {"action": action, "_selected_action": [selected], "post": "yes", "reason": "x"}
    response = admin_client.post(reverse(page), payload)
    assert response.status_code == 400
    after = list(Task.objects.order_by("pk").values_list()), list(Schedule.objects.values_list())
    assert after == before


@pytest.mark.parametrize("page", [CHANGELIST, SCHEDULES])
def test_a_nul_in_the_search_box_is_not_an_error(admin_client, tasks, page):
    # Django 5.0+ drops it with a message; on Django 4.2 it is a bad lookup ("?e=1").
    response = admin_client.get(reverse(page), {"q": "echo\x00"}, follow=True)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        {"worker__regex": ".*"},
        {"args__contains": "x"},
        {"worker": "host:1:abc"},
        {"returning__isnull": "False"},
        {"status__in": "new,success"},
        {"uuid__startswith": "0"},
        {"colour": "red"},
    ],
)
def test_the_task_list_refuses_lookups_it_does_not_offer(admin_client, tasks, query):
    response = admin_client.get(reverse(CHANGELIST), query)
    assert response.status_code == 400


@pytest.mark.parametrize("query", [{"name__regex": ".*"}, {"cron__contains": "*"}])
def test_the_schedule_list_refuses_lookups_it_does_not_offer(admin_client, query):
    Schedule.objects.create(name="nightly", task_name="echo", interval=timedelta(minutes=1))
    assert admin_client.get(reverse(SCHEDULES), query).status_code == 400


@pytest.mark.parametrize(
    "query",
    [
        {"status__exact": "success"},
        {"queue": "emails"},
        {"task_name": "echo", "tag": "x"},
        {"schedule__id__exact": "1"},
        {
            "created_at__gte": "2000-01-01 00:00:00+00:00",
            "created_at__lt": "2999-01-01 00:00:00+00:00",
        },
        {"created_at__year": "2024", "created_at__month": "5", "created_at__day": "1"},
        {"q": "echo", "o": "2", "p": "1", "all": "", "_popup": "1", "_to_field": "uuid"},
    ],
)
def test_the_task_list_takes_every_filter_it_offers(tasks, query):
    viewer = staff("view_task")
    response = viewer.get(reverse(CHANGELIST), query)
    assert response.status_code == 200, text(response)[:500]


def test_the_schedule_list_takes_every_filter_it_offers(admin_client):
    Schedule.objects.create(name="nightly", task_name="echo", interval=timedelta(minutes=1))
    query = {"enabled__exact": "1", "source__exact": "admin", "task_name": "echo", "q": "night"}
    response = admin_client.get(reverse(SCHEDULES), query)
    assert response.status_code == 200
    assert "nightly" in text(response)


# The cancel reason: one limit everywhere -------------------------------------------------


def test_the_admin_refuses_a_cancel_reason_over_the_limit(admin_client):
    task = make()
    long = "r" * (CANCEL_REASON_MAX_LENGTH + 1)
    page = admin_client.post(url("cancel", task.pk), {"reason": long})
    assert page.status_code == 200
    assert "Ensure this value has at most 1000 characters (it has 1001)." in text(page)
    payload = {"action": "cancel_selected", "_selected_action": [str(task.pk)], "post": "yes"}
    listed = admin_client.post(reverse(CHANGELIST), {**payload, "reason": long})
    assert "Ensure this value has at most 1000 characters (it has 1001)." in text(listed)
    task.refresh_from_db()
    assert (task.status, task.cancel_reason) == (TaskStatus.NEW, "")
    admin_client.post(url("cancel", task.pk), {"reason": long[:-1]})
    task.refresh_from_db()
    assert (task.status, task.cancel_reason) == (TaskStatus.CANCEL, long[:-1])


def test_task_cancel_keeps_a_long_reason_cut_to_the_limit():
    task = make()
    assert task.cancel("r" * 2_000_000, by="script")
    task.refresh_from_db()
    assert task.status == TaskStatus.CANCEL
    assert task.cancel_reason == "r" * (CANCEL_REASON_MAX_LENGTH - 1) + "\u2026"


# A big result: a preview on the task page, the whole value as a download ----------------


def test_a_big_result_shows_a_preview_and_downloads_whole():
    task = make(TaskStatus.SUCCESS, returning={"rows": ["x" * 100] * 10_000})
    viewer = staff("view_task")
    page = viewer.get(url("change", task.pk))
    assert page.status_code == 200
    assert len(page.content) < 200_000
    download = url("result", task.pk)
    assert f'href="{download}" download' in text(page)
    assert "The first 10,000 of" in text(page)
    whole = viewer.get(download)
    assert whole.status_code == 200
    assert whole["Content-Type"] == "application/json"
    assert whole["Content-Disposition"] == f'attachment; filename="{task.pk}-result.json"'
    assert whole.json() == {"rows": ["x" * 100] * 10_000}
    assert staff("add_task").get(download).status_code == 403


def test_a_small_result_is_shown_whole(admin_client):
    task = make(TaskStatus.SUCCESS, returning={"answer": 42})
    page = text(admin_client.get(url("change", task.pk)))
    assert "&quot;answer&quot;: 42" in page
    assert url("result", task.pk) not in page
