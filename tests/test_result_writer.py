"""The worker's result writer alone, in this process: no worker, no broker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from django_qtasks.models import Task, TaskStatus
from django_qtasks.notify import get_notifier
from django_qtasks.worker.executor import Outcome
from django_qtasks.worker.writer import Ending, ResultWriter

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = "writer-test:1"


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def writer() -> ResultWriter:
    return ResultWriter(WORKER, get_notifier())


def running(**fields: object) -> Task:
    return Task.objects.create(
        task_name="echo",
        status=TaskStatus.PROCESS,
        worker=WORKER,
        started_at=timezone.now(),
        attempts=1,
        **fields,
    )


def ending(loop: asyncio.AbstractEventLoop, record: Task, outcome: Outcome) -> Ending:
    line = {"level": "INFO", "message": f"line of {record.uuid}"}
    return Ending(record, outcome, [line], timezone.now(), loop.create_future())


def outcomes_of(loop: asyncio.AbstractEventLoop, endings: list[Ending]) -> list[object]:
    """What each run awaiting its ending would get: None once written, or the exception."""
    saved = asyncio.gather(*(e.saved for e in endings), return_exceptions=True)
    return loop.run_until_complete(asyncio.wait_for(saved, 30))


def test_endings_waiting_are_written_together_each_with_its_outcome(loop, writer):
    done, failed, retried = running(), running(), running(max_attempts=3)
    later = timezone.now() + timedelta(minutes=5)
    endings = [
        ending(loop, done, Outcome(TaskStatus.SUCCESS, returning={"sum": 3})),
        ending(loop, failed, Outcome(TaskStatus.ERROR, traceback="Traceback...\nKeyError: 'x'")),
        ending(loop, retried, Outcome(TaskStatus.RETRY, traceback="E: once", run_after=later)),
    ]
    for each in endings:
        writer.add(each)
    assert writer.has_waiting()

    writer.write_waiting()

    assert not writer.has_waiting()
    assert outcomes_of(loop, endings) == [None, None, None]
    done.refresh_from_db()
    assert (done.status, done.returning, done.finished_at is not None) == (
        TaskStatus.SUCCESS,
        {"sum": 3},
        True,
    )
    assert done.logs == [{"level": "INFO", "message": f"line of {done.uuid}"}]
    assert [(a["attempt"], a["status"], a["error"]) for a in done.attempt_log] == [
        (1, TaskStatus.SUCCESS, "")
    ]
    failed.refresh_from_db()
    assert (failed.status, failed.traceback) == (TaskStatus.ERROR, "Traceback...\nKeyError: 'x'")
    assert failed.attempt_log[0]["error"] == "KeyError: 'x'"
    retried.refresh_from_db()
    assert (retried.status, retried.run_after, retried.finished_at) == (
        TaskStatus.RETRY,
        later,
        None,
    )


def test_a_row_taken_over_meanwhile_is_left_as_it_is_and_said_so(loop, writer, caplog):
    mine, taken = running(), running()
    Task.objects.filter(pk=taken.pk).update(
        status=TaskStatus.ERROR, worker="other:2", traceback="Taken over."
    )
    endings = [
        ending(loop, mine, Outcome(TaskStatus.SUCCESS, returning=1)),
        ending(loop, taken, Outcome(TaskStatus.SUCCESS, returning=2)),
    ]

    with caplog.at_level(logging.ERROR, "django_qtasks.worker"):
        writer.write(endings)

    # Both runs learn that their write is done: there is nothing to try again.
    assert outcomes_of(loop, endings) == [None, None]
    mine.refresh_from_db()
    assert (mine.status, mine.returning) == (TaskStatus.SUCCESS, 1)
    taken.refresh_from_db()
    assert (taken.status, taken.worker, taken.traceback, taken.returning) == (
        TaskStatus.ERROR,
        "other:2",
        "Taken over.",
        None,
    )
    assert [r.getMessage() for r in caplog.records] == [
        f"Task {taken.uuid}: its outcome (success) was not stored: its row is no longer "
        "this worker's (it was taken over or deleted while the task ran)."
    ]


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's jsonb refuses a lone surrogate"
)
def test_a_value_the_database_refuses_fails_its_own_row_only(loop, writer, caplog):
    good, bad, other = running(), running(), running()
    endings = [
        ending(loop, good, Outcome(TaskStatus.SUCCESS, returning="fine")),
        ending(loop, bad, Outcome(TaskStatus.SUCCESS, returning="\ud800")),
        ending(loop, other, Outcome(TaskStatus.SUCCESS, returning="also fine")),
    ]

    with caplog.at_level(logging.ERROR, "django_qtasks.worker"):
        writer.write(endings)

    assert outcomes_of(loop, endings) == [None, None, None]
    statuses = {
        row.pk: (row.status, row.returning)
        for row in Task.objects.filter(pk__in=[good.pk, bad.pk, other.pk])
    }
    assert statuses == {
        good.pk: (TaskStatus.SUCCESS, "fine"),
        bad.pk: (TaskStatus.ERROR, None),
        other.pk: (TaskStatus.SUCCESS, "also fine"),
    }
    bad.refresh_from_db()
    assert "The outcome of this run could not be stored" in bad.traceback
    assert "is not retried" in bad.traceback
    # The run's own outcome says what was stored.
    assert endings[1].outcome.status == TaskStatus.ERROR
    assert f"Task {bad.uuid}: the database refused its outcome (success)" in caplog.text


def test_a_claim_carries_the_endings_on_postgresql_only(loop, writer):
    records = [running(), running()]
    endings = [
        ending(loop, r, Outcome(TaskStatus.SUCCESS, returning=i)) for i, r in enumerate(records)
    ]
    carried = writer.carried(endings)
    if connection.vendor != "postgresql":
        assert carried is None  # written before the claim instead
        return
    assert carried is not None
    carried.run("default")  # what a claim that sends no statement of its own does
    writer.written(endings, set(carried.pks))
    assert outcomes_of(loop, endings) == [None, None]
    assert sorted(
        Task.objects.filter(pk__in=[r.pk for r in records]).values_list("returning", flat=True)
    ) == [0, 1]
    assert writer.carried([]) is None
