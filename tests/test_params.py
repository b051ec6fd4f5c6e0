"""End-to-end: every decorator parameter, for sync and async functions and generators.

Each test enqueues tasks here and lets the shared real worker process (queues
default and other) run them, then checks what a user sees on the Task record.
Most tests run the same check on a quartet of tasks from
tests/testapp/tasks_params.py: ``<prefix>_sync``, ``_async``, ``_sync_gen``
and ``_async_gen``, all enqueued at once so they also run side by side.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from django_qtasks import AsyncTask, SyncTask, app
from django_qtasks.models import Task, TaskStatus
from tests.conftest import wait_status, wait_until
from tests.testapp import tasks, tasks_params
from tests.testapp.tasks_params import KINDS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker")]

GENERATORS = ("sync_gen", "async_gen")


def run_each(prefix: str, *args: Any, **kwargs: Any) -> dict[str, Task]:
    """Enqueue ``<prefix>_<kind>`` for every kind at once; return the ended records."""
    queued = {kind: app.add_task(f"{prefix}_{kind}", *args, **kwargs) for kind in KINDS}
    return {kind: wait_status(record) for kind, record in queued.items()}


def seconds(record: Task) -> float:
    assert record.started_at is not None
    assert record.finished_at is not None
    return (record.finished_at - record.started_at).total_seconds()


def attempt_statuses(record: Task) -> list[tuple[int, str]]:
    return [(entry["attempt"], entry["status"]) for entry in record.attempt_log]


# name ---------------------------------------------------------------------------------


def test_name_registers_and_runs_the_task_under_that_name():
    for kind in KINDS:
        handle = getattr(tasks_params, f"params_options_{kind}")
        assert handle.task_name == f"params.options.{kind}"
        assert app.tasks[f"params.options.{kind}"] is handle
        assert f"params_options_{kind}" not in app.tasks
    done = {kind: wait_status(app.add_task(f"params.options.{kind}", "v")) for kind in KINDS}
    for kind, record in done.items():
        assert record.status == TaskStatus.SUCCESS, (kind, record.traceback)
        assert record.task_name == f"params.options.{kind}"
        report = record.returning if kind not in GENERATORS else record.returning[1]
        assert report["task_name"] == report["ctx_task_name"] == f"params.options.{kind}"


# echo ----------------------------------------------------------------------------------


def test_echo_true_passes_self_and_echo_false_passes_only_the_arguments():
    with_self = {kind: app.add_task(f"params.options.{kind}", {"x": 1}) for kind in KINDS}
    # Declared without echo: given self as well, the function would get one
    # argument too many and the task would end in error.
    plain = run_each("params_plain", 1, b=[2])
    for kind, record in plain.items():
        assert record.status == TaskStatus.SUCCESS, (kind, record.traceback)
        assert record.returning == [1, [2]], kind
    expected_class = {
        "sync": SyncTask,
        "async": AsyncTask,
        "sync_gen": SyncTask,
        "async_gen": AsyncTask,
    }
    for kind, record in with_self.items():
        record = wait_status(record)
        assert record.status == TaskStatus.SUCCESS, (kind, record.traceback)
        value, report = (
            (record.returning["value"], record.returning)
            if kind not in GENERATORS
            else record.returning
        )
        assert value == {"x": 1}
        assert report["class"] == expected_class[kind].__name__, kind
        assert report["echo"] is True


# priority, tags, description, extra keywords ---------------------------------------------


def test_priority_tags_description_and_extra_are_stored_and_seen_by_self():
    default = {kind: app.add_task(f"params.options.{kind}", "d") for kind in KINDS}
    urgent = {kind: app.add_task(f"params.options.{kind}", "u", priority=-3) for kind in KINDS}
    descriptions = {
        "sync": "Sync options",
        "async": "Async options, described by this docstring.",
        "sync_gen": "Sync generator options",
        "async_gen": "Async generator options",
    }
    for kind in KINDS:
        for record, priority in ((default[kind], 4), (urgent[kind], -3)):
            assert record.priority == priority  # stored at once, before any run
            record = wait_status(record)
            assert record.status == TaskStatus.SUCCESS, (kind, record.traceback)
            assert record.priority == priority, kind  # the per-call value is kept
            assert record.tags == ["params", "options"]
            assert record.extra == {"owner": "team-a", "limits": {"rows": 10}}
            assert record.queue == "default"
            assert record.max_attempts == 3  # retry=2
            report = record.returning if kind not in GENERATORS else record.returning[1]
            assert report["priority"] == 4, kind  # self has the declared priority
            assert report["tags"] == ["params", "options"]
            assert report["extra"] == {"owner": "team-a", "limits": {"rows": 10}}
            assert report["description"] == descriptions[kind]
            assert report["queue"] is None
            assert report["max_time"] == 30
            assert report["retry"] == 2
            assert report["retry_on_exc"] == ["KeyError", "ValueError"]


def test_description_defaults_to_the_docstring_first_line_or_none():
    assert (
        tasks.sync_busy.description
        == "Ignores cancel requests: never calls ctx.sleep (pure Python loop)."
    )
    assert tasks.echo.description is None
    assert tasks_params.params_options_async.description == (
        "Async options, described by this docstring."
    )


# max_time ---------------------------------------------------------------------------------


def test_max_time_ends_sync_and_async_tasks_as_error_saying_max_time(worker):
    # 100 steps of 0.1 s against max_time=0.5; plus a sync busy loop that never
    # calls ctx.sleep (stopped by interruption) and an async plain sleep.
    queued = {kind: app.add_task(f"params_max_time_{kind}", 100) for kind in KINDS}
    queued["sync busy loop"] = tasks.sync_too_slow.add_task()
    queued["async plain sleep"] = tasks.async_too_slow.add_task()
    for kind, record in queued.items():
        record = wait_status(record, timeout=15)
        assert record.status == TaskStatus.ERROR, (kind, record.status)
        assert "max_time of 0.5s" in record.traceback.strip().splitlines()[-1], kind
        assert record.returning is None
        assert record.attempts == 1
        assert 0.4 < seconds(record) < 5, (kind, seconds(record))
        worker.wait_for_log(f"Task {record.uuid} ({record.task_name}) failed after")


def test_task_that_ends_within_max_time_succeeds():
    done = run_each("params_max_time", 2)
    for kind, record in done.items():
        assert record.status == TaskStatus.SUCCESS, (kind, record.traceback)
        assert record.returning == ("in time" if kind not in GENERATORS else [0, 1])


# retry and retry_on_exc ----------------------------------------------------------------------


def test_retry_records_every_attempt_and_keeps_args_kwargs_extra_and_priority():
    # retry_on_exc=[LookupError]: KeyError is a subclass, so it is retried.
    done = run_each("params_flaky", 2, exc="KeyError", priority=7)
    for kind, record in done.items():
        assert record.status == TaskStatus.SUCCESS, (kind, record.traceback)
        assert record.returning == ("a3" if kind not in GENERATORS else ["a3-start", "a3-end"])
        assert record.attempts == 3
        assert attempt_statuses(record) == [(1, "retry"), (2, "retry"), (3, "success")]
        assert [entry["error"] for entry in record.attempt_log] == [
            "KeyError: 'attempt 1'",
            "KeyError: 'attempt 2'",
            "",
        ]
        # The log of every attempt is kept, in order.
        messages = [line["message"] for line in record.logs]
        assert messages == ["attempt 1", "attempt 2", "attempt 3"], kind
        # What the caller gave is what every attempt got, and still on the record.
        assert record.args == [2]
        assert record.kwargs == {"exc": "KeyError"}
        assert record.priority == 7
        assert record.extra == {"flavour": "flaky"}


def test_retry_gives_up_after_retry_more_attempts_with_the_last_error():
    # IndexError: another LookupError subclass.
    done = run_each("params_flaky", 10, exc="IndexError")
    for kind, record in done.items():
        assert record.status == TaskStatus.ERROR, kind
        assert record.attempts == 3
        assert record.max_attempts == 3
        assert attempt_statuses(record) == [(1, "retry"), (2, "retry"), (3, "error")]
        assert record.traceback.strip().splitlines()[-1] == "IndexError: attempt 3", kind
        assert record.finished_at is not None


def test_exception_not_listed_in_retry_on_exc_is_not_retried():
    done = run_each("params_flaky", 10, exc="ValueError")
    for kind, record in done.items():
        assert record.status == TaskStatus.ERROR, kind
        assert record.attempts == 1, kind
        assert attempt_statuses(record) == [(1, "error")]
        assert record.traceback.strip().splitlines()[-1] == "ValueError: attempt 1"


def test_retry_without_retry_on_exc_retries_any_exception():
    done = run_each("params_retry_any")
    for kind, record in done.items():
        assert record.status == TaskStatus.ERROR, kind
        assert record.attempts == 3, kind
        assert attempt_statuses(record) == [(1, "retry"), (2, "retry"), (3, "error")]
        assert {entry["error"] for entry in record.attempt_log} == {"ZeroDivisionError: always"}


# decode -------------------------------------------------------------------------------------


def test_decode_is_applied_to_the_result_before_it_is_stored():
    done = run_each("params_decode", [1, "two"])
    for kind, record in done.items():
        assert record.status == TaskStatus.SUCCESS, (kind, record.traceback)
        # A generator's result is the list of its items.
        assert record.returning == 'list:[1, "two"]', kind
    # decode=json.dumps gives JSON text: the value it encodes is stored, as QTasks gives it back.
    assert wait_status(tasks.decoded.add_task()).returning == {"a": 1}


def test_failing_decode_is_an_error_that_says_so_and_is_not_retried():
    done = run_each("params_decode", [1, "explode"])
    done["sync (tasks.bad_decode)"] = wait_status(tasks.bad_decode.add_task())
    for kind, record in done.items():
        assert record.status == TaskStatus.ERROR, kind
        assert record.returning is None
        assert record.attempts == 1, kind  # retry=2, but decoding again would fail again
        last = record.traceback.strip().splitlines()[-1]
        assert "decode=" in last, (kind, last)
        assert "failed on the task's result" in last, (kind, last)
    assert "cannot decode an explosion" in done["sync"].traceback
    assert "describe" in done["async_gen"].traceback


# generate_handler ------------------------------------------------------------------------------


def test_generate_handler_sync_or_async_turns_each_item_and_the_list_is_stored():
    queued = {
        "sync gen, sync handler": (tasks.sync_gen.add_task(3), [0, 10, 20]),
        "sync gen, async handler": (
            tasks_params.params_gen_sync_ahandler.add_task(3),
            ["item-0", "item-1", "item-2"],
        ),
        "async gen, async handler": (
            app.add_task("async_gen", 3),
            ["item-0", "item-1", "item-2"],
        ),
        "async gen, sync handler": (
            app.add_task("params_gen_async_handler", 3),
            [0, 10, 20],
        ),
    }
    for label, (record, expected) in queued.items():
        record = wait_status(record)
        assert record.status == TaskStatus.SUCCESS, (label, record.traceback)
        assert record.returning == expected, label


def test_generator_progress_is_visible_in_returning_while_it_runs():
    count = 5
    slow = {
        "sync": (tasks_params.params_slow_gen_sync.add_task(count, 0.3), [0, 10, 20, 30, 40]),
        "async": (
            tasks_params.params_slow_gen_async.add_task(count, 0.3),
            [f"item-{number}" for number in range(count)],
        ),
    }
    progress: dict[str, Any] = {}

    def every_one_has_partial_progress() -> bool:
        for kind, (record, _) in slow.items():
            if kind not in progress:
                record.refresh_from_db()
                if record.status == TaskStatus.PROCESS and record.returning:
                    progress[kind] = record.returning
        return len(progress) == len(slow)

    wait_until(every_one_has_partial_progress, 10, "progress of both generators")
    for kind, (record, expected) in slow.items():
        # Seen while the task was still in process: part of the list, handled.
        assert 0 < len(progress[kind]) < count, (kind, progress[kind])
        assert progress[kind] == expected[: len(progress[kind])], kind
        record = wait_status(record)
        assert record.status == TaskStatus.SUCCESS, (kind, record.traceback)
        assert record.returning == expected


# executor --------------------------------------------------------------------------------------


def test_executor_subclass_given_to_the_decorator_runs_the_task():
    done = run_each("params_executor", "x")
    for kind, record in done.items():
        assert record.status == TaskStatus.SUCCESS, (kind, record.traceback)
        assert record.returning == {
            "executor": "StampingExecutor",
            "task": f"params_executor_{kind}",
            "result": ["x", "StampingExecutor"],
        }, kind


# middlewares_before / middlewares_after ----------------------------------------------------------


def test_middlewares_before_and_after_sync_and_async_run_in_order():
    done = run_each("params_mw", 3)
    names = ["add_one", "atimes_two", "keep_arguments", "wrap_after", "awrap_after"]
    for kind, record in done.items():
        assert record.status == TaskStatus.SUCCESS, (kind, record.traceback)
        # before: (3 + 1) * 2, and each middleware saw the one before it.
        if kind in GENERATORS:
            inner: Any = [8, ["add_one", "atimes_two"], names]
        else:
            inner = {"value": 8, "seen_by": ["add_one", "atimes_two"], "middlewares": names}
        # after: wrap_after first, then awrap_after (which sees the run's ctx).
        assert record.returning == {
            "awrap_after": str(record.uuid),
            "result": {"wrap_after": f"params_mw_{kind}", "result": inner},
        }, kind
        # The stored arguments are the caller's, not the middlewares'.
        assert record.args == [3]
        assert record.kwargs == {}
    assert wait_status(tasks.with_middlewares.add_task(4)).returning == 10


# queue ----------------------------------------------------------------------------------------


def test_task_declared_on_another_queue_runs_there():
    done = run_each("params_queue")
    for kind, record in done.items():
        assert record.status == TaskStatus.SUCCESS, (kind, record.traceback)
        assert record.queue == "other"
        assert record.returning == ["other", "other"], kind
    moved = wait_status(tasks.async_echo.add_task("moved", queue="other"))
    assert (moved.status, moved.queue, moved.returning) == (TaskStatus.SUCCESS, "other", "moved")


def test_task_on_a_queue_no_worker_serves_stays_new():
    declared = tasks_params.params_unserved_queue.add_task()
    per_call = tasks.echo.add_task("x", queue="params-nobody")
    assert (declared.queue, per_call.queue) == ("params-nobody", "params-nobody")
    # The worker is alive and polling: tasks enqueued after these run, twice over.
    for _ in range(2):
        control = wait_status(tasks.echo.add_task("control"))
        assert control.status == TaskStatus.SUCCESS
    time.sleep(0.3)
    for record in (declared, per_call):
        record.refresh_from_db()
        assert record.status == TaskStatus.NEW
        assert (record.attempts, record.worker, record.started_at) == (0, "", None)


# results that are not JSON ---------------------------------------------------------------------


def test_result_that_is_not_json_is_an_error_with_a_clear_message():
    done = run_each("params_not_json")
    done["sync (tasks.not_json)"] = wait_status(tasks.not_json.add_task())
    for kind, record in done.items():
        assert record.status == TaskStatus.ERROR, kind
        assert record.returning is None
        assert record.attempts == 1, kind  # retry=2, but it would fail the same way
        last = record.traceback.strip().splitlines()[-1]
        assert "The task's result is not JSON" in last, (kind, last)
        assert "decode=" in last


def test_generator_yielding_non_json_fails_alone_and_others_keep_their_progress():
    bad = tasks_params.params_slow_not_json_gen.add_task(6, 0.2)
    wait_status(bad, TaskStatus.PROCESS)
    good = tasks_params.params_slow_gen_sync.add_task(6, 0.2)
    wait_until(
        lambda: good.refresh_from_db() or (good.status == "process" and bool(good.returning)),
        10,
        "progress of the JSON generator",
    )
    bad, good = wait_status(bad), wait_status(good)
    assert good.status == TaskStatus.SUCCESS
    assert good.returning == [0, 10, 20, 30, 40, 50]
    assert bad.status == TaskStatus.ERROR
    assert "The task's result is not JSON" in bad.traceback
