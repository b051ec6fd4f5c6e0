"""django.tasks test tasks, on Django 6+ only, and what the worker does with their signals.

tests/testapp/tasks.py imports this module, so autodiscovery brings it into
the test process and into every worker process.
"""

from __future__ import annotations

import threading
from typing import Any

import django

if django.VERSION >= (6, 0):
    from django.dispatch import receiver
    from django.tasks.signals import task_finished, task_started

    from django_qtasks import app
    from tests.testapp import django_tasks

    #: The same function as django_tasks.double, registered as a qtasks task too.
    qtasks_double = app.task(name="backend_double")(django_tasks.double.func)

    def note_signal(task_result: Any, text: str) -> None:
        """Append ``text`` to the probe row's ``extra["signals"]``: the ORM works here."""
        if task_result.task.func is not django_tasks.signals_probe.func:
            return
        from django_qtasks.models import Task

        record = Task.objects.get(pk=task_result.id)
        record.extra = {**record.extra, "signals": [*record.extra.get("signals", []), text]}
        record.save(update_fields=["extra"])

    @receiver(task_started)
    def note_started(sender: type, task_result: Any, **kwargs: Any) -> None:
        thread = threading.current_thread().name.split("_")[0]
        note_signal(
            task_result,
            f"started {sender.__name__} {task_result.status} attempt {task_result.attempts} "
            f"in {thread}",
        )

    @receiver(task_started)
    def broken_receiver(sender: type, task_result: Any, **kwargs: Any) -> None:
        if task_result.task.func is django_tasks.upsets_a_receiver.func:
            raise RuntimeError("this receiver is broken")

    @receiver(task_finished)
    def note_finished(sender: type, task_result: Any, **kwargs: Any) -> None:
        errors = [error.exception_class_path for error in task_result.errors]
        note_signal(task_result, f"finished {sender.__name__} {task_result.status} {errors}")
