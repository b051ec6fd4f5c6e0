"""The worker's own output stays clean: a stopped task leaves no asyncio noise on stderr."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable

import pytest

from django_qtasks.models import TaskStatus
from tests.conftest import WorkerProcess, wait_status
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

NOISE = "exception was never retrieved"


def test_stopped_sync_tasks_leave_no_unretrieved_future(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """Each way a sync task is stopped: cancelled at its ctx.sleep, cancelled and then
    interrupted after the grace period, and interrupted at its max_time."""
    queue = f"noise-{uuid.uuid4().hex[:8]}"
    worker = start_worker("--queues", queue, "--concurrency", "3")
    sleeping = tasks.sync_sleeper.add_task(60, queue=queue)
    busy = tasks.sync_busy.add_task(60, queue=queue)
    too_slow = tasks.sync_too_slow.add_task(queue=queue)
    wait_status(sleeping, TaskStatus.PROCESS)
    wait_status(busy, TaskStatus.PROCESS)
    assert sleeping.cancel("enough sleep")
    assert busy.cancel("enough work")

    assert wait_status(sleeping).status == TaskStatus.CANCEL
    assert wait_status(busy).status == TaskStatus.CANCEL
    assert wait_status(too_slow).status == TaskStatus.ERROR
    assert "max_time" in too_slow.traceback
    # The message comes when the future is collected: at the latest, at exit.
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    log = worker.log
    assert f"Task {sleeping.uuid} was canceled due to: enough sleep" in log
    assert f"Task {busy.uuid} was canceled due to: enough work" in log
    assert NOISE not in log, log
    assert "Traceback" not in log, log
