"""Cancel and retry in the admin: bulk actions, one task's buttons, permissions, feedback."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from django_qtasks.models import Task, TaskStatus
from tests.admin_helpers import CHANGELIST, make, messages_of, staff, text, url

pytestmark = pytest.mark.django_db


def act(client: Any, action: str, tasks: list[Task], **data: Any) -> Any:
    payload = {"action": action, "_selected_action": [str(t.pk) for t in tasks], **data}
    return client.post(reverse(CHANGELIST), payload, follow=True)


def statuses(*tasks: Task) -> list[str]:
    return [Task.objects.get(pk=task.pk).status for task in tasks]


def test_cancel_selected_asks_for_a_reason_then_reports_what_it_did_and_could_not(admin_client):
    waiting = [make(TaskStatus.NEW), make(TaskStatus.RETRY)]
    running = make(TaskStatus.PROCESS)
    ended = make(TaskStatus.SUCCESS)
    selected = [*waiting, running, ended]

    confirm = act(admin_client, "cancel_selected", selected)
    page = text(confirm)
    assert "You selected 4 tasks." in page
    assert "3 of them have not ended and can be cancelled" in page
    assert statuses(*selected) == ["new", "retry", "process", "success"]  # nothing yet

    missing_reason = act(admin_client, "cancel_selected", selected, post="yes", reason="")
    assert "This field is required." in text(missing_reason)
    assert statuses(*selected) == ["new", "retry", "process", "success"]

    done = act(admin_client, "cancel_selected", selected, post="yes", reason="bad deploy")
    assert messages_of(done) == [
        "Cancelled 2 waiting tasks; asked 1 running task to stop (it ends as cancel at its "
        "next await or checkpoint); 1 task could not be cancelled because it had already ended."
    ]
    assert statuses(*selected) == ["cancel", "cancel", "process", "success"]
    for task in [*waiting, running]:
        task.refresh_from_db()
        assert (task.cancel_reason, task.canceled_by) == ("bad deploy", "admin")
        assert task.cancel_requested_at is not None
    assert LogEntry.objects.filter(change_message="Cancelled: bad deploy").count() == 3


def test_cancel_selected_across_all_pages_keeps_the_filter(admin_client):
    kept, cancelled = make(task_name="echo"), make(task_name="sync_sleeper")
    response = admin_client.post(
        reverse(CHANGELIST) + "?task_name=sync_sleeper",
        {
            "action": "cancel_selected",
            "select_across": "1",
            "index": "0",
            "_selected_action": [str(cancelled.pk)],
            "post": "yes",
            "reason": "all of them",
        },
        follow=True,
    )
    assert messages_of(response) == ["Cancelled 1 waiting task."]
    assert statuses(kept, cancelled) == ["new", "cancel"]


def test_cancel_of_only_ended_tasks_is_an_error_message(admin_client):
    response = act(
        admin_client, "cancel_selected", [make(TaskStatus.ERROR)], post="yes", reason="late"
    )
    assert messages_of(response) == ["1 task could not be cancelled because it had already ended."]
    assert response.context["messages"]._loaded_messages[0].tags == "error"


def test_retry_selected_makes_new_linked_tasks_and_skips_unfinished_ones(admin_client):
    failed = make(
        TaskStatus.ERROR,
        args=[1],
        kwargs={"k": "v"},
        priority=4,
        queue="other",
        tags=["t"],
        extra={"x": 1},
        max_attempts=3,
        traceback="boom",
    )
    cancelled = make(TaskStatus.CANCEL)
    running = make(TaskStatus.PROCESS)
    response = act(admin_client, "retry_selected", [failed, cancelled, running])
    assert messages_of(response) == [
        "Retried 2 tasks as new tasks; 1 task could not be retried because it has not ended yet."
    ]
    copy = Task.objects.get(retry_of=failed)
    assert (
        copy.status,
        copy.task_name,
        copy.args,
        copy.kwargs,
        copy.priority,
        copy.queue,
        copy.tags,
        copy.extra,
        copy.max_attempts,
        copy.traceback,
    ) == ("new", "echo", [1], {"k": "v"}, 4, "other", ["t"], {"x": 1}, 3, "")
    assert Task.objects.filter(retry_of=cancelled).count() == 1
    assert not Task.objects.filter(retry_of=running).exists()
    assert statuses(failed) == ["error"]  # history unchanged


def test_actions_need_their_permissions():
    task = make()
    viewer = staff("view_task")
    page = text(viewer.get(reverse(CHANGELIST)))
    assert "cancel_selected" not in page
    assert "retry_selected" not in page
    act(viewer, "cancel_selected", [task], post="yes", reason="no right")
    assert statuses(task) == ["new"]

    canceller = staff("view_task", "cancel_task")
    page = text(canceller.get(reverse(CHANGELIST)))
    assert "cancel_selected" in page
    assert "retry_selected" not in page


def test_cancel_button_asks_for_a_reason_and_records_who(admin_client):
    task = make(TaskStatus.PROCESS, worker="w1")
    form = text(admin_client.get(url("cancel", task.pk)))
    assert 'name="reason"' in form
    assert "This task is running." in form
    response = admin_client.post(url("cancel", task.pk), {"reason": "stuck"}, follow=True)
    assert response.redirect_chain[-1][0] == url("change", task.pk)
    assert messages_of(response)[0].startswith("Asked 1 running task to stop")
    task.refresh_from_db()
    assert (task.status, task.cancel_reason, task.canceled_by) == ("process", "stuck", "admin")
    assert "Cancel requested by admin" in text(response)


def test_cancel_button_on_a_waiting_task_cancels_it_at_once(admin_client):
    task = make()
    assert "never runs" in text(admin_client.get(url("cancel", task.pk)))
    admin_client.post(url("cancel", task.pk), {"reason": "not needed"})
    task.refresh_from_db()
    assert (task.status, task.cancel_reason) == ("cancel", "not needed")
    assert admin_client.post(url("cancel", task.pk), {"reason": ""}).status_code == 200


def test_cancel_button_on_an_ended_task_says_it_could_not(admin_client):
    task = make(TaskStatus.SUCCESS)
    response = admin_client.get(url("cancel", task.pk), follow=True)
    assert messages_of(response) == [
        "This task could not be cancelled because it had already ended (success)."
    ]
    response = admin_client.post(url("cancel", task.pk), {"reason": "x"}, follow=True)
    assert messages_of(response) == ["1 task could not be cancelled because it had already ended."]
    assert statuses(task) == ["success"]


def test_retry_button_opens_the_new_task(admin_client):
    task = make(TaskStatus.ERROR)
    response = admin_client.post(url("retry", task.pk), follow=True)
    copy = Task.objects.get(retry_of=task)
    assert response.redirect_chain[-1][0] == url("change", copy.pk)
    assert messages_of(response) == ["Retried 1 task as a new task."]
    assert admin_client.get(url("retry", task.pk)).status_code == 405
    running = make(TaskStatus.PROCESS)
    response = admin_client.post(url("retry", running.pk), follow=True)
    assert response.redirect_chain[-1][0] == url("change", running.pk)
    assert "has not ended yet" in messages_of(response)[0]


def test_unknown_task_is_404(admin_client):
    missing = "00000000-0000-0000-0000-000000000001"
    assert admin_client.get(url("cancel", missing)).status_code == 404
    assert admin_client.post(url("retry", missing)).status_code == 404
