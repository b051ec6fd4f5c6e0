"""The task admin through Django's test client: changelist, filters, search, detail page."""

from __future__ import annotations

import itertools
import re
import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from django_qtasks.admin.hierarchy import ProbedDatesQuerySet
from django_qtasks.models import Task, TaskStatus
from tests.admin_helpers import CHANGELIST, make, staff, text, url

pytestmark = pytest.mark.django_db

# The changelist -----------------------------------------------------------------


def test_changelist_shows_columns_badges_and_registered_filter_choices(admin_client):
    task = make(TaskStatus.ERROR, tags=["urgent", "billing"], queue="other", priority=3)
    page = text(admin_client.get(reverse(CHANGELIST)))
    assert str(task.uuid)[:8] in page
    assert '<span class="qtasks-badge qtasks-status-error">error</span>' in page
    assert '<span class="qtasks-tag">urgent</span>' in page
    assert "1.5 s" in page  # duration
    assert "1/1" in page  # attempts
    assert "host:1:abc" in page
    # Choices come from the registry, not from the table: no task of these exists.
    assert "?task_name=async_sleeper" in page
    assert "?tag=a" in page  # options_report's tags
    assert "?queue=other" in page
    assert "Dashboard" in page


def test_changelist_runs_few_queries_whatever_the_number_of_rows(
    admin_client, django_assert_max_num_queries
):
    logs = [{"time": "t", "level": "INFO", "message": "x" * 200}] * 50
    Task.objects.bulk_create(
        Task(task_name="echo", status=TaskStatus.SUCCESS, logs=logs, tags=["t"]) for _ in range(20)
    )
    with django_assert_max_num_queries(10) as few:
        assert admin_client.get(reverse(CHANGELIST)).status_code == 200
    Task.objects.bulk_create(
        Task(task_name="echo", status=TaskStatus.ERROR, logs=logs, tags=["t"]) for _ in range(400)
    )
    with django_assert_max_num_queries(10) as many:
        response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    assert len(many.captured_queries) == len(few.captured_queries)
    with django_assert_max_num_queries(10):
        filtered = admin_client.get(reverse(CHANGELIST), {"status__exact": "error", "q": "echo"})
    assert "400 tasks" in text(filtered)
    page_query = next(q["sql"] for q in many.captured_queries if "LIMIT" in q["sql"])
    assert '"logs"' not in page_query  # heavy columns are deferred


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status__exact": "error"}, {"failed"}),
        ({"task_name": "sync_sleeper"}, {"sleeper"}),
        ({"queue": "other"}, {"other-queue"}),
        ({"tag": "billing"}, {"tagged"}),
        ({"tag": "bill"}, set()),  # a whole tag, not a part of one
        ({"tag": "ünïcode"}, {"unicode"}),
        ({"q": "sleeper"}, {"sleeper"}),
        ({"q": "BILLING"}, {"tagged"}),
    ],
)
def test_filters_and_search(admin_client, params, expected):
    labels = {
        "failed": make(TaskStatus.ERROR),
        "sleeper": make(task_name="sync_sleeper"),
        "other-queue": make(queue="other"),
        "tagged": make(tags=["urgent", "billing"]),
        "unicode": make(tags=["ünïcode"]),
        "plain": make(),
    }
    response = admin_client.get(reverse(CHANGELIST), params)
    shown = {task.pk for task in response.context["cl"].result_list}
    assert shown == {labels[name].pk for name in expected}


def test_search_by_uuid_and_its_first_eight_characters(admin_client):
    task, other = make(), make()
    for term in (str(task.uuid), str(task.uuid).upper(), str(task.uuid)[:8]):
        response = admin_client.get(reverse(CHANGELIST), {"q": term})
        assert [t.pk for t in response.context["cl"].result_list] == [task.pk], term
    response = admin_client.get(reverse(CHANGELIST), {"q": str(uuid.uuid4())})
    assert list(response.context["cl"].result_list) == []
    assert other.pk


def test_date_filter_and_date_hierarchy(admin_client):
    old = make(created_at=timezone.now() - timedelta(days=40))
    new = make()
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    today = admin_client.get(reverse(CHANGELIST), {"created_at__gte": str(midnight)})
    assert [t.pk for t in today.context["cl"].result_list] == [new.pk]
    year = admin_client.get(reverse(CHANGELIST), {"created_at__year": old.created_at.year})
    assert old.pk in {t.pk for t in year.context["cl"].result_list}


# The detail page ----------------------------------------------------------------


