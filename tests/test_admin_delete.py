"""Deleting tasks in the admin: never a running one, whose row would go while it runs on."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from django_qtasks import app
from django_qtasks.models import Task, TaskStatus
from tests.admin_helpers import CHANGELIST, make, messages_of, staff, text, url
from tests.conftest import wait_status

REFUSED_ONE = "cancel it first, and delete it once it has ended."


def delete_selected(client: Any, tasks: list[Task], **data: Any) -> Any:
    payload = {"action": "delete_selected", "_selected_action": [str(t.pk) for t in tasks]}
    return client.post(reverse(CHANGELIST), {**payload, **data}, follow=True)


def exists(*tasks: Task) -> list[bool]:
    return [Task.objects.filter(pk=task.pk).exists() for task in tasks]


@pytest.mark.django_db
def test_the_delete_view_refuses_a_running_task_and_says_to_cancel_it_first(admin_client):
    running = make(TaskStatus.PROCESS)
    for method in (admin_client.get, admin_client.post):
        response = method(url("delete", running.pk), {"post": "yes"}, follow=True)
        assert response.redirect_chain[-1][0] == url("change", running.pk)
        assert messages_of(response) == [
            f"Task {running.uuid} is running and was not deleted: {REFUSED_ONE}"
        ]
        assert response.context["messages"]._loaded_messages[0].tags == "error"
    assert exists(running) == [True]
    # No delete link on its page either.
    assert url("delete", running.pk) not in text(admin_client.get(url("change", running.pk)))


@pytest.mark.django_db
@pytest.mark.parametrize("status", [TaskStatus.NEW, TaskStatus.SUCCESS, TaskStatus.ERROR])
def test_the_delete_view_deletes_a_task_that_is_not_running(admin_client, status):
    task = make(status)
    assert url("delete", task.pk) in text(admin_client.get(url("change", task.pk)))
    response = admin_client.post(url("delete", task.pk), {"post": "yes"}, follow=True)
    assert response.status_code == 200
    assert exists(task) == [False]


@pytest.mark.django_db
def test_the_delete_view_still_needs_the_delete_permission():
    running, ended = make(TaskStatus.PROCESS), make(TaskStatus.SUCCESS)
    viewer = staff("view_task")
    assert viewer.post(url("delete", running.pk), {"post": "yes"}).status_code == 403
    assert viewer.post(url("delete", ended.pk), {"post": "yes"}).status_code == 403
    assert exists(running, ended) == [True, True]


@pytest.mark.django_db
def test_delete_selected_leaves_out_the_running_tasks_and_says_how_many(admin_client):
    running = [make(TaskStatus.PROCESS), make(TaskStatus.PROCESS)]
    others = [make(TaskStatus.NEW), make(TaskStatus.SUCCESS), make(TaskStatus.CANCEL)]
    selected = [*running, *others]

    confirm = delete_selected(admin_client, selected)
    page = text(confirm)
    assert messages_of(confirm) == [
        "2 running tasks were not deleted: cancel them first, and delete them once they have ended."
    ]
    # The confirmation lists (and posts back) the other three only.
    assert page.count('name="_selected_action"') == 3
    for task in running:
        assert f'value="{task.pk}"' not in page
    assert exists(*selected) == [True] * 5

    done = delete_selected(admin_client, selected, post="yes")
    assert "Successfully deleted 3 tasks." in messages_of(done)
    assert exists(*selected) == [True, True, False, False, False]


@pytest.mark.django_db
def test_delete_selected_of_running_tasks_only_is_an_error_and_deletes_nothing(admin_client):
    running = make(TaskStatus.PROCESS)
    response = delete_selected(admin_client, [running], post="yes")
    assert messages_of(response) == [f"1 running task was not deleted: {REFUSED_ONE}"]
    assert response.context["messages"]._loaded_messages[0].tags == "error"
    assert response.redirect_chain == [(reverse(CHANGELIST), 302)]  # no confirmation page
    assert exists(running) == [True]


@pytest.mark.django_db
def test_delete_selected_across_all_pages_leaves_out_the_running_tasks(admin_client):
    running, ended = make(TaskStatus.PROCESS), make(TaskStatus.ERROR)
    response = delete_selected(admin_client, [ended], select_across="1", index="0", post="yes")
    assert messages_of(response) == [
        f"1 running task was not deleted: {REFUSED_ONE}",
        "Successfully deleted 1 task.",
    ]
    assert exists(running, ended) == [True, False]


def test_a_running_task_keeps_its_row_until_it_is_cancelled_then_can_be_deleted(
    worker, admin_client
):
    task = app.add_task("async_sleeper", 120)
    wait_status(task, TaskStatus.PROCESS, timeout=60)

    refused = admin_client.post(url("delete", task.pk), {"post": "yes"}, follow=True)
    assert messages_of(refused) == [
        f"Task {task.uuid} is running and was not deleted: {REFUSED_ONE}"
    ]
    assert delete_selected(admin_client, [task], post="yes").status_code == 200
    task.refresh_from_db()
    assert task.status == TaskStatus.PROCESS

    task.cancel("to delete it", by="admin")
    assert wait_status(task, timeout=60).status == TaskStatus.CANCEL
    done = admin_client.post(url("delete", task.pk), {"post": "yes"}, follow=True)
    assert done.status_code == 200
    assert exists(task) == [False]
