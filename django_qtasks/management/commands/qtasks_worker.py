"""``manage.py qtasks_worker``: run registered tasks until stopped."""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.core.checks import Tags
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_qtasks.conf import qtasks_settings
from django_qtasks.tracer import flush_spans
from django_qtasks.worker.pool import Supervisor
from django_qtasks.worker.reload import CHECK_ENV, STATE_ENV
from django_qtasks.worker.worker import Worker

if TYPE_CHECKING:
    from django_qtasks.metrics.exporter import WorkerMetrics

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


def port_number(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(
            f"must be a TCP port, 1 to 65535 (0: any free one), not {value!r}"
        )
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


def memory_size(value: str) -> int:
    """KiB, as Celery's --max-memory-per-child; or with a unit: 512M, 2G."""
    units = {"K": 1, "M": 1024, "G": 1024 * 1024}
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    unit = units.get(text[-1:], 0)
    try:
        number = float(text[:-1] if unit else text) * (unit or 1)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(
            f"must be a size in KiB, or with a unit such as 512M or 2G, not {value!r}"
        )
    return int(number)


def autoscale_bounds(value: str) -> tuple[int, int]:
    """``MAX,MIN`` (Celery's order), or ``MAX`` alone (MIN 1)."""
    parts = value.split(",")
    try:
        most, least = (int(parts[0]), int(parts[1]) if len(parts) > 1 else 1)
    except ValueError:
        most = least = 0
    if len(parts) > 2 or least < 1 or most < least:
        raise argparse.ArgumentTypeError(
            f"must be MAX,MIN with 1 <= MIN <= MAX, for example 8,2; not {value!r}"
        )
    return most, least


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
        pool = parser.add_argument_group(
            "processes",
            "A supervisor starts worker processes, each with its own --concurrency, and "
            "replaces them when they die or reach a limit.",
        )
        pool.add_argument(
            "--processes",
            "-p",
            type=positive_int,
            help="Worker processes (default: QTASKS['PROCESSES'], 1: no supervisor).",
        )
        pool.add_argument(
            "--autoscale",
            type=autoscale_bounds,
            metavar="MAX,MIN",
            help="Between MIN and MAX processes, following the depth of the queues.",
        )
        pool.add_argument(
            "--max-tasks-per-child",
            type=positive_int,
            help="Replace a process once it has run this many tasks "
            "(default: QTASKS['MAX_TASKS_PER_CHILD']).",
        )
        pool.add_argument(
            "--max-memory-per-child",
            type=memory_size,
            metavar="KIB",
            help="Replace a process once its resident memory passes this many KiB, or 512M, "
            "2G (default: QTASKS['MAX_MEMORY_PER_CHILD']).",
        )
        pool.add_argument(
            "--reload",
            action="store_true",
            help="Restart the processes when Python files change (for development).",
        )
        metrics = parser.add_argument_group(
            "metrics", "Prometheus metrics (pip install 'django-qtasks[prometheus]')."
        )
        metrics.add_argument(
            "--metrics-port",
            type=port_number,
            metavar="PORT",
            help="Serve Prometheus metrics over HTTP on this port (a pool: its supervisor).",
        )
        metrics.add_argument(
            "--metrics-addr",
            metavar="ADDRESS",
            help="Address the metrics are served on (default: 127.0.0.1).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        configure_logging(options["loglevel"])
        queues = [name.strip() for name in options["queues"].split(",") if name.strip()]
        if options["shutdown_timeout"] is not None and options["shutdown_timeout"] < 0:
            raise CommandError("--shutdown-timeout must not be negative.")
        qtasks_settings.as_dict()  # a broken QTASKS fails here, with its message
        if os.environ.get(CHECK_ENV):
            return  # a pool checking that new code loads (worker.reload): it does
        processes = options["processes"] or qtasks_settings.PROCESSES
        max_tasks_per_child = options["max_tasks_per_child"] or qtasks_settings.MAX_TASKS_PER_CHILD
        max_memory = options["max_memory_per_child"] or qtasks_settings.MAX_MEMORY_PER_CHILD
        if (
            processes > 1
            or options["autoscale"]
            or options["reload"]
            or max_tasks_per_child
            or max_memory
        ):
            for option in ("burst", "max_tasks"):
                if options[option]:
                    raise CommandError(
                        f"--{option.replace('_', '-')} stops a single worker process: it does "
                        "not go with --processes, --autoscale, --reload or the per-child limits."
                    )
            sys.exit(self.run_pool(options, queues, processes, max_tasks_per_child, max_memory))
        worker_id = options["worker_id"]
        metrics = None
        if wants_metrics(options):
            worker_id = worker_id or default_worker_id()
            metrics = start_metrics(options, worker_id)
        worker = Worker(
            queues=queues or None,
            concurrency=options["concurrency"],
            prefetch=options["prefetch"],
            worker_id=worker_id,
            burst=options["burst"],
            max_tasks=options["max_tasks"],
            shutdown_timeout=options["shutdown_timeout"],
            beat=options["beat"],
            observer=metrics.recorder if metrics is not None else None,
        )
        try:
            if metrics is not None:
                metrics.serve_in_thread()
            worker.run()
        finally:
            if metrics is not None:
                metrics.stop()
        stuck = worker.stuck_threads()
        if stuck:
            # Threads blocked in C code cannot be stopped; their tasks were
            # returned to the queue, so leave without waiting for them.
            logging.getLogger("django_qtasks.worker").warning(
                "Exiting with %s task threads still blocked", len(stuck)
            )
            flush_spans()
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)

    def run_pool(
        self,
        options: dict[str, Any],
        queues: list[str],
        processes: int,
        max_tasks_per_child: int | None,
        max_memory: int | None,
    ) -> int:
        adopted = os.environ.pop(STATE_ENV, None)
        state = json.loads(adopted) if adopted else None
        supervisor_id = (
            (state or {}).get("supervisor_id") or options["worker_id"] or default_worker_id()
        )
        adopted_metrics = (state or {}).get("metrics")
        metrics = None
        if adopted_metrics or wants_metrics(options):
            metrics = start_metrics(options, supervisor_id, adopted_metrics)
        observer = metrics.recorder if metrics is not None else None

        def make_worker(worker_id: str, tell: Callable[[bytes], object]) -> Worker:
            return Worker(
                queues=queues or None,
                concurrency=options["concurrency"],
                prefetch=options["prefetch"],
                worker_id=worker_id,
                max_tasks=max_tasks_per_child,
                shutdown_timeout=options["shutdown_timeout"],
                supervisor=supervisor_id,
                max_memory=max_memory,
                tell_supervisor=tell,
                observer=observer,
            )

        supervisor = Supervisor(
            supervisor_id=supervisor_id,
            make_worker=make_worker,
            processes=processes,
            queues=queues or [qtasks_settings.DEFAULT_QUEUE],
            concurrency=options["concurrency"] or qtasks_settings.CONCURRENCY,
            autoscale=options["autoscale"],
            beat=options["beat"],
            reload=options["reload"],
            adopted=state,
            observer=observer,
            metrics=metrics,
        )
        try:
            return supervisor.run()
        finally:
            # (Not reached by a restart: ``exec`` hands the run to the next image.)
            if metrics is not None:
                metrics.stop()


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def wants_metrics(options: dict[str, Any]) -> bool:
    """``--metrics-port``, or ``QTASKS["METRICS_DIR"]``: the worker records its metrics."""
    if options["metrics_addr"] is not None and options["metrics_port"] is None:
        raise CommandError("--metrics-addr goes with --metrics-port.")
    return options["metrics_port"] is not None or bool(qtasks_settings.METRICS_DIR)


def start_metrics(
    options: dict[str, Any], worker_id: str, adopted: dict[str, Any] | None = None
) -> WorkerMetrics:
    root = qtasks_settings.METRICS_DIR
    try:
        from django_qtasks.metrics.exporter import MetricsUnavailable, WorkerMetrics
    except ImportError as exc:
        wanted = "QTASKS['METRICS_DIR']" if options["metrics_port"] is None else "--metrics-port"
        raise CommandError(
            f"{wanted} needs prometheus_client ({exc}): pip install 'django-qtasks[prometheus]'"
        ) from exc
    try:
        return WorkerMetrics.start(
            worker_id=worker_id,
            root=os.fspath(root) if root else None,
            port=options["metrics_port"],
            addr=options["metrics_addr"] or "127.0.0.1",
            adopted=adopted,
        )
    except MetricsUnavailable as exc:
        raise CommandError(str(exc)) from exc
