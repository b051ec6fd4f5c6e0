"""Fault scenarios: every task ends exactly once, and nothing waits forever.

    .venv/bin/python benchmarks/faults.py [--scenarios baseline,lock,...]
        [--brokers django,redis] [--out DIR] [--keep]

Each scenario starts real ``qtasks_worker`` processes (settings:
``faultproject.settings``, tasks: ``fault_tasks``), enqueues tasks, causes
its fault, waits for the rows to end, stops the workers, and counts:

- enqueued: tasks the scenario enqueued;
- ended: rows in a final status (success, error, cancel) at the deadline;
- completed twice: tasks whose *body* completed more than once, from the
  lines the tasks append to a file of their own when they complete (so two
  completions count even if only one result was stored);
- stuck: rows not in a final status at the deadline.

It runs in a PostgreSQL database of its own (created, then dropped) and,
on Redis, under a queue prefix of its own (its keys are deleted at the end).
The exit status is 1 if any task completed twice or is stuck, or if a
scenario's own check failed (shown under "notes").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

logger = logging.getLogger("faults")

DB_NAME = f"qtasks_faults_{os.getpid()}"
PREFIX = f"qtasks-faults-{os.getpid()}"
BROKERS = {"django": "django://", "redis": "redis://127.0.0.1:6379/9"}
#: Options every worker gets; --prefetch 0: a worker claims only what it starts.
WORKER_OPTIONS = ("--concurrency", "8", "--prefetch", "0")

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faultproject.settings")
os.environ["FAULTS_DB"] = DB_NAME
os.environ["FAULTS_PREFIX"] = PREFIX


@dataclass
class Result:
    scenario: str
    broker: str
    enqueued: int = 0
    ended: int = 0
    twice: int = 0
    stuck: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    #: A scenario's own check that failed (besides twice and stuck).
    failed: bool = False


class Worker:
    """A ``python -m django qtasks_worker`` process, its output in a log file."""

    def __init__(self, run: Run, name: str, *options: str) -> None:
        self.name = f"{name}-{os.getpid()}"
        self.log_path = run.out / f"{run.broker}-{run.scenario}-{name}.log"
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "django",
                "qtasks_worker",
                "--queues",
                run.queue,
                "--worker-id",
                self.name,
                *WORKER_OPTIONS,
                *options,
            ],
            cwd=HERE,
            env=run.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while " started: " not in self.log:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.name} did not start:\n{self.log}")
            time.sleep(0.05)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def stop(self, timeout: float = 10) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``; whether it stopped by itself."""
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return False
        finally:
            self.log_file.close()


class Run:
    """One scenario on one broker: its queue, its completion file, its workers."""

    def __init__(self, scenario: str, broker: str, out: Path) -> None:
        self.scenario, self.broker, self.out = scenario, broker, out
        self.queue = scenario
        self.done_path = out / f"{broker}-{scenario}-done.jsonl"
        self.done_path.unlink(missing_ok=True)
        self.env = {
            **os.environ,
            "FAULTS_BROKER": BROKERS[broker],
            "FAULTS_DONE": str(self.done_path),
            "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
            "PYTHONUNBUFFERED": "1",
        }
        self.workers: list[Worker] = []
        self.uuids: list[str] = []
        self.result = Result(scenario, broker)

    def worker(self, name: str, *options: str) -> Worker:
        worker = Worker(self, name, *options)
        self.workers.append(worker)
        return worker

    def add(self, task_name: str, *args: Any) -> str:
        from django_qtasks import app

        uuid = str(app.add_task(task_name, *args, queue=self.queue).uuid)
        self.uuids.append(uuid)
        return uuid

    def add_many(self, steps: list[tuple[str, tuple[Any, ...]]]) -> None:
        from django_qtasks import app

        batch = [app.get_task(name).s(*args) for name, args in steps]
        self.uuids += [str(task.uuid) for task in app.add_tasks(batch, queue=self.queue)]

    def statuses(self) -> Counter[str]:
        from django_qtasks.models import Task

        rows = Task.objects.filter(pk__in=self.uuids).values_list("status", flat=True)
        return Counter(rows)

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def wait_ended(self, timeout: float) -> bool:
        from django_qtasks.models import FINAL_STATUSES

        final = {str(status) for status in FINAL_STATUSES}

        def ended() -> bool:
            counts = self.statuses()
            return sum(n for status, n in counts.items() if status in final) == len(self.uuids)

        return self.wait_until(ended, timeout)

    def running_on(self, worker: Worker, count: int) -> Callable[[], bool]:
        from django_qtasks.models import Task

        def check() -> bool:
            rows = Task.objects.filter(pk__in=self.uuids, status="process", worker=worker.name)
            return rows.count() >= count

        return check

    def note(self, text: str, failed: bool = False) -> None:
        self.result.notes.append(text)
        self.result.failed = self.result.failed or failed

    def count(self) -> None:
        """Fill in the result, once every worker has stopped."""
        from django_qtasks.models import FINAL_STATUSES

        counts = self.statuses()
        final = {str(status) for status in FINAL_STATUSES}
        result = self.result
        result.enqueued = len(self.uuids)
        result.ended = sum(n for status, n in counts.items() if status in final)
        result.stuck = result.enqueued - result.ended
        if result.stuck:
            waiting = {s: n for s, n in counts.items() if s not in final}
            self.note("not ended: " + ", ".join(f"{n} {s}" for s, n in sorted(waiting.items())))
        lines = self.done_path.read_text().splitlines() if self.done_path.exists() else []
        completions = Counter(json.loads(line)["uuid"] for line in lines)
        twice = {uuid: n for uuid, n in completions.items() if n > 1}
        result.twice = len(twice)
        for uuid in list(twice)[:3]:
            runs = [json.loads(line) for line in lines if json.loads(line)["uuid"] == uuid]
            logger.info("  completed %s times: %s", len(runs), runs)


