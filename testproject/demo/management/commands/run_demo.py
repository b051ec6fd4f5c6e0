"""Enqueue the demo tasks and show how each one ends."""

from typing import Any

from django.core.management.base import BaseCommand

from demo.tasks import add, always_fails, count_up, flaky, test_echo_ctx
from django_qtasks import app


class Command(BaseCommand):
    help = "Enqueue the demo tasks, wait for a running qtasks_worker to end them, print them."

    def handle(self, *args: Any, **options: Any) -> None:
        tasks = [
            add.add_task(2, 3),
            app.add_task("add", 40, 2),
            count_up.add_task(steps=3),
            flaky.add_task(fail_times=1),
            always_fails.add_task(),
            test_echo_ctx.add_task(),
        ]
        for queued in tasks:
            done = app.wait(queued.uuid, timeout=60)
            self.stdout.write(repr(done))
