"""``manage.py qtasks_beat``: enqueue periodic tasks when they fall due."""

from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_qtasks.beat import Beat
from django_qtasks.conf import qtasks_settings
from django_qtasks.management.commands.qtasks_worker import (
    PROCESS_CHECKS,
    add_loglevel_argument,
    configure_logging,
)


class Command(BaseCommand):
    help = (
        "Enqueue periodic tasks (Schedule rows, @app.task(schedule=...), QTASKS['SCHEDULES']) "
        "when they fall due. Several beats may run: each run is enqueued once."
    )
    requires_system_checks = PROCESS_CHECKS

    def add_arguments(self, parser: CommandParser) -> None:
        add_loglevel_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        configure_logging(options["loglevel"])
        qtasks_settings.as_dict()  # a broken QTASKS fails here, with its message
        beat = Beat()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: beat.stop())
        beat.run()
