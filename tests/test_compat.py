"""QTasks' Django integration, ``qtasks.contrib.django.autodiscover_tasks``, here
``django_qtasks.compat.autodiscover_tasks``: it imports the named modules of every
installed app, so that the tasks they define are registered."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator

import pytest
from django.apps import apps

from django_qtasks import app
from django_qtasks.app import TASK_MODULES
from django_qtasks.compat import QueueTasks, autodiscover_tasks
from tests.qtasks_conformance.rewrite import NAMES, port

MODULE = "tests.testapp.tasks_discovered"


@pytest.fixture(autouse=True)
def _forget_the_module() -> Iterator[None]:
    names = list(TASK_MODULES)
    sys.modules.pop(MODULE, None)
    app.unregister("discovered_hello")
    yield
    TASK_MODULES[:] = names
    sys.modules.pop(MODULE, None)
    app.unregister("discovered_hello")


def test_autodiscover_tasks_imports_the_named_modules_of_the_installed_apps():
    qtasks_app = QueueTasks()
    assert "discovered_hello" not in qtasks_app.tasks
    autodiscover_tasks(qtasks_app, ["tasks_discovered"])
    assert MODULE in sys.modules
    assert qtasks_app.tasks["discovered_hello"].func("Django") == "Hello, Django!"
    # The default, ["tasks"], is what the worker and every process import anyway.
    autodiscover_tasks(qtasks_app)
    assert "tests.testapp.tasks" in sys.modules


def test_autodiscover_tasks_before_setup_imports_them_once_the_apps_are_ready(monkeypatch):
    # QTasks' docs call it in manage.py, before Django has loaded the apps.
    monkeypatch.setattr(apps, "ready", False)
    autodiscover_tasks(QueueTasks(), ["tasks_discovered"])
    assert MODULE not in sys.modules
    monkeypatch.setattr(apps, "ready", True)
    app.autodiscover()  # what django_qtasks' AppConfig.ready() does
    assert "discovered_hello" in app.tasks


def test_the_import_of_autodiscover_tasks_is_rewritten():
    assert port("from qtasks.contrib.django import autodiscover_tasks") == (
        "from django_qtasks.compat import autodiscover_tasks\n"
    )


def test_every_name_of_the_rewrite_imports():
    for module, name in NAMES.values():
        assert getattr(importlib.import_module(module), name) is not None, (module, name)


@pytest.mark.parametrize(
    "line",
    [
        # qtasks.__all__, less __version__.
        "from qtasks import QueueTasks, AsyncRouter, SyncRouter, shared_task, Depends",
        # docs/en/components.md
        "from qtasks.plugins import BasePlugin",
        # qtasks.executors' own names, next to qtasks.executors.base's.
        "from qtasks.executors import SyncTaskExecutor, AsyncTaskExecutor",
    ],
)
def test_qtasks_public_imports_have_a_rewrite(line):
    ported = port(line)
    assert "qtasks." not in ported.replace("django_qtasks.", "")
    exec(ported, {})
