"""Tasks for tests/test_testing_tools.py and tests/test_signals.py."""

from __future__ import annotations

import json
import os
from typing import Any

from django.contrib.auth.models import User

from django_qtasks import AsyncTask, SyncTask, app, task


@task
def count_users(username: str) -> int:
    return User.objects.filter(username=username).count()


@task
async def acount_users(username: str) -> int:
    return await User.objects.filter(username=username).acount()


@app.task(echo=True)
def rename_user(self: SyncTask, username: str, new_name: str) -> str:
    self.ctx.get_logger().info("renaming %s", username)
    User.objects.filter(username=username).update(username=new_name)
    return new_name


@app.task(echo=True)
async def spawns_count(self: AsyncTask, username: str) -> int:
    child = await self.add_task(username, task_name="count_users")
    return child.returning


@app.task(echo=True, retry=2, retry_on_exc=[LookupError])
def fails_until_user(self: SyncTask, username: str) -> str:
    if not User.objects.filter(username=username).exists():
        User.objects.create(username=username)
        raise LookupError(f"{username} was missing on attempt {self.ctx.get_metadata().attempts}")
    return "found"


@app.task(echo=True)
def cancels_itself(self: SyncTask) -> None:
    self.ctx.cancel("not today")


# --- tests/test_signals.py: a worker process writes the signals it sends to a file ---

if os.environ.get("QTASKS_TEST_SIGNALS_FILE"):
    from django_qtasks import signals
    from django_qtasks.models import Task

    def write_signal(signal: Any, sender: Any, task: Task, **kwargs: Any) -> None:
        stored = Task.objects.get(pk=task.pk)  # the ORM works here, and the row is written
        line = {
            "signal": next(name for name in SIGNAL_NAMES if getattr(signals, name) is signal),
            "sender": getattr(sender, "task_name", None),
            "task": str(task.uuid),
            "attempt": task.attempts,
            "stored_status": stored.status,
            # This attempt's outcome is in the row (a retried one may already
            # be claimed again, back to "process").
            "attempt_written": any(
                entry.get("attempt") == task.attempts for entry in stored.attempt_log
            ),
            "exception": repr(kwargs.get("exception")) if "exception" in kwargs else None,
            "result": kwargs.get("result"),
            "reason": kwargs.get("reason"),
        }
        with open(os.environ["QTASKS_TEST_SIGNALS_FILE"], "a", encoding="utf-8") as stream:
            stream.write(json.dumps(line) + "\n")

    SIGNAL_NAMES = [
        "task_started",
        "task_succeeded",
        "task_retried",
        "task_failed",
        "task_cancelled",
        "task_finished",
    ]
    for _name in SIGNAL_NAMES:
        getattr(signals, _name).connect(write_signal, weak=False)


# --- tests/test_signals.py: a worker process reports failures to Sentry, into a file ---

if os.environ.get("QTASKS_TEST_SENTRY_FILE"):
    import logging

    import sentry_sdk
    from sentry_sdk.integrations.logging import LoggingIntegration
    from sentry_sdk.transport import Transport

    from django_qtasks.sentry import report_to_sentry

    class FileTransport(Transport):
        """Sentry's events go to a file, not to a server."""

        def capture_envelope(self, envelope: Any) -> None:
            with open(os.environ["QTASKS_TEST_SENTRY_FILE"], "a", encoding="utf-8") as stream:
                for item in envelope.items:
                    if item.type == "event":
                        stream.write(json.dumps(item.payload.json) + "\n")

    sentry_sdk.init(
        dsn="http://public@127.0.0.1:9/1",
        transport=FileTransport,
        # Log lines at ERROR become events too: the worker's own line for a
        # failed task must not be a second event.
        integrations=[LoggingIntegration(event_level=logging.ERROR)],
    )
    logging.getLogger("django_qtasks").propagate = True
    report_to_sentry()