# Scenarios -------------------------------------------------------------------------


def baseline(run: Run) -> None:
    """200 plain tasks, two workers, no fault."""
    run.worker("a")
    run.worker("b")
    for number in range(200):
        run.add("plain", number)
    run.wait_ended(60)


def lock(run: Run) -> None:
    """Worker A's result write waits on a row lock longer than HEARTBEAT_TIMEOUT.

    A runs three 12 s tasks and a 1 s one; another connection locks the 1 s
    task's row (SELECT ... FOR UPDATE) for 8 s, so A's write of its result
    waits; meanwhile worker B runs. A is alive all along: none of its tasks
    may run again.
    """
    import psycopg
    from django.conf import settings

    from django_qtasks.models import Task

    a = run.worker("a")
    for _ in range(3):
        run.add("long_sleep", 12)
    if not run.wait_until(run.running_on(a, 3), 20):
        run.note("A did not start the long tasks", failed=True)
    short = run.add("short", 1.0)
    if not run.wait_until(run.running_on(a, 4), 10):
        run.note("A did not start the short task", failed=True)
    database = settings.DATABASES["default"]
    with psycopg.connect(
        host=database["HOST"], port=database["PORT"], user=database["USER"], dbname=DB_NAME
    ) as locker:
        locker.execute(
            f'SELECT 1 FROM "{Task._meta.db_table}" WHERE "uuid" = %s FOR UPDATE', [short]
        )
        logger.info("  row of task %s locked for 8 s", short)
        run.worker("b")
        time.sleep(8)
        locker.rollback()
    run.wait_ended(45)


def shutdown(run: Run) -> None:
    """SIGTERM worker A with --shutdown-timeout 1 while its tasks loop in ctx.sleep.

    The tasks end about 1.2 to 1.9 s after the signal, once the timeout is
    over, while worker B runs.
    """
    a = run.worker("a", "--shutdown-timeout", "1")
    end_at = time.time() + 12
    for offset in range(8):
        run.add("sleep_until", end_at + offset * 0.1)
    if not run.wait_until(run.running_on(a, 8), 10):
        run.note("A did not start all the tasks", failed=True)
    run.worker("b")
    pause = end_at - 1.2 - time.time()
    if pause < 0:
        run.note("worker B started too late for the timing", failed=True)
    time.sleep(max(pause, 0))
    logger.info("  SIGTERM to worker A")
    a.signal(signal.SIGTERM)
    run.wait_ended(40)


def retry_fast(run: Run) -> None:
    """300 tasks that fail at once and are retried (retry=2), enqueued one by one.

    A retry written before the client marks the row published must still run.
    """
    run.worker("a")
    run.worker("b")
    for _ in range(300):
        run.add("fail_once")
    run.wait_ended(20)


def lost_message(run: Run) -> None:
    """The broker loses the messages: their Redis lists are deleted after the enqueue."""
    import redis

    for number in range(20):
        run.add("plain", number)
    client = redis.Redis.from_url(BROKERS["redis"])
    keys = list(client.scan_iter(match=f"{PREFIX}.{run.queue}*"))
    deleted = client.delete(*keys) if keys else 0
    logger.info("  deleted %s Redis keys: %s", deleted, [key.decode() for key in keys])
    run.worker("a")
    run.worker("b")
    run.wait_ended(20)


UNSTORABLE = ("returns_nul", "returns_surrogate", "logs_nul")


def unstorable(run: Run) -> None:
    """Results and log lines that PostgreSQL cannot store, retry=2: each ends, once."""
    run.worker("a")
    run.worker("b")
    for name in UNSTORABLE:
        for _ in range(5):
            run.add(name)
    run.wait_ended(20)


def batch(run: Run) -> None:
    """200 fast tasks ending together, 5 of them with a result PostgreSQL cannot store."""
    from django_qtasks.models import Task

    run.worker("a")
    run.worker("b")
    steps: list[tuple[str, tuple[Any, ...]]] = [("plain", (number,)) for number in range(200)]
    for index in range(5):
        steps.insert(index * 40 + 20, ("returns_nul", ()))
    run.add_many(steps)
    run.wait_ended(20)
    good = Task.objects.filter(pk__in=run.uuids, task_name="plain")
    wrong = good.exclude(status="success").count()
    run.note(f"good tasks not success: {wrong}", failed=wrong > 0)


