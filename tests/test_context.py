"""End-to-end: every ``self.ctx`` method, inside real worker runs.

The probe tasks in tests/testapp/tasks_params.py come as a quartet (sync
function, async function, sync generator, async generator) and report what
the context answered; the tests check those answers against the Task records
and the worker's own log.
"""

from __future__ import annotations

from typing import Any

import pytest

from django_qtasks import app
from django_qtasks.models import Task, TaskStatus
from tests.conftest import wait_status, wait_until
from tests.testapp import tasks
from tests.testapp.tasks_params import KINDS, MISSING_UUID

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker")]

GENERATORS = ("sync_gen", "async_gen")
ASYNC = ("async", "async_gen")


def enqueue_each(prefix: str, *args: Any, **kwargs: Any) -> dict[str, Task]:
    return {kind: app.add_task(f"{prefix}_{kind}", *args, **kwargs) for kind in KINDS}


def result(kind: str, record: Task) -> Any:
    """The task's answer: a generator's is its last item."""
    assert record.status == TaskStatus.SUCCESS, (kind, record.status, record.traceback)
    return record.returning[-1] if kind in GENERATORS else record.returning


def seconds(record: Task) -> float:
    assert record.started_at is not None
    assert record.finished_at is not None
    return (record.finished_at - record.started_at).total_seconds()


def log_pairs(record: Task) -> list[tuple[str, str]]:
    return [(line["level"], line["message"]) for line in record.logs]


# task_uuid, task_name, generate_handler, get_config, get_component, get_task, get_metadata


def test_ctx_answers_inside_concurrent_runs_of_every_kind(worker):
    other = wait_status(tasks.echo.add_task({"other": True}))
    # Two runs of each kind at once: each must see its own context.
    runs = [
        (kind, record)
        for _ in range(2)
        for kind, record in enqueue_each("probe", str(other.uuid), 0.3).items()
    ]
    reports = []
    for kind, record in runs:
        record = wait_status(record)
        report = result(kind, record)
        reports.append(report)
        if kind in GENERATORS:
            assert record.returning[0] == "first"
        assert report["task_uuid"] == str(record.uuid), kind
        assert report["task_name"] == f"probe_{kind}"
        assert report["ctx_class"] == ("AsyncContext" if kind in ASYNC else "SyncContext")
        assert report["generate_handler"] == "keep_item"
        # get_config: the defaults, overridden by tests/settings.py, with the user's key.
        assert report["config"] == {
            "GREETING": "hello",
            "BROKER_URL": "django://",
            "DEFAULT_QUEUE": "default",
            "CONCURRENCY": 10,
            "POLL_INTERVAL": 0.05,
        }
        # get_component
        assert report["app_is_the_app"] is True
        assert report["app_knows_me"] is True
        assert report["broker"] == ["DatabaseBroker", "django://"]
        assert report["config_component"] == "hello"
        assert report["storage_has_me"] is True
        assert report["worker_id"] == record.worker
        assert report["worker_runs_me"] is True
        assert report["unknown_component"] == "None"  # as in QTasks
        # get_metadata: this run's record, fresh from the database.
        assert report["metadata"] == {
            "uuid": str(record.uuid),
            "status": "process",
            "attempts": 1,
            "args": [str(other.uuid), 0.3],
            "worker": record.worker,
        }
        # get_task: by UUID or str; None for a missing or malformed uuid.
        assert report["get_task_own"] == [str(record.uuid), "process"]
        assert report["get_task_other"] == ["echo", {"other": True}]
        assert report["get_task_missing"] is None
        assert report["get_task_garbage"] is None
        if kind in ASYNC:
            assert report["awaitable"] is True, "get_task/get_metadata must be awaitable"
    assert len({report["task_uuid"] for report in reports}) == 8
    assert {report["worker_id"] for report in reports} == {
        worker.log.split("Worker ")[1].split(" started")[0]
    }


def test_get_component_with_an_unknown_name_is_none_as_in_qtasks():
    record = wait_status(app.add_task("probe_unknown_component"))
    assert record.status == TaskStatus.SUCCESS
    assert record.returning is None


# get_logger -------------------------------------------------------------------------------


def test_get_logger_lines_go_to_django_logging_and_info_and_up_are_kept_on_the_record(worker):
    other = wait_status(tasks.echo.add_task(1))
    for kind, record in enqueue_each("probe", str(other.uuid), 0).items():
        record = wait_status(record)
        name = f"probe_{kind}"
        assert result(kind, record)["loggers"] == [
            f"django_qtasks.task.{name}",
            "django_qtasks.custom_probe",
        ]
        # DEBUG is not kept; a custom name (inside django_qtasks or not) is.
        assert log_pairs(record) == [
            ("INFO", f"probe {record.uuid}"),
            ("WARNING", f"custom {name}"),
            ("ERROR", f"outside {name}"),
        ], kind
        assert all(line["time"] for line in record.logs)
        # The LOGGING of tests/settings.py formats django_qtasks.* lines with
        # the logger's name: these lines went through Django's logging.
        worker.wait_for_log(f"INFO django_qtasks.task.{name}: probe {record.uuid}")
        worker.wait_for_log(f"WARNING django_qtasks.custom_probe: custom {name}")
    assert "debug lines are not kept" not in worker.log


# sleep ----------------------------------------------------------------------------------------


