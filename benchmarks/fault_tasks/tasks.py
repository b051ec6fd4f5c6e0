"""The fault script's tasks. Each one notes it in FAULTS_DONE when its body completes.

A line per completed body, ``{"uuid", "pid", "attempt"}``: two lines for one
uuid are a task completed twice, whatever its row says.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from django_qtasks import AsyncTask, SyncTask, app


def done(uuid: object, attempt: int) -> None:
    """Append this completion to the file the script reads (one write: atomic)."""
    line = json.dumps({"uuid": str(uuid), "pid": os.getpid(), "attempt": attempt}) + "\n"
    fd = os.open(os.environ["FAULTS_DONE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def attempt_of(self: SyncTask) -> int:
    return self.ctx.get_metadata().attempts


@app.task(echo=True, retry=2)
def plain(self: SyncTask, number: int) -> int:
    done(self.ctx.task_uuid, attempt_of(self))
    return number


@app.task(echo=True, retry=2)
def short(self: SyncTask, seconds: float) -> str:
    attempt = attempt_of(self)
    time.sleep(seconds)
    done(self.ctx.task_uuid, attempt)
    return "short"


@app.task(echo=True, retry=2)
async def long_sleep(self: AsyncTask, seconds: float) -> str:
    attempt = (await self.ctx.get_metadata()).attempts
    await self.ctx.sleep(seconds)
    done(self.ctx.task_uuid, attempt)
    return "long"


@app.task(echo=True, retry=2)
def sleep_until(self: SyncTask, end_at: float) -> str:
    """Loops in ctx.sleep until the wall clock reaches ``end_at``."""
    attempt = attempt_of(self)
    while time.time() < end_at:
        self.ctx.sleep(0.05)
    done(self.ctx.task_uuid, attempt)
    return "slept"


@app.task(echo=True, retry=2)
async def fail_once(self: AsyncTask) -> str:
    """Raises at once the first time (no database read: the retry comes back fast)."""
    marker = Path(f"{os.environ['FAULTS_DONE']}.failed-{self.ctx.task_uuid}")
    if not marker.exists():
        marker.touch()
        raise RuntimeError("the first attempt fails")
    done(self.ctx.task_uuid, 2)
    return "second time lucky"


@app.task(echo=True, retry=2)
def returns_nul(self: SyncTask) -> str:
    done(self.ctx.task_uuid, attempt_of(self))
    return "a\x00b"


@app.task(echo=True, retry=2)
def returns_surrogate(self: SyncTask) -> str:
    done(self.ctx.task_uuid, attempt_of(self))
    return "\ud800"


@app.task(echo=True, retry=2)
def logs_nul(self: SyncTask) -> str:
    self.ctx.get_logger().warning("a line with a NUL: a\x00b")
    done(self.ctx.task_uuid, attempt_of(self))
    return "logged"
