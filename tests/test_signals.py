"""The lifecycle signals of django_qtasks.signals, from a real worker and in immediate mode."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from django_qtasks import signals
from django_qtasks.models import Task
from tests.conftest import wait_until
from tests.testapp import tasks, tasks_testing

NAMES = [
    "task_started",
    "task_succeeded",
    "task_retried",
    "task_failed",
    "task_cancelled",
    "task_finished",
]


@pytest.fixture
def heard() -> Iterator[list[tuple[str, Any, dict[str, Any]]]]:
    """Every signal sent in this process: (name, sender, kwargs)."""
    received: list[tuple[str, Any, dict[str, Any]]] = []
    receivers = []
    for name in NAMES:

        def receiver(sender: Any, name: str = name, **kwargs: Any) -> None:
            kwargs.pop("signal")
            received.append((name, sender, kwargs))

        getattr(signals, name).connect(receiver)
        receivers.append((name, receiver))
    yield received
    for name, receiver in receivers:
        getattr(signals, name).disconnect(receiver)


# --- In immediate mode (in this process) -------------------------------------------


@pytest.mark.django_db
def test_a_retried_task_sends_each_attempts_signals(qtasks_immediate, heard):
    row = tasks_testing.fails_until_user.add_task("ivy")
    assert [name for name, _, _ in heard] == [
        "task_started",
        "task_retried",
        "task_started",
        "task_succeeded",
        "task_finished",
    ]
    assert {sender for _, sender, _ in heard} == {tasks_testing.fails_until_user}
    assert all(kwargs["task"].pk == row.pk for _, _, kwargs in heard)
    retried = heard[1][2]
    assert isinstance(retried["exception"], LookupError)
    assert str(retried["exception"]) == "ivy was missing on attempt 1"
    assert (heard[3][2]["result"], heard[3][2]["task"].status) == ("found", "success")


@pytest.mark.django_db
def test_a_failure_sends_the_exception_and_a_cancel_its_reason(qtasks_immediate, heard):
    tasks.retry_wrong_exc.add_task()
    name, _, failed = heard[1]
    assert name == "task_failed"
    assert isinstance(failed["exception"], ValueError)
    assert "ValueError" in failed["traceback"]
    assert failed["task"].status == "error"
    heard.clear()
    tasks_testing.cancels_itself.add_task()
    assert [(name, kwargs.get("reason")) for name, _, kwargs in heard] == [
        ("task_started", None),
        ("task_cancelled", "not today"),
        ("task_finished", None),
    ]


@pytest.mark.django_db
def test_cancelling_a_waiting_task_sends_its_signals_from_the_cancelling_process(heard):
    row = tasks.echo.add_task(1)
    assert row.cancel("no longer needed", by="admin")
    assert [(name, sender, kwargs["task"].pk) for name, sender, kwargs in heard] == [
        ("task_cancelled", tasks.echo, row.pk),
        ("task_finished", tasks.echo, row.pk),
    ]
    assert heard[0][2]["reason"] == "no longer needed"


@pytest.mark.django_db
def test_a_receiver_for_one_task_hears_that_task_only(qtasks_immediate):
    heard_ids = []

    def receiver(sender: Any, task: Task, **kwargs: Any) -> None:
        heard_ids.append(task.pk)

    signals.task_succeeded.connect(receiver, sender=tasks.echo)
    try:
        echoed = tasks.echo.add_task(1)
        tasks.echo_child.add_task(2)
    finally:
        signals.task_succeeded.disconnect(receiver, sender=tasks.echo)
    assert heard_ids == [echoed.pk]


@pytest.mark.django_db
def test_a_receiver_that_raises_is_logged_and_changes_nothing(qtasks_immediate, caplog):
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    signals.task_started.connect(broken)
    signals.task_succeeded.connect(broken)
    try:
        row = tasks.echo.add_task(1)
    finally:
        signals.task_started.disconnect(broken)
        signals.task_succeeded.disconnect(broken)
    assert (row.status, row.returning) == ("success", 1)
    failures = [r for r in caplog.records if r.name == "django_qtasks.signals"]
    assert len(failures) == 2
    assert all(r.levelno == logging.ERROR and "receiver bug" in r.exc_text for r in failures)


# --- From a worker process -----------------------------------------------------------


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_a_worker_sends_the_signals_once_each_after_writing_the_row(start_worker, tmp_path):
    path = tmp_path / "signals.jsonl"
    queue = f"signals-{uuid.uuid4().hex[:8]}"
    start_worker("--queues", queue, env={"QTASKS_TEST_SIGNALS_FILE": str(path)})
    retried = tasks_testing.fails_until_user.add_task("joe", queue=queue)
    failed = tasks.retry_wrong_exc.add_task(queue=queue)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    wait_until(lambda: sum(line["signal"] == "task_finished" for line in lines()) == 2, 60)
    by_task: dict[str, list[dict[str, Any]]] = {}
    for line in lines():
        by_task.setdefault(line["task"], []).append(line)
    # In order within an attempt; the next attempt, claimed at once (no backoff
    # here) by another slot, may start before the last one's task_retried is sent.
    first, second = (
        [line for line in by_task[str(retried.pk)] if line["attempt"] == attempt]
        for attempt in (1, 2)
    )
    assert [line["signal"] for line in first] == ["task_started", "task_retried"]
    assert [line["signal"] for line in second] == [
        "task_started",
        "task_succeeded",
        "task_finished",
    ]
    assert [line["attempt_written"] for line in first + second] == [False, True, False, True, True]
    assert [line["stored_status"] for line in (first[0], *second)] == [
        "process",
        "process",
        "success",
        "success",
    ]
    assert first[1]["exception"].startswith("LookupError(")
    assert second[1]["result"] == "found"
    assert [(line["signal"], line["sender"]) for line in by_task[str(failed.pk)]] == [
        ("task_started", "retry_wrong_exc"),
        ("task_failed", "retry_wrong_exc"),
        ("task_finished", "retry_wrong_exc"),
    ]
    assert by_task[str(failed.pk)][1]["exception"].startswith("ValueError(")


@pytest.mark.django_db(transaction=True)
def test_a_failed_task_reaches_sentry_once_with_its_tags(start_worker, tmp_path):
    events_file = tmp_path / "sentry.jsonl"
    queue = f"sentry-{uuid.uuid4().hex[:8]}"
    process = start_worker("--queues", queue, env={"QTASKS_TEST_SENTRY_FILE": str(events_file)})
    retried = tasks_testing.fails_until_user.add_task("kim", queue=queue)
    failed = tasks.retry_wrong_exc.add_task(queue=queue)
    wait_until(lambda: Task.objects.get(pk=failed.pk).status == "error", 60)
    wait_until(lambda: Task.objects.get(pk=retried.pk).status == "success", 60)

    def events() -> list[dict[str, Any]]:
        if not events_file.exists():
            return []
        return [json.loads(line) for line in events_file.read_text().splitlines()]

    wait_until(events, 30)  # sent once the row is written
    process.signal()  # SIGTERM: whatever else it would send is sent by now
    assert process.wait(60) == 0
    (event,) = events()
    assert [value["type"] for value in event["exception"]["values"]] == ["ValueError"]
    assert event["tags"]["qtasks.task_name"] == "retry_wrong_exc"
    assert event["tags"]["qtasks.task_uuid"] == str(failed.pk)
    assert event["tags"]["qtasks.attempt"] == "1"
    assert event["contexts"]["qtasks task"]["queue"] == queue
