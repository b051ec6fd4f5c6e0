"""Delivery on kombu brokers: the row, not the message nor its mark, decides.

Each test names its own queue; a worker consumes only that one. On
``django://`` there is no message to lose: these tests need a kombu broker
(``make test-brokers`` runs them on Redis and RabbitMQ).
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from django_qtasks.brokers import get_broker
from django_qtasks.brokers.kombu import KombuBroker
from django_qtasks.models import Task, TaskStatus, task_store
from tests.conftest import wait_status, wait_until
from tests.testapp import tasks

pytestmark = [
    pytest.mark.broker,
    pytest.mark.amqp,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        settings.QTASKS["BROKER_URL"] == "django://",
        reason="messages are the rows themselves on django://",
    ),
]


@pytest.fixture
def qtasks_config(monkeypatch):
    """Apply QTASKS keys here and in the worker processes started afterwards."""
    overrides = []

    def apply(**keys):
        monkeypatch.setenv("QTASKS_TEST_SETTINGS", json.dumps(keys))
        override = override_settings(QTASKS={**settings.QTASKS, **keys})
        override.enable()
        overrides.append(override)

    yield apply
    for override in reversed(overrides):
        override.disable()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def kombu_broker() -> KombuBroker:
    broker = get_broker()
    assert isinstance(broker, KombuBroker)
    return broker


def purge(queue: str) -> int:
    """Delete the queue's messages on the broker, as a flushed key or a stray consumer would."""
    broker = kombu_broker()
    with broker.connection() as connection:
        return int(broker.queue(queue)(connection.default_channel).purge() or 0)


def test_a_message_lost_by_the_broker_still_gets_its_task_run(qtasks_config, start_worker):
    qtasks_config(REDELIVER_AFTER=1)
    queue = unique("lost")
    task = tasks.echo.add_task("still here", queue=queue)
    task.refresh_from_db()
    assert task.published_at is not None, "the broker is up: published at once"
    assert purge(queue) == 1

    worker = start_worker("--queues", queue)
    task = wait_status(task, TaskStatus.SUCCESS, timeout=30)
    assert task.returning == "still here"
    assert task.attempts == 1
    worker.wait_for_log(f"1 tasks of queue {queue} are due and unclaimed")
    assert str(task.uuid) in worker.log


def test_rows_behind_their_messages_are_not_sent_again_and_lost_ones_once(qtasks_config):
    """A backlog is left alone (no flood); lost messages are sent again by one worker."""
    qtasks_config(REDELIVER_AFTER=1)
    queue = unique("backlog")
    waiting = [tasks.echo.add_task(index, queue=queue) for index in range(5)]
    long_ago = timezone.now() - timedelta(seconds=30)
    Task.objects.filter(pk__in=[task.pk for task in waiting]).update(published_at=long_ago)
    # Two workers' brokers, as in two processes.
    first, second, third = (KombuBroker(settings.QTASKS["BROKER_URL"]) for _ in range(3))

    def wait_for_five_messages() -> None:
        # RabbitMQ counts a message a moment after it is sent.
        wait_until(
            lambda: first.message_counts([queue]) == {queue: 5},
            timeout=30,
            message=lambda: f"5 messages in {queue}: {first.message_counts([queue])}",
        )

    try:
        wait_for_five_messages()
        assert first.redeliver([queue]) == 0, "their messages wait in the queue"
        assert first.message_counts([queue]) == {queue: 5}

        assert purge(queue) == 5  # lost
        assert second.redeliver([queue]) == 5
        wait_for_five_messages()
        sent_again = Task.objects.filter(pk__in=[task.pk for task in waiting])
        assert all(row.published_at > long_ago for row in sent_again)
        # A third worker looking now finds them just sent: no second copy.
        assert third.redeliver([queue]) == 0
        assert first.message_counts([queue]) == {queue: 5}
    finally:
        for broker in (first, second, third):
            broker.close()


def test_a_retry_whose_late_mark_lands_after_it_still_runs(qtasks_config, start_worker):
    # The outbox sends the retry once its backoff is over; REDELIVER_AFTER
    # is far away: only the guarded mark can get this task run in time.
    qtasks_config(RETRY_BACKOFF=8, REDELIVER_AFTER=600)
    queue = unique("late-mark")
    task = tasks.retry_keyerror.add_task(1, queue=queue)
    # As sent by the client, before its mark: the mark is late.
    Task.objects.filter(pk=task.pk).update(published_at=None)
    assert Task.objects.get(pk=task.pk).updated_at == task.updated_at

    start_worker("--queues", queue)
    failed = wait_status(Task.objects.get(pk=task.pk), TaskStatus.RETRY, timeout=30)
    assert failed.run_after > timezone.now(), "still in its backoff"
    task_store().mark_published([task], timezone.now())  # the client's late mark
    failed.refresh_from_db()
    assert failed.published_at is None, "a mark of the first send left the retry unpublished"

    done = wait_status(failed, TaskStatus.SUCCESS, timeout=40)
    assert done.returning == 2
    assert done.attempts == 2


def test_a_message_for_no_known_task_is_logged_and_dropped(start_worker):
    queue = unique("stray")
    worker = start_worker("--queues", queue)
    stray = Task(queue=queue)  # never saved: as sent by another environment
    sent, error = kombu_broker().send_all([stray])
    assert error is None
    assert sent == [stray]

    worker.wait_for_log(f"Dropped the message of task {stray.uuid} from queue ")
    line = next(line for line in worker.log.splitlines() if str(stray.uuid) in line)
    assert " WARNING django_qtasks.broker: " in line
    assert queue in line
    assert "QUEUE_PREFIX" in line
    # The worker goes on with its own tasks.
    task = tasks.echo.add_task("after", queue=queue)
    assert wait_status(task, TaskStatus.SUCCESS, timeout=30).returning == "after"
