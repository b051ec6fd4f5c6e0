"""Imported by no module: only ``autodiscover_tasks(app, ["tasks_discovered"])``
(QTasks' Django integration) brings it in (tests/test_compat.py)."""

from __future__ import annotations

from django_qtasks.compat import QueueTasks

app = QueueTasks()


@app.task
def discovered_hello(name: str) -> str:
    return f"Hello, {name}!"
