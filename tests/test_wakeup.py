"""Idle workers start new tasks at once: PostgreSQL's NOTIFY, or a broker's message.

The worker polls only every 30 s here, so only a notification explains a
quick start. SQLite (and MySQL) have none: their idle workers poll.
"""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.db import connection

from django_qtasks.models import Task
from tests.conftest import wait_status
from tests.testapp import tasks

pytestmark = [pytest.mark.broker, pytest.mark.amqp, pytest.mark.django_db(transaction=True)]

NOTIFIES = connection.vendor == "postgresql" or settings.QTASKS["BROKER_URL"] != "django://"


@pytest.mark.skipif(not NOTIFIES, reason="this database has no notifications: workers poll")
def test_an_idle_worker_starts_a_new_task_at_once(monkeypatch, start_worker):
    # Polls an hour apart: a task that runs within the test was brought by a
    # wake-up, however slow the machine. (Its first look may find the first
    # task, or nothing.)
    monkeypatch.setenv("QTASKS_TEST_SETTINGS", json.dumps({"POLL_INTERVAL": 3600}))
    start_worker("--queues", "wakeup")
    for number in range(5):
        record = wait_status(tasks.echo.add_task(number, queue="wakeup"), timeout=60)
        assert (record.status, record.returning) == ("success", number)
    assert Task.objects.count() == 5
