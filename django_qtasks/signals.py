"""Signals of a task's life, sent as Django sends its own (``django.db.models.signals``).

The sender is the task's handle (``@app.task``'s return value), so that
``task_failed.connect(receiver, sender=send_report)`` hears one task only.
Every signal has ``task``: the Task row, its fields as the run left them.

- ``task_started``: an attempt starts (``task`` is ``process``, its attempt counted).
- ``task_succeeded``: it ended in ``success``; ``result`` is the stored result.
- ``task_retried``: an attempt failed and another comes; ``exception``.
- ``task_failed``: it ended in ``error``; ``exception`` (None when the error
  is not an exception of the task, e.g. a result the database refused) and
  ``traceback`` (the stored text).
- ``task_cancelled``: it ended in ``cancel``; ``reason``. Sent by the worker
  when a run ends cancelled, and by the process that cancels a task that
  had not started (``Task.cancel()``, the admin, the API).
- ``task_finished``: after each of the three endings above, as a last word.

The worker sends them from the thread that runs sync tasks, where the ORM
may be used, once the row is written; a receiver that raises is logged and
changes nothing. With no receiver connected, sending costs one check.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger("django_qtasks.signals")

task_started = Signal()
task_succeeded = Signal()
task_retried = Signal()
task_failed = Signal()
task_cancelled = Signal()
task_finished = Signal()


def send(signal: Signal, sender: Any, **kwargs: Any) -> None:
    """Send ``signal``; a receiver that raises is logged, and the others still run."""
    for receiver, response in signal.send_robust(sender, **kwargs):
        if isinstance(response, Exception):
            task = kwargs.get("task")
            logger.error(
                "Receiver %r of a django-qtasks signal failed for task %s",
                receiver,
                getattr(task, "uuid", None),
                exc_info=response,
            )