def test_detail_shows_everything_a_task_recorded(admin_client):
    parent = make(TaskStatus.ERROR, traceback="Traceback...\nKeyError: 'x'")
    task = make(
        TaskStatus.CANCEL,
        args=[1, "two"],
        kwargs={"key": "<b>value</b>"},
        extra={"color": "blue"},
        returning={"partial": True},
        cancel_reason="not needed",
        canceled_by="alice",
        cancel_requested_at=timezone.now(),
        retry_of=parent,
        logs=[{"time": "2026-01-01T00:00:00", "level": "WARNING", "message": "careful <now>"}],
        attempt_log=[{"attempt": 1, "worker": "w1", "status": "cancel", "error": ""}],
    )
    child = make(retry_of=task)
    page = text(admin_client.get(url("change", task.pk)))
    assert "&quot;two&quot;" in page  # pretty JSON, escaped
    assert "&lt;b&gt;value&lt;/b&gt;" in page
    assert "&quot;color&quot;: &quot;blue&quot;" in page
    assert "&quot;partial&quot;: true" in page
    assert "not needed" in page
    assert "alice" in page
    assert "careful &lt;now&gt;" in page
    assert 'class="qtasks-log-warning"' in page
    assert url("change", parent.pk) in page
    assert url("change", child.pk) in page
    assert "1.5 s" in page
    form = page.split('id="task_form"')[1].split("</form>")[0]
    fields = re.findall(r"<(?:input|textarea|select)\b[^>]*>", form)
    assert all('type="hidden"' in field for field in fields), fields  # nothing to edit
    error_page = text(admin_client.get(url("change", parent.pk)))
    assert "KeyError: &#x27;x&#x27;" in error_page
    assert "cancel reason" not in error_page.lower()  # no cancel fields when nobody cancelled


def test_detail_of_a_running_task_shows_progress_refreshes_and_offers_cancel(admin_client):
    task = make(TaskStatus.PROCESS, returning=[0, 10, 20])
    page = text(admin_client.get(url("change", task.pk)))
    assert "Progress so far: 3 items yielded." in page
    assert "data-qtasks-refresh" in page
    assert url("cancel", task.pk) in page
    assert url("retry", task.pk) not in page
    finished = text(admin_client.get(url("change", make(TaskStatus.SUCCESS).pk)))
    assert "data-qtasks-refresh" not in finished
    assert "Retry as a new task" in finished


def test_history_is_read_only(admin_client):
    task = make()
    assert admin_client.get(url("add")).status_code == 403
    response = admin_client.post(url("change", task.pk), {"task_name": "changed"})
    assert response.status_code == 403
    task.refresh_from_db()
    assert task.task_name == "echo"


def test_buttons_follow_permissions():
    running, ended = make(TaskStatus.PROCESS), make(TaskStatus.SUCCESS)
    client = staff("view_task")
    assert url("cancel", running.pk) not in text(client.get(url("change", running.pk)))
    assert "Retry as a new task" not in text(client.get(url("change", ended.pk)))
    assert client.get(url("cancel", running.pk)).status_code == 403
    assert client.post(url("cancel", running.pk), {"reason": "x"}).status_code == 403
    assert client.post(url("retry", ended.pk)).status_code == 403
    running.refresh_from_db()
    assert running.cancel_requested_at is None
    assert Task.objects.count() == 2


def test_date_hierarchy_probes_the_index_and_finds_what_django_finds(
    admin_client, django_assert_max_num_queries
):
    base = timezone.now().replace(month=3, day=1, hour=12)
    for days in (0, 2, 2, 27, 40, 400):
        make(created_at=base + timedelta(days=days))
    probed = ProbedDatesQuerySet(Task)
    in_march = {"created_at__year": base.year, "created_at__month": 3}
    cases = [
        (probed, "year"),
        (probed, "month"),
        (probed, "day"),  # more than MAX_PROBES days: Django's own query
        (probed.filter(**in_march), "day"),
        (probed.filter(created_at__year=base.year), "month"),
    ]
    for zone, (queryset, kind) in itertools.product(["UTC", "America/New_York"], cases):
        with timezone.override(zone):
            expected = Task.objects.filter(queryset.query.where).datetimes("created_at", kind)
            assert list(queryset.datetimes("created_at", kind)) == list(expected), (zone, kind)
    with django_assert_max_num_queries(2):
        days = probed.filter(**in_march).datetimes("created_at", "day")
    assert [day.day for day in days] == [1, 3, 28]
    page = text(admin_client.get(reverse(CHANGELIST), {**in_march}))
    assert f"created_at__day=28&amp;created_at__month=3&amp;created_at__year={base.year}" in page
