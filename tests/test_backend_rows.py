"""Hand-written django.tasks rows: the worker imports nothing that a row names at will.

A row marked ``extra={"django_task": ...}`` names a module path in ``task_name``.
The worker only looks it up in modules already imported or of installed apps.
"""

from __future__ import annotations

import uuid

import pytest

pytest.importorskip("django.tasks")  # Django 6+

from django_qtasks import app
from django_qtasks.backends.results import importable, marker
from django_qtasks.models import Task, TaskStatus
from tests.conftest import wait_status, wait_until


def hand_written(task_name: str, *args: object) -> Task:
    return app.submit(Task(task_name=task_name, args=list(args), extra=marker("default")))


def test_a_row_naming_a_module_outside_the_installed_apps_is_refused_without_importing_it(
    worker,
):
    # "this" prints the Zen of Python when it is imported.
    record = wait_status(hand_written("this.s"), timeout=60)
    assert record.status == TaskStatus.ERROR
    assert (
        f"Task {record.uuid} runs the django.tasks task 'this.s', which was refused: a "
        "django.tasks task must be defined in a module of an installed app (or one already "
        "imported), and this module is neither. Nothing was imported."
    ) in record.traceback
    warning = (
        f"Task {record.uuid} names the django.tasks task 'this.s', whose module is neither "
        "imported nor part of an installed app: refused, nothing imported."
    )
    wait_until(lambda: warning in worker.log, timeout=30, message="the refusal in the log")
    assert "WARNING" in next(line for line in worker.log.splitlines() if warning in line)
    assert "Beautiful is better than ugly" not in worker.log


def test_a_row_naming_a_function_of_an_imported_module_is_refused_without_running_it(
    worker, tmp_path
):
    target = tmp_path / f"created-{uuid.uuid4().hex}"
    record = wait_status(hand_written("subprocess.run", ["touch", str(target)]), timeout=60)
    assert record.status == TaskStatus.ERROR
    assert "'subprocess.run', which is a function, not a django.tasks Task" in record.traceback
    assert not target.exists()


def test_a_row_of_a_django_task_of_an_installed_app_runs(worker):
    record = wait_status(hand_written("tests.testapp.django_tasks.add", 2, 3), timeout=60)
    assert (record.status, record.returning) == (TaskStatus.SUCCESS, 5)


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("tests.testapp.django_tasks.add", True),  # an installed app's module
        ("django_qtasks.no_such_module.task", True),  # an installed app: import says if not
        ("os.system", True),  # imported already: no code runs (and it is no Task)
        ("this.s", False),
        ("antigravity.geohash", False),
        ("tests_testapp_lookalike.tasks.add", False),  # not under "tests.testapp."
        ("add", False),
        ("", False),
    ],
)
def test_which_paths_may_be_imported(path, allowed):
    assert importable(path) is allowed
