"""``QTasksApp.handle_for`` (how a worker finds what runs a row), and the backend on Django < 6."""

from __future__ import annotations

import re

import django
import pytest

from django_qtasks import app
from django_qtasks.models import Task
from tests.testapp import tasks

OLD_DJANGO = pytest.mark.skipif(
    django.VERSION >= (6, 0), reason="Django 6+ has django.tasks: see tests/test_backend.py"
)


def test_handle_for_finds_registered_tasks_by_name():
    assert app.handle_for(Task(task_name="echo")) is tasks.echo
    assert app.handle_for(Task(task_name="no.such.task")) is None


@OLD_DJANGO
def test_importing_the_backend_says_plainly_that_it_needs_django_6():
    version = re.escape(django.get_version())
    message = rf"needs Django 6\.0 or later; this project runs Django {version}"
    with pytest.raises(ImportError, match=message):
        import django_qtasks.backends  # noqa: F401


@OLD_DJANGO
def test_a_django_tasks_row_on_old_django_gets_the_same_message():
    record = Task(task_name="myapp.tasks.send", extra={"django_task": {"backend": "default"}})
    with pytest.raises(ImportError, match=r"needs Django 6\.0 or later"):
        app.handle_for(record)
