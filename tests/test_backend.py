"""django.tasks through QTasksBackend: Django's documented behaviour, end to end.

Tasks are written with ``from django.tasks import task``
(tests/testapp/django_tasks.py) and run by a real ``qtasks_worker``; TASKS
is set in tests/settings.py, which the worker processes read too.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import django
import pytest

if django.VERSION < (6, 0):
    pytest.skip(
        "django.tasks needs Django 6.0+ (tests/test_backend_old_django.py covers older ones)",
        allow_module_level=True,
    )

from asgiref.sync import async_to_sync
from django.core.checks import Error
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import transaction
from django.tasks import TaskResultStatus, task_backends
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist, TaskResultMismatch
from django.tasks.signals import task_enqueued
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from django_qtasks import app
from django_qtasks.backends import QTasksBackend
from django_qtasks.backends.results import exception_class_path, marker
from django_qtasks.exceptions import TaskArgumentsError, TaskSignatureError, UnknownTask
from django_qtasks.models import Task, TaskStatus
from tests.conftest import run_worker, wait_status, wait_until
from tests.testapp import django_tasks, tasks_backend

NEEDS_61 = pytest.mark.skipif(
    django.VERSION < (6, 1), reason="extra @task keywords reach the backend from Django 6.1"
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def row(result: Any) -> Task:
    return Task.objects.get(pk=result.id)


def finished(result: Any, timeout: float = 20) -> Any:
    """Wait for the worker to end the task, then read its TaskResult afresh."""
    wait_status(row(result), timeout=timeout)
    return result.task.get_result(result.id)


def burst_worker(*args: str) -> subprocess.CompletedProcess[str]:
    return run_worker("--burst", *args)


# Enqueue, run, read the result ------------------------------------------------------


def test_enqueue_runs_on_the_worker_and_get_result_reads_the_row(worker):
    before = timezone.now()
    result = django_tasks.add.enqueue(2, 3)

    assert result.status == TaskResultStatus.READY
    assert result.backend == "default"
    assert result.args == [2, 3]
    assert result.kwargs == {}
    assert result.worker_ids == []
    assert result.attempts == 0
    assert result.enqueued_at >= before
    assert result.started_at is result.finished_at is result.last_attempted_at is None
    with pytest.raises(ValueError, match="not finished yet"):
        _ = result.return_value
    record = row(result)
    assert record.task_name == "tests.testapp.django_tasks.add"
    assert record.extra == {"django_task": {"backend": "default"}}
    assert (record.queue, record.priority, record.max_attempts) == ("default", 0, 1)

    done = finished(result)
    record.refresh_from_db()
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.return_value == 5
    assert done.id == str(record.uuid)
    assert done.worker_ids == [record.worker]
    assert done.attempts == record.attempts == 1
    assert done.errors == []
    assert done.enqueued_at == record.created_at
    assert done.started_at == done.last_attempted_at == record.started_at
    assert done.finished_at == record.finished_at
    # (Not enqueued_at <= started_at: a claim is stamped just before its query runs.)
    assert done.started_at <= done.finished_at
    # refresh() updates the result the caller holds.
    result.refresh()
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 5)
    assert default_task_backends_get(result.id).return_value == 5


def default_task_backends_get(result_id: str) -> Any:
    return task_backends["default"].get_result(result_id)


def test_aenqueue_and_aget_result_with_an_async_task(worker):
    async def scenario() -> tuple[Any, Any]:
        result = await django_tasks.async_add.aenqueue(20, 22)
        deadline = time.monotonic() + 20
        while not result.is_finished and time.monotonic() < deadline:
            await result.arefresh()
        again = await django_tasks.async_add.aget_result(result.id)
        return result, again

    # async_to_sync from the test's thread: the ORM work runs in this thread,
    # on the connection that sees the test database.
    result, again = async_to_sync(scenario)()
    assert result.status == again.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == again.return_value == 42
    assert row(result).task_name == "tests.testapp.django_tasks.async_add"


def test_return_values_are_normalised_to_json_like_djangos_backends(worker):
    done = finished(django_tasks.returns_tuple.enqueue())
    assert done.return_value == [1, "two"]


def test_get_result_of_another_task_is_a_mismatch(worker):
    result = django_tasks.add.enqueue(1, 1)
    with pytest.raises(TaskResultMismatch):
        django_tasks.double.get_result(result.id)
    finished(result)


# run_after and priority -----------------------------------------------------------


def test_run_after_defers_the_task(worker):
    run_after = timezone.now() + timedelta(seconds=5)
    result = django_tasks.add.using(run_after=run_after).enqueue(1, 2)
    assert result.task.run_after == run_after
    assert row(result).run_after == run_after

    # Read before its time (as a busy machine may make the test late, the
    # time is checked after the read): still waiting.
    status = result.task.get_result(result.id).status
    if timezone.now() < run_after:
        assert status == TaskResultStatus.READY
    done = finished(result)
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.started_at >= run_after
    assert done.task.run_after == run_after


def test_run_after_must_be_timezone_aware():
    with pytest.raises(InvalidTask, match="aware datetime"):
        django_tasks.add.using(run_after=datetime(2030, 1, 1))


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_higher_django_priority_runs_first():
    queue = unique("django-prio")
    # Django's scale: -100..100, higher first. Ours: lower first, so ours = -Django's.
    plan = [("p-5", -5), ("p10", 10), ("p0", 0), ("p100", 100), ("p-100", -100), ("p10-b", 10)]
    for label, priority in plan:
        result = django_tasks.record_order.using(
            backend="flexible", queue_name=queue, priority=priority
        ).enqueue(label)
        assert row(result).priority == -priority
        assert result.task.priority == priority

    process = burst_worker("--queues", queue, "--concurrency", "1")
    assert process.returncode == 0, process.stderr

    done = list(Task.objects.filter(queue=queue).order_by("started_at"))
    assert [task.returning for task in done] == ["p100", "p10", "p10-b", "p0", "p-5", "p-100"]
    # The result reads the priority back on Django's scale.
    first = task_backends["flexible"].get_result(str(done[0].uuid))
    assert first.task.priority == 100
    assert first.task.queue_name == queue


def test_priority_outside_djangos_range_is_refused():
    with pytest.raises(InvalidTask, match="between -100 and 100"):
        django_tasks.add.using(priority=101)


# takes_context, errors, retries -------------------------------------------------------


def test_takes_context_gets_djangos_task_context_with_the_attempt(worker):
    # The "flexible" backend has OPTIONS RETRY=1: the first attempt fails, the second runs.
    result = django_tasks.context_report.using(backend="flexible").enqueue(True)
    record = row(result)
    assert record.max_attempts == 2
    assert record.tags == ["via-django-tasks"]

    done = finished(result)
    record.refresh_from_db()
    assert done.status == TaskResultStatus.SUCCESSFUL
    report = done.return_value
    assert report["context"] == "TaskContext"
    assert report["attempt"] == 2
    assert report["id"] == result.id
    assert report["status"] == "RUNNING"
    assert report["args"] == [True]  # the context is not one of the task's arguments
    assert len(report["worker_ids"]) == 2
    assert done.attempts == record.attempts == 2
    assert done.worker_ids == [entry["worker"] for entry in record.attempt_log]
    # The first attempt's failure stays in errors, as a one-line summary.
    assert [error.exception_class_path for error in done.errors] == [
        "tests.testapp.django_tasks.Boom"
    ]
    assert done.errors[0].traceback == "tests.testapp.django_tasks.Boom: the first attempt fails"
    assert done.started_at < done.last_attempted_at


def test_an_async_task_takes_context_too(worker):
    done = finished(django_tasks.async_context_report.enqueue("x"))
    assert done.return_value == {"attempt": 1, "id": done.id, "value": "x"}


def test_a_failing_task_is_failed_with_its_exception_and_traceback(worker):
    result = django_tasks.fails.enqueue("it broke")
    done = finished(result)

    assert done.status == TaskResultStatus.FAILED
    assert row(result).status == TaskStatus.ERROR
    with pytest.raises(ValueError, match="Task failed"):
        _ = done.return_value
    [error] = done.errors
    assert error.exception_class_path == "tests.testapp.django_tasks.Boom"
    assert error.exception_class is django_tasks.Boom
    assert error.traceback.startswith("Traceback (most recent call last):")
    assert "raise Boom(message)" in error.traceback
    assert error.traceback.rstrip().endswith("tests.testapp.django_tasks.Boom: it broke")
    assert done.attempts == 1


def test_a_return_value_that_is_not_json_fails_the_task(worker):
    done = finished(django_tasks.returns_object.enqueue())
    assert done.status == TaskResultStatus.FAILED
    assert done.errors[0].exception_class_path == "django_qtasks.exceptions.ResultError"
    assert "Unsupported type" in done.errors[0].traceback


def test_a_row_whose_function_is_gone_fails_with_a_clear_error(worker):
    record = app.submit(
        Task(
            task_name="tests.testapp.django_tasks.no_such_task",
            extra={"django_task": {"backend": "default"}},
        )
    )
    record = wait_status(record)
    assert record.status == TaskStatus.ERROR
    assert "django_qtasks.exceptions.UnknownTask" in record.traceback
    assert "'tests.testapp.django_tasks.no_such_task', which cannot be imported" in (
        record.traceback
    )


def test_a_row_whose_path_is_not_a_django_task_is_refused():
    record = Task(task_name="tests.testapp.tasks.echo", extra=marker("default"))
    with pytest.raises(UnknownTask, match=r"which is a SyncTask, not a django\.tasks Task"):
        app.handle_for(record)


def test_a_row_of_an_alias_that_is_not_ours_in_the_worker_is_refused():
    from django_qtasks.backends.runner import django_task_handle

    tasks = {
        "default": {"BACKEND": "django_qtasks.backends.QTasksBackend"},
        "immediate": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"},
    }
    record = Task(task_name="tests.testapp.django_tasks.add", extra=marker("immediate"))
    with (
        override_settings(TASKS=tasks),
        pytest.raises(
            ImproperlyConfigured, match=r"TASKS\['immediate'\], which is ImmediateBackend"
        ),
    ):
        django_task_handle(app, record)


def test_exception_class_paths_from_tracebacks_and_summaries():
    chained = (
        'Traceback (most recent call last):\n  File "a.py", line 1, in f\n    g()\n'
        "KeyError: 'x'\n\nDuring handling of the above exception, another exception "
        'occurred:\n\nTraceback (most recent call last):\n  File "a.py", line 3, in f\n'
        "    raise Boom\npkg.mod.Boom: two\nlines"
    )
    assert exception_class_path(chained) == "pkg.mod.Boom"
    assert exception_class_path("KeyError: 'attempt 1'") == "builtins.KeyError"
    assert exception_class_path("ValueError") == "builtins.ValueError"
    dead = "Worker host:1:abc stopped sending heartbeats while running this task."
    assert exception_class_path(dead) == "django_qtasks.exceptions.QTasksError"


# Cancel -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_task_cancelled_while_queued_reads_as_failed_with_the_reason():
    # A queue no worker serves: the task waits until it is cancelled.
    result = django_tasks.add.using(backend="flexible", queue_name=unique("idle")).enqueue(1, 2)
    assert app.get(result.id).cancel("not needed any more", by="tester")

    done = result.task.get_result(result.id)
    assert done.status == TaskResultStatus.FAILED
    assert done.is_finished
    assert done.attempts == 0
    assert done.started_at is None
    [error] = done.errors
    assert error.exception_class_path == "django_qtasks.exceptions.TaskCancel"
    assert error.traceback == "Cancelled by tester: not needed any more"
    assert done.finished_at == row(result).finished_at


def test_a_running_task_cancelled_from_outside_reads_as_failed(worker):
    result = django_tasks.sleeper.enqueue(30)
    record = wait_status(row(result), TaskStatus.PROCESS)
    assert result.task.get_result(result.id).status == TaskResultStatus.RUNNING
    assert record.cancel()

    done = finished(result)
    assert row(result).status == TaskStatus.CANCEL
    assert done.status == TaskResultStatus.FAILED
    assert [(e.exception_class_path, e.traceback) for e in done.errors] == [
        ("django_qtasks.exceptions.TaskCancel", "Cancelled (no reason given)")
    ]
    assert done.worker_ids == [record.worker]


# Signals ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_task_enqueued_is_sent_with_the_result():
    received = []

    def on_enqueued(sender: type, task_result: Any, **kwargs: Any) -> None:
        received.append((sender, task_result.id, task_result.status))

    task_enqueued.connect(on_enqueued)
    try:
        result = django_tasks.add.enqueue(1, 2)
    finally:
        task_enqueued.disconnect(on_enqueued)
    assert received == [(QTasksBackend, result.id, TaskResultStatus.READY)]


@pytest.mark.parametrize(
    ("fail", "finish"),
    [
        (False, "finished QTasksBackend SUCCESSFUL []"),
        (True, "finished QTasksBackend FAILED ['tests.testapp.django_tasks.Boom']"),
    ],
)
def test_task_started_and_finished_are_sent_in_the_worker(worker, fail, finish):
    # Receivers in tests/testapp/tasks_backend.py write to the row: they run in a
    # task thread, where the ORM may be used, and finished sees the stored outcome.
    result = django_tasks.signals_probe.enqueue(fail)
    finished(result)
    record = row(result)
    wait_until(lambda: len(row(result).extra.get("signals", [])) == 2, message="two signals")
    record.refresh_from_db()
    assert record.extra["signals"] == [
        "started QTasksBackend RUNNING attempt 1 in qtasks-task",
        finish,
    ]
    assert tasks_backend.note_started is not None  # the receivers' module is loaded here too


def test_a_failing_receiver_is_logged_and_the_task_still_runs(worker):
    done = finished(django_tasks.upsets_a_receiver.enqueue())
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.return_value == "ran anyway"
    worker.wait_for_log("this receiver is broken")
    assert "Receiver <function broken_receiver" in worker.log
    assert f"failed for task {done.id}" in worker.log


# One admin, one table ------------------------------------------------------------------


def test_django_tasks_and_qtasks_tasks_share_the_admin_list(worker, admin_client):
    via_django = django_tasks.double.enqueue(4)
    via_qtasks = app.add_task("backend_double", 5)
    assert tasks_backend.qtasks_double.func is django_tasks.double.func
    assert finished(via_django).return_value == 8
    assert wait_status(via_qtasks).returning == 10

    page = admin_client.get(reverse("admin:django_qtasks_task_changelist")).content.decode()
    assert "tests.testapp.django_tasks.double" in page
    assert "backend_double" in page
    for task_id in (via_django.id, str(via_qtasks.uuid)):
        assert task_id[:8] in page
    # Both are cancellable and inspectable like any row: the same detail page.
    for task_id in (via_django.id, via_qtasks.uuid):
        url = reverse("admin:django_qtasks_task_change", args=[task_id])
        assert admin_client.get(url).status_code == 200


# Validation and lookups -----------------------------------------------------------------


@pytest.mark.django_db
def test_arguments_must_be_json():
    with pytest.raises(TaskArgumentsError, match=r"args\[0\]"):
        django_tasks.add.enqueue(object(), 1)
    assert not Task.objects.exists()


@pytest.mark.django_db
def test_arguments_that_do_not_fit_the_function_are_refused_at_enqueue():
    # As for every task: a TypeError naming the parameter, and no row.
    with pytest.raises(TaskSignatureError) as raised:
        django_tasks.add.enqueue(1)
    assert str(raised.value) == (
        "Arguments of task 'tests.testapp.django_tasks.add' do not fit add(a, b): missing an "
        "argument for parameter 'b'."
    )
    with pytest.raises(TaskSignatureError, match="unexpected keyword argument 'c'"):
        async_to_sync(django_tasks.async_add.aenqueue)(1, 2, c=3)
    # A takes_context task's context is the worker's to give.
    with pytest.raises(TaskSignatureError, match=r"context_report\(fail_first\): missing"):
        django_tasks.context_report.enqueue()
    assert not Task.objects.exists()
    assert row(django_tasks.context_report.enqueue(fail_first=False)).kwargs == {
        "fail_first": False
    }


@pytest.mark.django_db
def test_queue_must_be_one_of_the_backends_queues():
    with pytest.raises(InvalidTask, match="Queue 'nope' is not valid"):
        django_tasks.add.using(queue_name="nope")


@pytest.mark.django_db
def test_get_result_only_knows_this_backends_rows():
    backend = task_backends["default"]
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result("not-a-uuid")
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result(str(uuid.uuid4()))
    # A qtasks task's row, and a row of another alias, are not its results.
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result(str(app.add_task("echo", 1).uuid))
    other = django_tasks.add.using(backend="flexible").enqueue(1, 2)
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result(other.id)
    assert task_backends["flexible"].get_result(other.id).id == other.id


@pytest.mark.django_db
def test_enqueue_inside_a_transaction_is_rolled_back_with_it():
    results = []

    def enqueue_then_fail() -> None:
        with transaction.atomic():
            results.append(django_tasks.add.enqueue(1, 2))
            assert Task.objects.filter(pk=results[0].id).exists()
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError, match="rolled back"):
        enqueue_then_fail()
    assert not Task.objects.filter(pk=results[0].id).exists()


def test_capabilities():
    backend = task_backends["default"]
    assert isinstance(backend, QTasksBackend)
    assert backend.supports_defer
    assert backend.supports_async_task
    assert backend.supports_get_result
    assert backend.supports_priority


def test_backend_options_must_be_valid_on_the_task():
    import dataclasses

    for option, value, message in [
        ("retry", -1, "retry must be an int >= 0"),
        ("max_time", 0, "max_time must be a positive, finite number of seconds"),
        # As @app.task and the OPTIONS refuse them.
        ("max_time", True, "max_time must be a positive, finite number of seconds"),
        ("max_time", float("inf"), "max_time must be a positive, finite number of seconds"),
        ("retry", True, "retry must be an int >= 0"),
        ("tags", "one", "tags must be a list of strings"),
        ("retry_on_exc", [42], "retry_on_exc must list exception classes"),
        ("retry_on_exc", KeyError, "retry_on_exc must list exception classes"),
    ]:
        with pytest.raises(InvalidTask, match=message):
            dataclasses.replace(django_tasks.add, **{option: value})


# Django 6.1: our options as @task keywords ---------------------------------------------


@NEEDS_61
def test_task_keywords_carry_retry_and_tags(worker):
    result = django_tasks.flaky.enqueue(2)
    record = row(result)
    assert record.max_attempts == 3
    assert record.tags == ["billing", "urgent"]
    done = finished(result)
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.return_value == 3
    assert [error.exception_class_path for error in done.errors] == ["builtins.KeyError"] * 2


@NEEDS_61
def test_retry_on_exc_limits_what_is_retried(worker):
    done = finished(django_tasks.wrong_exception.enqueue())
    assert done.status == TaskResultStatus.FAILED
    assert done.attempts == 1
    assert done.errors[0].exception_class_path == "builtins.ValueError"


@NEEDS_61
def test_max_time_keyword_limits_the_run(worker):
    done = finished(django_tasks.too_slow.enqueue())
    assert done.status == TaskResultStatus.FAILED
    assert done.errors[0].exception_class_path == "django_qtasks.exceptions.TaskTimeout"
    assert "max_time of 0.5s" in done.errors[0].traceback


# System checks -----------------------------------------------------------------------------

BACKEND = "django_qtasks.backends.QTasksBackend"


@pytest.mark.django_db
def test_a_valid_configuration_passes_the_checks():
    call_command("check")  # tests/settings.py: two QTasks backends
    assert QTasksBackend("x", {"BACKEND": BACKEND}).check() == []


def checks_of(params: dict[str, Any]) -> list[tuple[str, str, str]]:
    backend = QTasksBackend("bad", {"BACKEND": BACKEND, **params})
    return [(error.id, error.msg, error.hint) for error in backend.check()]


def test_queues_must_be_a_list_of_names():
    [(check_id, message, hint)] = checks_of({"QUEUES": "default"})
    assert check_id == "django_qtasks.E101"
    assert message == (
        "TASKS['bad']['QUEUES'] must be a list of queue names (non-empty strings), "
        "not str 'default'."
    )
    assert '"QUEUES": ["default"]' in hint
    assert [c[0] for c in checks_of({"QUEUES": ["a", ""]})] == ["django_qtasks.E101"]
    assert checks_of({"QUEUES": []}) == []


def test_options_must_be_a_dict_of_known_keys_of_the_right_type():
    assert [c[:2] for c in checks_of({"OPTIONS": ["RETRY"]})] == [
        ("django_qtasks.E102", "TASKS['bad']['OPTIONS'] must be a dict, not list ['RETRY'].")
    ]
    [(check_id, message, hint)] = checks_of({"OPTIONS": {"RETRIES": 3}})
    assert (check_id, message) == (
        "django_qtasks.E103",
        "TASKS['bad']['OPTIONS'] has an unknown key 'RETRIES'.",
    )
    assert hint == "Did you mean 'RETRY'? The QTasks backend knows RETRY, MAX_TIME, TAGS."
    problems = checks_of({"OPTIONS": {"RETRY": -1, "MAX_TIME": True, "TAGS": "urgent"}})
    assert [c[:2] for c in problems] == [
        (
            "django_qtasks.E104",
            "TASKS['bad']['OPTIONS']['RETRY'] must be an int, 0 or more: attempts after the "
            "first that fails; got int -1.",
        ),
        (
            "django_qtasks.E104",
            "TASKS['bad']['OPTIONS']['MAX_TIME'] must be a positive number of seconds, or "
            "None: the run's time limit; got bool True.",
        ),
        (
            "django_qtasks.E104",
            "TASKS['bad']['OPTIONS']['TAGS'] must be a list of strings: tags stored with every "
            "task; got str 'urgent'.",
        ),
    ]
    assert checks_of({"OPTIONS": {"RETRY": 2, "MAX_TIME": None, "TAGS": ["a"]}}) == []


def test_the_app_must_be_installed(monkeypatch):
    from django.apps import apps

    monkeypatch.setattr(apps, "is_installed", lambda name: name != "django_qtasks")
    [(check_id, message, _)] = checks_of({})
    assert check_id == "django_qtasks.E105"
    assert "'django_qtasks' is not in INSTALLED_APPS" in message


@pytest.mark.django_db
def test_manage_py_check_reports_a_bad_backend_and_enqueue_refuses_it():
    bad = {"default": {"BACKEND": BACKEND, "QUEUES": "default", "OPTIONS": {"RETRYS": 1}}}
    with override_settings(TASKS=bad):
        with pytest.raises(SystemCheckError) as raised:
            call_command("check")
        assert "(django_qtasks.E101)" in str(raised.value)
        assert "(django_qtasks.E103)" in str(raised.value)
        assert isinstance(task_backends["default"].check()[0], Error)
        with pytest.raises(ImproperlyConfigured, match=r"\(django_qtasks\.E101\)"):
            task_backends["default"].enqueue(django_tasks.add, [1, 2], {})
