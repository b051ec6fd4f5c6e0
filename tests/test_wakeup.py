"""Idle workers start new tasks at once: PostgreSQL's NOTIFY, or a broker's message.

The worker polls only every 30 s here, so only a notification explains a
quick start. SQLite (and MySQL) have none: their idle workers poll.
"""

from __future__ import annotations

import json
import time

import pytest
from django.conf import settings
from django.db import connection

from django_qtasks.models import Task
from tests.conftest import wait_status
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

NOTIFIES = connection.vendor == "postgresql" or settings.QTASKS["BROKER_URL"] != "django://"


@pytest.mark.skipif(not NOTIFIES, reason="this database has no notifications: workers poll")
def test_an_idle_worker_starts_a_new_task_at_once(monkeypatch, start_worker):
    monkeypatch.setenv("QTASKS_TEST_SETTINGS", json.dumps({"POLL_INTERVAL": 30}))
    start_worker("--queues", "wakeup")
    time.sleep(1)  # idle: its first look found nothing; the next poll is 30 s away
    started = []
    for number in range(5):
        record = wait_status(tasks.echo.add_task(number, queue="wakeup"), timeout=5)
        started.append((record.started_at - record.created_at).total_seconds())
        time.sleep(0.2)
    assert max(started) < 0.5, started
    assert Task.objects.count() == 5
