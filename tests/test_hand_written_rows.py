"""Rows written by hand (or by another program) whose list columns hold what no
worker writes: each task still ends, and its admin page still shows."""

from __future__ import annotations

import pytest

from django_qtasks import app
from django_qtasks.models import Task, TaskStatus
from tests.admin_helpers import make, url
from tests.conftest import wait_status

#: Columns that the worker and the admin read as lists, holding something else.
ODD_LISTS = [{"logs": 5}, {"attempt_log": "text"}, {"chain_steps": {"task_name": "echo"}}]


@pytest.mark.django_db
@pytest.mark.parametrize("fields", ODD_LISTS)
def test_a_row_whose_lists_are_not_lists_reads_them_empty(admin_client, fields):
    task = make(TaskStatus.SUCCESS, **fields)
    [(name, _value)] = fields.items()
    assert getattr(Task.objects.get(pk=task.pk), name) == []
    assert admin_client.get(url("change", task.pk)).status_code == 200


@pytest.mark.parametrize("fields", ODD_LISTS)
def test_a_row_whose_lists_are_not_lists_runs_to_its_end(worker, fields):
    record = wait_status(app.submit(Task(task_name="echo", args=[1], **fields)), timeout=60)
    assert (record.status, record.returning) == (TaskStatus.SUCCESS, 1)
    assert not Task.objects.filter(chain_previous=record).exists()


def test_a_chain_step_without_arguments_gets_the_result_alone(worker):
    first = app.submit(Task(task_name="echo", args=[1], chain_steps=[{"task_name": "echo"}]))
    assert wait_status(first, timeout=60).status == TaskStatus.SUCCESS
    following = wait_status(Task.objects.get(chain_previous=first), timeout=60)
    assert (following.status, following.args, following.returning) == (
        TaskStatus.SUCCESS,
        [1],
        1,
    )


@pytest.mark.parametrize("step", [5, "echo", {"args": []}, {"task_name": "echo", "args": 5}])
def test_a_chain_step_that_is_no_step_ends_the_task_in_error_saying_so(worker, step):
    record = app.submit(Task(task_name="echo", args=[1], chain_steps=[step]))
    record = wait_status(record, timeout=60)
    assert record.status == TaskStatus.ERROR
    assert "The next step of the chain is not a step: " in record.traceback
    assert not Task.objects.filter(chain_previous=record).exists()