@dataclass(frozen=True)
class Scenario:
    run: Callable[[Run], None]
    brokers: tuple[str, ...] = ("django", "redis")


SCENARIOS = {
    "baseline": Scenario(baseline),
    "lock": Scenario(lock),
    "shutdown": Scenario(shutdown),
    "retry-fast": Scenario(retry_fast, ("redis",)),
    "lost-message": Scenario(lost_message, ("redis",)),
    "unstorable": Scenario(unstorable),
    "batch": Scenario(batch),
}


# Running -----------------------------------------------------------------------------


def run_scenario(name: str, broker: str, out: Path) -> Result:
    from django.conf import settings
    from django.test import override_settings

    from django_qtasks.models import Task, WorkerHeartbeat

    run = Run(name, broker, out)
    started = time.monotonic()
    with override_settings(QTASKS={**settings.QTASKS, "BROKER_URL": BROKERS[broker]}):
        try:
            SCENARIOS[name].run(run)
        except Exception as exc:
            logger.exception("scenario %s on %s failed", name, broker)
            run.note(f"scenario failed: {exc}", failed=True)
        finally:
            for worker in run.workers:  # all at once, then each waited for
                worker.signal(signal.SIGTERM)
            for worker in run.workers:
                if not worker.stop():
                    run.note(f"worker {worker.name} still running 10 s after SIGTERM: killed")
        run.count()
        for worker in run.workers:
            if "Traceback" in worker.log:
                run.note(f"traceback in {worker.log_path.name}")
        Task.objects.all().delete()
        WorkerHeartbeat.objects.all().delete()
    run.result.seconds = time.monotonic() - started
    return run.result


def admin_connection() -> Any:
    import psycopg

    return psycopg.connect(host="127.0.0.1", port=5432, user="postgres", autocommit=True)


@contextlib.contextmanager
def own_database(keep: bool) -> Iterator[None]:
    with admin_connection() as conn:
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    try:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        yield
    finally:
        from django.db import connections

        connections.close_all()
        if keep:
            logger.info("kept database %s", DB_NAME)
        else:
            with admin_connection() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def delete_redis_keys() -> None:
    import redis

    client = redis.Redis.from_url(BROKERS["redis"])
    keys = [*client.scan_iter(match=f"{PREFIX}*"), *client.scan_iter(match=f"*{PREFIX}*")]
    if keys:
        client.delete(*set(keys))


def print_table(results: list[Result]) -> None:
    header = ["scenario", "broker", "enqueued", "ended", "completed twice", "stuck", "seconds"]
    rows = [
        [
            r.scenario,
            r.broker,
            str(r.enqueued),
            str(r.ended),
            str(r.twice),
            str(r.stuck),
            f"{r.seconds:.0f}",
        ]
        for r in results
    ]
    widths = [max(len(cells[i]) for cells in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for cells in rows:
        print(line(cells))
    notes = [(r, note) for r in results for note in r.notes]
    if notes:
        print()
        for r, note in notes:
            print(f"{r.scenario} on {r.broker}: {note}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, of: {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--brokers", default=",".join(BROKERS), help="comma-separated: django, redis"
    )
    parser.add_argument("--out", help="directory for the workers' logs (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    return parser.parse_args()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args = parse_args()
    names = [name for name in args.scenarios.split(",") if name]
    brokers = [name for name in args.brokers.split(",") if name]
    unknown = [n for n in names if n not in SCENARIOS] + [b for b in brokers if b not in BROKERS]
    if unknown:
        print(f"unknown scenarios or brokers: {unknown}", file=sys.stderr)
        return 2
    out = Path(args.out or tempfile.mkdtemp(prefix="qtasks-faults-"))
    out.mkdir(parents=True, exist_ok=True)
    logger.info("database %s, queue prefix %s, logs in %s", DB_NAME, PREFIX, out)
    results: list[Result] = []
    started = time.monotonic()
    try:
        with own_database(args.keep):
            for broker in brokers:
                for name in names:
                    if broker not in SCENARIOS[name].brokers:
                        continue
                    logger.info("%s on %s", name, broker)
                    result = run_scenario(name, broker, out)
                    results.append(result)
                    logger.info(
                        "%s on %s: %s enqueued, %s ended, %s completed twice, %s stuck (%.0f s)",
                        name,
                        broker,
                        result.enqueued,
                        result.ended,
                        result.twice,
                        result.stuck,
                        result.seconds,
                    )
    except KeyboardInterrupt:
        print("\nInterrupted", file=sys.stderr)
    finally:
        if "redis" in brokers:
            delete_redis_keys()
    print()
    print_table(results)
    print(f"\n{time.monotonic() - started:.0f} s in all; workers' logs in {out}")
    bad = any(r.twice or r.stuck or r.failed for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