def test_sleep_sync_and_async_waits_then_goes_on():
    for kind, record in enqueue_each("probe_sleep", 0.4).items():
        record = wait_status(record)
        expected = "woke up" if kind not in GENERATORS else ["before", "woke up"]
        assert record.status == TaskStatus.SUCCESS, (kind, record.traceback)
        assert record.returning == expected
        assert seconds(record) >= 0.4, kind
        assert log_pairs(record) == [("INFO", "sleeping 0.4")]


def test_sleep_wakes_early_on_a_cancel_from_outside_and_the_record_keeps_its_inputs(worker):
    queued = enqueue_each("probe_sleep", 30, label="long nap", priority=6)
    for kind, record in queued.items():
        # The task's log line is saved while it still runs.
        wait_until(
            lambda record=record: (
                record.refresh_from_db()
                or (record.status == TaskStatus.PROCESS and bool(record.logs))
            ),
            10,
            f"{kind} sleeper to run and log",
        )
        assert log_pairs(record) == [("INFO", "sleeping 30")]
    for kind, record in queued.items():
        assert record.cancel(f"stop {kind}", by="tests") is True
    for kind, record in queued.items():
        record = wait_status(record, timeout=10)
        assert record.status == TaskStatus.CANCEL, kind
        assert record.cancel_reason == f"stop {kind}"
        assert record.canceled_by == "tests"
        assert seconds(record) < 10, kind  # not the 30 s it asked for
        # Woken by the cancel itself, not stopped by force after CANCEL_GRACE (1 s).
        stopped_after = (record.finished_at - record.cancel_requested_at).total_seconds()
        assert stopped_after < 0.9, (kind, stopped_after)
        assert record.attempts == 1
        assert [entry["status"] for entry in record.attempt_log] == ["cancel"]
        assert record.args == [30]
        assert record.kwargs == {"label": "long nap"}
        assert record.priority == 6
        assert record.extra == {"kind": "sleeper"}
        worker.wait_for_log(f"Task {record.uuid} was canceled due to: stop {kind}")


# cancel ------------------------------------------------------------------------------------------


def test_ctx_cancel_ends_the_task_with_that_reason_and_no_retry(worker):
    with_reason = {
        kind: app.add_task(f"probe_cancel_{kind}", f"reason of {kind}", label="L", priority=5)
        for kind in KINDS
    }
    without_reason = enqueue_each("probe_cancel", None)
    for kind, record in with_reason.items():
        record = wait_status(record)
        assert record.status == TaskStatus.CANCEL, (kind, record.traceback)
        assert record.cancel_reason == f"reason of {kind}"
        assert record.traceback == ""
        if kind not in GENERATORS:
            assert record.returning is None
        assert record.attempts == 1, kind  # retry=2 does not apply to a cancel
        assert [entry["status"] for entry in record.attempt_log] == ["cancel"]
        assert log_pairs(record) == [("INFO", "about to cancel")]
        assert record.args == [f"reason of {kind}"]
        assert record.kwargs == {"label": "L"}
        assert record.priority == 5
        assert record.extra == {"kind": "canceler"}
        assert f"cancel_reason='reason of {kind}'" in repr(record)
        worker.wait_for_log(f"Task {record.uuid} was canceled due to: reason of {kind}")
    for kind, record in without_reason.items():
        record = wait_status(record)
        # As in QTasks: no reason given is "<task_name>.cancel".
        reason = f"{record.task_name}.cancel"
        assert (record.status, record.cancel_reason) == (TaskStatus.CANCEL, reason), kind
        worker.wait_for_log(f"Task {record.uuid} was canceled due to: {reason}")


# add_task: nested tasks -------------------------------------------------------------------------


def test_self_add_task_launches_nested_tasks_by_handle_and_by_task_name():
    for kind, record in enqueue_each("probe_nest", 1).items():
        record = wait_status(record)
        assert record.status == TaskStatus.SUCCESS, (kind, record.traceback)
        if kind in GENERATORS:
            children = {key: value for item in record.returning for key, value in item.items()}
        else:
            children = dict(record.returning)
        if kind == "async":
            assert children.pop("awaitable") is True, "AsyncTask.add_task must be awaitable"
        again, named, by_handle = (
            wait_status(Task.objects.get(pk=children[key])) for key in ("again", "named", "handle")
        )
        # self.add_task(...): another run of the same task.
        assert again.task_name == f"probe_nest_{kind}"
        assert again.status == TaskStatus.SUCCESS, (kind, again.traceback)
        assert again.returning == ("leaf" if kind not in GENERATORS else ["leaf"])
        # self.add_task(..., task_name=...), with the per-call options.
        assert named.task_name == "probe_child"
        assert (named.status, named.returning) == (TaskStatus.SUCCESS, {"child": "named-1"})
        assert (named.queue, named.priority) == ("other", 2)
        # another task's handle.
        assert by_handle.task_name == "probe_child"
        assert (by_handle.status, by_handle.returning) == (
            TaskStatus.SUCCESS,
            {"child": "handle-1"},
        )
        assert {again.uuid, named.uuid, by_handle.uuid}.isdisjoint({record.uuid})
    assert wait_status(app.add_task("spawns_child", 5)).status == TaskStatus.SUCCESS


def test_ctx_outside_a_worker_has_no_run():
    from django_qtasks.exceptions import QTasksError
    from tests.testapp.tasks_params import probe_sync

    assert probe_sync.ctx.task_uuid is None
    assert probe_sync.ctx.task_name == "probe_sync"
    with pytest.raises(QTasksError, match="only works while the task runs in a worker"):
        probe_sync.ctx.get_metadata()
    assert app.get(MISSING_UUID) is None
