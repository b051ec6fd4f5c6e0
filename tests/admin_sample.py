"""Tasks of every kind, as a busy project has them: the browser tests and screenshots use them.

Waiting tasks go to queues the test worker does not listen to, so that they
stay waiting; running ones are real (``async_sleeper`` on the shared worker).
"""

from __future__ import annotations

import random
from datetime import timedelta

from django.utils import timezone

from django_qtasks.models import Task, TaskStatus

NAMES = ["send_invoice", "resize_image", "sync_crm", "nightly_report", "add", "count_up"]
TAGS = {"send_invoice": ["billing"], "sync_crm": ["crm", "external"], "count_up": ["demo"]}
WORKERS = ["web-1:4242:a1b2c3", "web-2:3131:d4e5f6"]
ERRORS = [
    "ConnectionError: CRM API timed out after 30s",
    "KeyError: 'customer_id'",
    "ValueError: image too large (12000x9000)",
]


def populate(count: int = 160, seed: int = 7) -> Task:
    """Finished tasks spread over the last hour, a few waiting ones; return a rich one."""
    rng = random.Random(seed)
    now = timezone.now()
    rows = []
    for _ in range(count):
        name = rng.choice(NAMES)
        finished = now - timedelta(seconds=rng.uniform(5, 3500))
        started = finished - timedelta(seconds=rng.uniform(0.05, 40))
        status = rng.choices(
            [TaskStatus.SUCCESS, TaskStatus.ERROR, TaskStatus.CANCEL], [86, 10, 4]
        )[0]
        error = rng.choice(ERRORS)
        rows.append(
            Task(
                task_name=name,
                status=status,
                queue="reports" if name == "nightly_report" else "default",
                priority=rng.choice([0, 0, 0, 1, 5]),
                tags=TAGS.get(name, []),
                args=[rng.randint(1, 9999)],
                created_at=started - timedelta(seconds=rng.uniform(0, 3)),
                started_at=started,
                finished_at=finished,
                attempts=1,
                worker=rng.choice(WORKERS),
                returning={"ok": True} if status == TaskStatus.SUCCESS else None,
                traceback=f"Traceback (most recent call last):\n  ...\n{error}"
                if status == TaskStatus.ERROR
                else "",
                cancel_reason="Customer closed the account" if status == TaskStatus.CANCEL else "",
            )
        )
    for index in range(9):
        rows.append(
            Task(
                task_name="send_invoice",
                queue="emails",
                tags=["billing"],
                kwargs={"invoice": 1000 + index},
                created_at=now - timedelta(seconds=30 * index + 3),
            )
        )
    Task.objects.bulk_create(rows)
    first = Task.objects.create(
        task_name="sync_crm",
        status=TaskStatus.ERROR,
        queue="default",
        tags=["crm", "external"],
        kwargs={"account": 42},
        created_at=now - timedelta(minutes=3),
        started_at=now - timedelta(minutes=3),
        finished_at=now - timedelta(minutes=2, seconds=50),
        attempts=3,
        max_attempts=3,
        worker=WORKERS[0],
        traceback='Traceback (most recent call last):\n  File "crm/tasks.py", line 18, in sync_crm'
        "\n    client.push(account)\nConnectionError: CRM API timed out after 30s",
    )
    stamp = (now - timedelta(minutes=1)).isoformat(timespec="milliseconds")
    return Task.objects.create(
        task_name="sync_crm",
        status=TaskStatus.SUCCESS,
        priority=1,
        tags=["crm", "external"],
        args=[],
        kwargs={"account": 42, "full": True},
        extra={"team": "growth"},
        returning={"pushed": 118, "skipped": 3, "account": 42},
        created_at=now - timedelta(minutes=1, seconds=2),
        started_at=now - timedelta(minutes=1),
        finished_at=now - timedelta(seconds=47),
        attempts=1,
        worker=WORKERS[1],
        retry_of=first,
        logs=[
            {"time": stamp, "level": "INFO", "message": "Fetching contacts of account 42"},
            {"time": stamp, "level": "INFO", "message": "121 contacts to push"},
            {"time": stamp, "level": "WARNING", "message": "3 contacts without e-mail: skipped"},
            {"time": stamp, "level": "INFO", "message": "Pushed 118 contacts"},
        ],
        attempt_log=[
            {
                "attempt": 1,
                "worker": WORKERS[1],
                "started_at": stamp,
                "finished_at": stamp,
                "status": "success",
                "error": "",
            },
        ],
    )
