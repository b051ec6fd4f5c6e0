"""``manage.py qtasks_worker``: run registered tasks until stopped."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from django.core.checks import Tags
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_qtasks.conf import qtasks_settings
from django_qtasks.worker.worker import Worker

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

#: The system checks run before a worker or a beat starts: settings (ours are
#: tagged compatibility), models, caches, signals. Not those of templates,
#: URLs or the admin: they import the project's web side, half of a worker's
#: start-up, for nothing it uses (``manage.py check`` runs them all).
PROCESS_CHECKS = [Tags.compatibility, Tags.models, Tags.caches, Tags.signals, Tags.async_support]


def add_loglevel_argument(parser: CommandParser) -> None:
    parser.add_argument(
        "--loglevel",
        "-l",
        default="INFO",
        type=str.upper,
        choices=LEVELS,
        help="Level of the django_qtasks loggers (default: INFO).",
    )


def configure_logging(level: str) -> None:
    """Honour Django's LOGGING; add a console handler only if it set none for us."""
    logger = logging.getLogger("django_qtasks")
    logger.setLevel(level)
    if not logger.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        # argparse shows this message as is ("argument --concurrency/-c: ...").
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {value!r}")
    return number


def prefetch_value(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(
            f"must be 'auto' or a whole number, 0 or more, not {value!r}"
        )
    return number


class Command(BaseCommand):
    help = "Run django-qtasks tasks: async ones on an event loop, sync ones in threads."
    requires_system_checks = PROCESS_CHECKS

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queues",
            "-Q",
            default="",
            help="Comma-separated queues to take tasks from (default: QTASKS['DEFAULT_QUEUE']).",
        )
        parser.add_argument(
            "--concurrency",
            "-c",
            type=positive_int,
            help="Tasks run at once (default: QTASKS['CONCURRENCY']).",
        )
        parser.add_argument(
            "--prefetch",
            type=prefetch_value,
            help="Tasks claimed ahead of free slots, or 'auto' (default: QTASKS['PREFETCH']).",
        )
        add_loglevel_argument(parser)
        parser.add_argument(
            "--burst", action="store_true", help="Stop once no task is due and none is running."
        )
        parser.add_argument(
            "--max-tasks", type=positive_int, help="Stop after running this many tasks."
        )
        parser.add_argument(
            "--shutdown-timeout",
            type=float,
            help="Seconds running tasks get to end after SIGINT/SIGTERM (default: "
            "QTASKS['SHUTDOWN_TIMEOUT']).",
        )
        parser.add_argument("--worker-id", help="Name of this worker (default: host:pid:random).")
        parser.add_argument(
            "--beat",
            action="store_true",
            help="Also enqueue periodic tasks (as manage.py qtasks_beat does).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        configure_logging(options["loglevel"])
        queues = [name.strip() for name in options["queues"].split(",") if name.strip()]
        if options["shutdown_timeout"] is not None and options["shutdown_timeout"] < 0:
            raise CommandError("--shutdown-timeout must not be negative.")
        qtasks_settings.as_dict()  # a broken QTASKS fails here, with its message
        worker = Worker(
            queues=queues or None,
            concurrency=options["concurrency"],
            prefetch=options["prefetch"],
            worker_id=options["worker_id"],
            burst=options["burst"],
            max_tasks=options["max_tasks"],
            shutdown_timeout=options["shutdown_timeout"],
            beat=options["beat"],
        )
        worker.run()
        stuck = worker.stuck_threads()
        if stuck:
            # Threads blocked in C code cannot be stopped; their tasks were
            # returned to the queue, so leave without waiting for them.
            logging.getLogger("django_qtasks.worker").warning(
                "Exiting with %s task threads still blocked", len(stuck)
            )
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
