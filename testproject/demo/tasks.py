"""Example tasks, found by autodiscovery like any installed app's tasks.py."""

import json
import time

from django_qtasks import AsyncTask, SyncTask, app, task


@app.task(
    echo=True,
    tags=["test"],
    priority=1,
    retry=3,
    retry_on_exc=[KeyError],
    decode=json.dumps,
    test="test",
)
async def test_echo_ctx(self: AsyncTask):
    self.ctx.get_logger().info("This is a test task!")
    await self.ctx.sleep(5)
    self.ctx.get_logger().info(self.ctx.get_config())
    self.ctx.cancel("Test task canceled")
    return "Hello, world!"


@task
def add(a, b):
    """Add two numbers in a worker thread."""
    return a + b


@app.task(echo=True, tags=["demo"], generate_handler=lambda step: f"step {step} done")
def count_up(self: SyncTask, steps: int = 3):
    """A sync generator: its yielded values are its progress, then its result."""
    for step in range(1, steps + 1):
        self.ctx.get_logger().info("working on step %s", step)
        self.ctx.sleep(0.2)
        yield step


@app.task(echo=True, retry=2, retry_on_exc=[ConnectionError])
def flaky(self: SyncTask, fail_times: int = 2):
    """Fails with ConnectionError on its first attempts, then succeeds."""
    record = self.ctx.get_metadata()
    if record.attempts <= fail_times:
        raise ConnectionError(f"attempt {record.attempts}: service unavailable")
    return f"succeeded on attempt {record.attempts}"


@task
def always_fails():
    """Ends with status error and its traceback."""
    raise ValueError("this task always fails")


@app.task(max_time=1)
def too_slow():
    """Stopped by max_time."""
    time.sleep(0.1)
    while True:
        time.sleep(0.05)


@task
def double(value):
    """Doubles a number: a step of the demo's chain (add, then double)."""
    return value * 2


@app.task(schedule="* * * * *")
def minute_report():
    """A periodic task declared in code: every minute, with qtasks_worker --beat."""
    from django_qtasks.models import Task

    return {"tasks": Task.objects.count()}
