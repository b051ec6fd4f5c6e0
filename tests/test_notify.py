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
from django.utils import timezone

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


def test_waiting_client_wakes_when_the_task_ends(qtasks_config, start_worker):
    qtasks_config(REDIS_CACHE_ALIAS="qtasks")
    start_worker("--queues", "notify")
    # The waiting client re-reads the row only every second without a message:
    # a task ending 1.5 s in would be seen 0.5 s late.
    done = tasks.sync_sleeper.add_task(1.5, queue="notify", timeout=20)
    seen_at = timezone.now()
    assert done.status == TaskStatus.SUCCESS
    assert (seen_at - done.finished_at).total_seconds() < 0.3


def test_waiting_for_a_task_cancelled_in_the_queue_wakes_at_once(qtasks_config):
    qtasks_config(REDIS_CACHE_ALIAS="qtasks")
    queued = tasks.echo.add_task(1, queue="nobody-serves-this")

    def cancel_later():
        time.sleep(1.5)
        queued.cancel("no longer needed")
        connection.close()  # this thread's own connection

    canceller = threading.Thread(target=cancel_later)
    canceller.start()
    started = time.monotonic()
    done = app.wait(queued.uuid, timeout=10)
    canceller.join()
    assert done.status == TaskStatus.CANCEL
    assert 1.4 < time.monotonic() - started < 1.8
