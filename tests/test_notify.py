"""Fast signals through a django-redis cache (QTASKS["REDIS_CACHE_ALIAS"]).

Each test runs the worker with polls so slow that only a Redis message can
explain a fast reaction, and shows the same setup without Redis as control.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings

from django_qtasks import app
from django_qtasks.models import TaskStatus
from tests.conftest import wait_status
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

#: No cancel poll within a test (the first comes an interval after the start).
SLOW_POLLS = {"CANCEL_POLL_INTERVAL": 3600}


@pytest.fixture
def qtasks_config(monkeypatch):
    """Apply QTASKS keys here and in the worker processes started afterwards."""

    def apply(**keys):
        monkeypatch.setenv("QTASKS_TEST_SETTINGS", json.dumps(keys))
        override = override_settings(QTASKS={**settings.QTASKS, **keys})
        override.enable()
        return override

    overrides = []
    yield lambda **keys: overrides.append(apply(**keys))
    for override in overrides:
        override.disable()


@pytest.mark.parametrize("redis", [True, False], ids=["redis", "polling"])
def test_cancel_reaches_a_running_task_at_once_through_redis(redis, qtasks_config, start_worker):
    qtasks_config(**SLOW_POLLS, REDIS_CACHE_ALIAS="qtasks" if redis else None)
    start_worker("--queues", "notify")
    running = tasks.sync_sleeper.add_task(600, queue="notify")
    wait_status(running, TaskStatus.PROCESS)

    running.cancel("user asked", by="alice")
    if redis:
        # Only the message can bring it: no poll comes, the run lasts 600 s.
        running = wait_status(running, timeout=60)
        assert running.status == TaskStatus.CANCEL
        assert running.cancel_reason == "user asked"
    else:  # control: the next poll is an hour away
        time.sleep(2)
        running.refresh_from_db()
        assert running.status == TaskStatus.PROCESS


def test_waiting_client_wakes_when_the_task_ends(qtasks_config, start_worker, monkeypatch):
    qtasks_config(REDIS_CACHE_ALIAS="qtasks")
    # The client looks at the row once, then only the "ended" message can wake
    # it before the wait expires.
    monkeypatch.setattr(app, "wait_pause_with_messages", 3600)
    start_worker("--queues", "notify")
    done = tasks.sync_sleeper.add_task(1, queue="notify", timeout=60)
    assert done is not None, "the wait expired: no message woke it"
    assert done.status == TaskStatus.SUCCESS


def test_waiting_for_a_task_cancelled_in_the_queue_wakes_at_once(qtasks_config, monkeypatch):
    qtasks_config(REDIS_CACHE_ALIAS="qtasks")
    monkeypatch.setattr(app, "wait_pause_with_messages", 3600)
    queued = tasks.echo.add_task(1, queue="nobody-serves-this")
    cancelled = threading.Event()

    def cancel_when_waited_on():
        # After the waiting client's first look: the cancel must wake it.
        time.sleep(1)
        queued.cancel("no longer needed")
        cancelled.set()
        connection.close()  # this thread's own connection

    canceller = threading.Thread(target=cancel_when_waited_on)
    canceller.start()
    done = app.wait(queued.uuid, timeout=60)
    canceller.join()
    assert cancelled.is_set()
    assert done.status == TaskStatus.CANCEL
