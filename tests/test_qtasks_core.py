"""QTasks' client and task API, as QTasks programs use it, against a real worker.

The tasks are in tests/testapp/tasks_qtcore.py: the async app
(``django_qtasks.asyncio``), pre-built tasks, ``decode=json.dumps``,
QTasks-shaped middlewares and executors, ``get_metadata(cache=)``,
``get_logger(name)``, ``wait_result`` and ``SyncResult``/``AsyncResult``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

import django_qtasks
from django_qtasks import QTasksApp, app
from django_qtasks.asyncio import app as async_app
from django_qtasks.models import Task, TaskStatus
from django_qtasks.results import AsyncResult, SyncResult
from django_qtasks.task import AsyncTask
from django_qtasks.task_cls import AsyncTaskCls, SyncTaskCls
from tests.conftest import wait_status
from tests.testapp import tasks, tasks_qtcore

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 60  # seconds: generous, the machine is busy


@pytest.fixture(autouse=True)
def _close_async_connections() -> Iterator[None]:
    """Close the connections that awaited database calls opened in asgiref's thread:
    the test database cannot be dropped while one is open."""
    yield
    asyncio.run(sync_to_async(connections.close_all)())


# The async app ---------------------------------------------------------------------------


def test_the_async_app_shares_the_registry_and_makes_async_tasks_only():
    assert async_app.tasks is not app.tasks  # two views ...
    assert dict(async_app.tasks) == dict(app.tasks)  # ... of one registry
    assert app.tasks["qt_named"] is tasks_qtcore.qt_async_report  # a positional name
    # Even a plain def is an AsyncTask of the async app, as in qtasks.asyncio.
    assert type(tasks_qtcore.qt_sync_in_async_app) is AsyncTask
    assert inspect.iscoroutinefunction(async_app.add_task)
    assert inspect.iscoroutinefunction(async_app.get)


def test_async_app_client_methods_are_awaited(worker):
    async def client() -> tuple[Task | None, Task | None, Task | None]:
        ended = await async_app.add_task("qt_named", "hi", timeout=WAIT)
        assert ended is not None
        again = await async_app.get(ended.uuid)
        doubled = await tasks_qtcore.qt_sync_in_async_app.add_task(4, timeout=WAIT)
        return ended, again, doubled

    ended, again, doubled = asyncio.run(client())
    assert ended is not None
    assert again is not None
    assert doubled is not None
    assert ended.status == TaskStatus.SUCCESS, ended.traceback
    assert ended.task_name == "qt_named"
    assert ended.returning == {
        "self": "AsyncTask",
        "value": "hi",
        "cached_is_same": True,  # get_metadata() reads once ...
        "fresh_is_new": True,  # ... and cache=False reads again
        "status": "process",
    }
    assert (again.uuid, again.returning) == (ended.uuid, ended.returning)
    # In the worker, a plain def of the async app runs in a thread as a SyncTask.
    assert doubled.returning == ["SyncTask", "SyncContext", 8]


def test_a_handle_of_the_async_app_is_a_coroutine_even_from_sync_code(worker):
    pending = tasks_qtcore.qt_sync_in_async_app.add_task(5)
    assert inspect.iscoroutine(pending)
    record = asyncio.run(pending)
    assert record is not None
    assert wait_status(record).returning == ["SyncTask", "SyncContext", 10]


def test_an_async_task_of_the_async_app_awaits_a_nested_add_task(worker):
    record = asyncio.run(tasks_qtcore.qt_spawner.add_task(7))
    assert record is not None
    parent = wait_status(record, timeout=WAIT)
    assert parent.status == TaskStatus.SUCCESS, parent.traceback
    child = wait_status(Task.objects.get(pk=parent.returning), timeout=WAIT)
    assert child.returning == ["SyncTask", "SyncContext", 14]


# Calling a handle ------------------------------------------------------------------------


def test_calling_a_handle_pre_builds_a_task_that_add_task_enqueues(worker):
    before = Task.objects.count()
    prebuilt = tasks.echo("Hello", timeout=WAIT)
    assert isinstance(prebuilt, SyncTaskCls)
    assert (prebuilt.task_name, prebuilt.args, prebuilt.timeout) == ("echo", ("Hello",), WAIT)
    assert Task.objects.count() == before  # nothing written, nothing run
    ended = prebuilt.add_task()
    assert ended is not None
    assert (ended.status, ended.returning) == (TaskStatus.SUCCESS, "Hello")
    # Without a timeout, add_task gives the new record at once.
    record = tasks.echo(value="later", priority=4).add_task()
    assert record is not None
    assert (record.priority, record.kwargs) == (4, {"value": "later"})
    assert wait_status(record).returning == "later"


def test_a_pre_built_task_of_the_async_app_is_awaited(worker):
    prebuilt = tasks_qtcore.qt_async_report("pre", timeout=WAIT)
    assert isinstance(prebuilt, AsyncTaskCls)
    ended = asyncio.run(prebuilt.add_task())
    assert ended is not None
    assert ended.returning["value"] == "pre"


# Results ----------------------------------------------------------------------------------


def test_decode_json_dumps_gives_back_the_value(worker):
    record = wait_status(tasks_qtcore.qt_decoded.add_task())
    assert record.status == TaskStatus.SUCCESS, record.traceback
    assert record.returning == {"a": 1}


def test_wait_result_and_sync_and_async_results(worker):
    record = tasks.echo.add_task("waited")
    assert record is not None
    ended = record.wait_result(timeout=WAIT)
    assert ended is not None
    assert (ended.status, ended.returning) == ("success", "waited")
    assert record.status == "new"  # wait_result returns a fresh record; this one is as it was
    synced = SyncResult(uuid=str(record.uuid)).result(timeout=WAIT)
    assert synced is not None
    assert synced.returning == "waited"
    awaited = asyncio.run(AsyncResult(uuid=record.uuid).result(timeout=WAIT))
    assert awaited is not None
    assert awaited.returning == "waited"
    assert asyncio.run(record.wait_result_async(timeout=WAIT)).returning == "waited"


def test_an_expired_wait_result_is_none(worker):
    record = tasks.echo.add_task("nobody", queue="tests.unserved")
    assert record is not None
    assert record.wait_result(timeout=0.2) is None
    assert asyncio.run(AsyncResult(uuid=record.uuid).result(timeout=0.2)) is None
    assert SyncResult(uuid="00000000-0000-0000-0000-000000000000").result(timeout=0.2) is None
    assert app.get(record.uuid).status == TaskStatus.NEW


# QTasks-shaped middlewares and executors ----------------------------------------------------


def test_qtasks_middlewares_change_args_and_result(worker):
    for handle in (tasks_qtcore.qt_middlewares, tasks_qtcore.qt_async_middlewares):
        record = wait_status(handle.add_task(1))
        assert record.status == TaskStatus.SUCCESS, record.traceback
        assert record.returning == {"wrapped": 11, "task": handle.task_name}


def test_qtasks_executors_run_their_steps(worker):
    sync = wait_status(tasks_qtcore.qt_sync_executor.add_task(1))
    assert sync.status == TaskStatus.SUCCESS, sync.traceback
    # The executor's middleware added 10, echo passed self, after_execute bracketed it.
    assert sync.returning == "<qt_sync_executor:11>"
    asynchronous = wait_status(tasks_qtcore.qt_async_executor.add_task(2))
    assert asynchronous.status == TaskStatus.SUCCESS, asynchronous.traceback
    assert asynchronous.returning == [2, "qt_async_executor"]


def test_qtasks_executors_are_built_with_keywords_as_qtasks_builds_them(worker):
    # QTasks' workers call executor(task_func=, task_broker=, log=, plugins=).
    record = wait_status(tasks_qtcore.qt_keywords_executor.add_task(), timeout=WAIT)
    assert record.status == TaskStatus.SUCCESS, record.traceback
    assert record.returning == [["plugins"], "qt_keywords_executor", "dict"]
    record = wait_status(tasks_qtcore.qt_keyword_only_executor.add_task(), timeout=WAIT)
    assert record.status == TaskStatus.SUCCESS, record.traceback
    assert record.returning == "qt_keyword_only_executor"


@pytest.mark.parametrize(
    ("name", "error"),
    [
        (
            "qt_two_args_executor",
            "TypeError: TwoArgs.__init__() got an unexpected keyword argument 'log'",
        ),
        ("qt_unbuildable_executor", "TypeError: this executor cannot be built"),
    ],
)
def test_an_executor_that_cannot_be_built_fails_its_task_with_its_error(worker, name, error):
    record = wait_status(app.add_task(name), timeout=WAIT)
    assert record.status == TaskStatus.ERROR
    assert error in record.traceback
    assert "is not running this task" not in record.traceback
    # The worker goes on running tasks.
    assert wait_status(tasks.echo.add_task("after")).returning == "after"


# ctx.get_logger(name) ---------------------------------------------------------------------


def test_a_named_logger_is_under_the_task_logger(worker):
    record = asyncio.run(tasks_qtcore.qt_async_report.add_task("logged", timeout=WAIT))
    assert record is not None
    assert [line["message"] for line in record.logs] == ["sub line logged"]
    worker.wait_for_log("INFO django_qtasks.task.qt_named.mailer: sub line logged")


# The app ----------------------------------------------------------------------------------


def test_app_task_takes_the_name_first():
    own = QTasksApp()

    @own.task("first_name", priority=2)
    def named() -> str:
        return "x"

    assert own.get_task("first_name") is named
    assert (named.task_name, named.priority) == ("first_name", 2)
    with pytest.raises(TypeError, match="give the name once"):
        own.task("a", name="b")


def test_app_config_reads_qtasks_names_and_keeps_what_is_set():
    config = django_qtasks.app.config
    assert config.max_tasks_process == 10  # QTASKS["CONCURRENCY"]
    assert config.result_statuses_end == ["success", "error", "cancel"]
    assert config.logs_default_level_server == logging.INFO
    assert config.default_queue == "default"  # any QTASKS key, in lower case
    own = QTasksApp().config
    own.delete_finished_tasks = True
    own.max_tasks_process = 3
    assert (own.delete_finished_tasks, own.max_tasks_process) == (True, 3)
    assert config.delete_finished_tasks is False  # each app has its own
    with pytest.raises(AttributeError):
        config.no_such_name  # noqa: B018
