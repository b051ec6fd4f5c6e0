"""Tasks for tests/test_lifecycle*.py (run by real worker processes)."""

from __future__ import annotations

import os
from typing import Any

from django_qtasks import AsyncTask, app, task

# --- used by tests/test_worker*.py ------------------------------------------


def _append(path: str, label: str) -> str:
    # O_APPEND writes of one short line are atomic: every run leaves one line.
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(f"{label} {os.getpid()}\n")
    return label


@task
def worker_append_line(path: str, label: str) -> str:
    """Sync: leaves one line per run in ``path``."""
    return _append(path, label)


@task
async def worker_aappend_line(path: str, label: str) -> str:
    """Async twin of worker_append_line."""
    return _append(path, label)


@app.task(echo=True, retry=1)
async def worker_slow_first_attempt(self: AsyncTask, seconds: float) -> int:
    """Sleeps ``seconds`` on its first attempt only; returns the attempt number."""
    record = await self.ctx.get_metadata()
    if record.attempts == 1:
        self.ctx.get_logger().info("first attempt: sleeping")
        await self.ctx.sleep(seconds)
    return record.attempts


@task
def worker_user_exists(username: str) -> Any:
    """Fails unless the user exists when the task runs."""
    from django.contrib.auth.models import User

    return User.objects.get(username=username).username
