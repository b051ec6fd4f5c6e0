"""Retention under load: ``qtasks_purge`` deletes a backlog while workers drain tasks.

    make bench-purge
    .venv/bin/python benchmarks/purge.py [--rows 1000000] [--workers 2]
        [--concurrency 4] [--window 20] [--batch-size 1000]

On PostgreSQL (127.0.0.1:5432, a database of its own, qtasks_bench_purge):

1. ``--rows`` ended tasks are written by one ``INSERT ... SELECT
   generate_series`` (success, error and cancel; ended 31 days ago and more,
   one every 2 seconds); one row in ten is a chain's next step of the row
   before it, one in fifty a retry of it, so that the purge has links to set
   to NULL. Then ``VACUUM ANALYZE``.
2. ``--workers`` real ``qtasks_worker`` processes (``--concurrency`` each) run
   a stream of no-op tasks: a thread of this script keeps at least 2,000 of
   them waiting, so the workers are never idle.
3. Baseline: tasks the workers finish per second over ``--window`` seconds,
   no purge running.
4. ``manage.py qtasks_purge --older-than 30d`` runs (a real process), while
   the stream goes on; the figures: rows deleted per second (its own count
   over its wall time, start-up included; and from the first batch the
   sampler saw), and the tasks the workers finish per second meanwhile.

Lock waits: a side connection samples ``pg_stat_activity`` every 50 ms for
the workers' connections (``application_name`` bench-worker, set through
``PGAPPNAME``) and the purge's (bench-purge). A worker connection seen with
``wait_event_type = 'Lock'`` (a heavyweight lock: a row, a tuple, a
transaction it waits for) is a lock wait; consecutive samples of one
statement (pid and ``query_start``) are one wait. Printed: how many samples
saw a worker waiting on a lock, how many waits, and the longest one, as
the span between its first and last sample (a lower bound; a wait seen
once counts as 0) and as ``now() - query_start`` at its last sample (an
upper bound: the whole statement so far), and whether the purge's
connection was among those it waited for (``pg_blocking_pids``). Waits
shorter than the 50 ms
between samples may be missed: the samples say how often workers waited
long enough to notice, not that they never waited. Also printed: the
longest purge transaction seen (``now() - xact_start``), an upper bound
on how long one batch held its locks.

The drain rates compare two windows of one run. On a machine with few
cores, the purge's own CPU (its process and its PostgreSQL backend) slows
the workers whatever the locks; the lock samples tell the two apart.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from benchproject.systems import PG  # noqa: E402
from run import drop_database, recreate_database  # noqa: E402

DATABASE = "qtasks_bench_purge"
PY = sys.executable
MANAGE = str(HERE / "manage.py")
#: The old tasks' name, apart from the stream's.
OLD_NAME = "old_report"
STREAM_NAME = "noop"
#: Tasks kept waiting by the stream, so that the workers never run out.
BACKLOG = 2000
SAMPLE_EVERY = 0.05

#: The columns of the old rows: the model's, checked against it before use.
COLUMNS = {
    "uuid": "gen_random_uuid()",
    "task_name": f"'{OLD_NAME}'",
    "status": "(ARRAY['success', 'success', 'success', 'error', 'cancel'])[1 + i %% 5]",
    "priority": "0",
    "queue": "'default'",
    "args": "'[1, 2]'",
    "kwargs": "'{}'",
    "extra": "'{}'",
    "tags": "'[]'",
    "returning": '\'{"rows": 1200, "file": "report.csv"}\'',
    "traceback": "''",
    "logs": "'[]'",
    "cancel_reason": "''",
    "canceled_by": "''",
    "cancel_requested_at": "NULL",
    "attempts": "1",
    "max_attempts": "1",
    "attempt_log": "'[]'",
    "retry_of_id": "NULL",
    "worker": "'old-host:1:abc'",
    "schedule_id": "NULL",
    "chain_previous_id": "NULL",
    "chain_steps": "'[]'",
    "created_at": "t - interval '1 second'",
    "updated_at": "t",
    "run_after": "NULL",
    "published_at": "NULL",
    "started_at": "t - interval '1 second'",
    "finished_at": "t",
}

INSERT = """
    INSERT INTO django_qtasks_task ({columns})
    SELECT {values}
    FROM generate_series(1, %s) AS i,
        LATERAL (SELECT now() - interval '31 days' - i * interval '2 seconds') AS at(t)
"""

#: One row in ten: the next step of the row that ended before it; one in fifty
#: (of the others): a retry of it.
LINKS = """
    WITH numbered AS (
        SELECT uuid, row_number() OVER (ORDER BY finished_at) AS n
        FROM django_qtasks_task WHERE task_name = %s
    )
    UPDATE django_qtasks_task AS t
    SET chain_previous_id = CASE WHEN c.n %% 10 = 0 THEN p.uuid END,
        retry_of_id = CASE WHEN c.n %% 10 <> 0 THEN p.uuid END
    FROM numbered AS c JOIN numbered AS p ON p.n = c.n - 1
    WHERE t.uuid = c.uuid AND (c.n %% 10 = 0 OR c.n %% 50 = 1)
"""


def main() -> int:
    args = parse_args()
    load = os.getloadavg()[0]
    print(f"load average {load:.2f}; rows {args.rows:,}", flush=True)
    recreate_database(DATABASE)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchproject.settings",
        "BENCH_SYSTEM": "qtasks-db",
        "BENCH_DATABASE": DATABASE,
    }
    os.environ.update(env)
    subprocess.run([PY, MANAGE, "migrate", "--verbosity", "0"], cwd=HERE, env=env, check=True)
    try:
        result = measure(args, env)
    finally:
        if not args.keep:
            drop_database(DATABASE)
    report(args, result)
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="old rows (1000000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--concurrency", type=int, default=4, help="per worker (4)")
    parser.add_argument("--window", type=float, default=20, help="baseline seconds (20)")
    parser.add_argument("--batch-size", type=int, default=1000, help="purge batch (1000)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    return parser.parse_args()


def connect(**options: Any) -> Any:
    import psycopg

    return psycopg.connect(
        host=PG["HOST"], port=PG["PORT"], user=PG["USER"], dbname=DATABASE, **options
    )


def insert_old_rows(rows: int) -> float:
    import django

    django.setup()
    from django_qtasks.models import Task

    model_columns = {f.column for f in Task._meta.concrete_fields}
    assert model_columns == set(COLUMNS), model_columns ^ set(COLUMNS)
    started = time.monotonic()
    columns = ", ".join(f'"{column}"' for column in COLUMNS)
    sql = INSERT.format(columns=columns, values=", ".join(COLUMNS.values()))
    with connect(autocommit=True) as conn:
        conn.execute(sql, [rows])
        conn.execute(LINKS, [OLD_NAME])
        conn.execute("VACUUM ANALYZE django_qtasks_task")
    return time.monotonic() - started


@dataclass
class Samples:
    """What the side connection saw."""

    samples: int = 0
    samples_waiting: int = 0
    #: (pid, query_start) -> [first seen, last seen, longest now() - query_start, what,
    #: whether the purge's connection was among those it waited for]
    waits: dict[tuple[int, datetime], list[Any]] = field(default_factory=dict)
    longest_purge_transaction: float = 0.0
    #: When a purge transaction was first seen (the command's batches begin).
    first_batch: float | None = None


class Sampler(threading.Thread):
    QUERY = """
        SELECT application_name, pid, wait_event_type, wait_event, query_start,
            xact_start, clock_timestamp(), left(query, 60), pg_blocking_pids(pid)
        FROM pg_stat_activity
        WHERE datname = %s AND application_name IN ('bench-worker', 'bench-purge')
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stopping = threading.Event()
        self.seen = Samples()

    def run(self) -> None:
        with connect(autocommit=True) as conn:
            while not self.stopping.wait(SAMPLE_EVERY):
                rows = conn.execute(self.QUERY, [DATABASE]).fetchall()
                self.seen.samples += 1
                waiting = False
                purges = {row[1] for row in rows if row[0] == "bench-purge"}
                for app, pid, kind, event, query_start, xact_start, now, query, blockers in rows:
                    if app == "bench-purge" and xact_start is not None:
                        if self.seen.first_batch is None:
                            self.seen.first_batch = time.monotonic()
                        age = (now - xact_start).total_seconds()
                        self.seen.longest_purge_transaction = max(
                            self.seen.longest_purge_transaction, age
                        )
                    if app == "bench-worker" and kind == "Lock":
                        waiting = True
                        key = (pid, query_start)
                        upper = (now - query_start).total_seconds()
                        wait = self.seen.waits.setdefault(key, [now, now, 0.0, "", False])
                        wait[1] = now
                        wait[2] = max(wait[2], upper)
                        wait[3] = f"{event}: {query}"
                        wait[4] = wait[4] or bool(purges & set(blockers or []))
                self.seen.samples_waiting += waiting


class Stream(threading.Thread):
    """Keeps at least BACKLOG no-op tasks waiting."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stopping = threading.Event()

    def run(self) -> None:
        from bench_qtasks import tasks
        from django.db import connections

        from django_qtasks import app
        from django_qtasks.models import Task

        number = 0
        try:
            while not self.stopping.is_set():
                if Task.objects.ready().count() < BACKLOG:
                    app.add_tasks(tasks.noop.s(number + n) for n in range(500))
                    number += 500
                else:
                    self.stopping.wait(0.05)
        finally:
            connections.close_all()


def done() -> int:
    from django_qtasks.models import Task

    return Task.objects.filter(task_name=STREAM_NAME, status="success").count()


def measure(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    took_insert = insert_old_rows(args.rows)
    print(f"inserted {args.rows:,} ended rows in {took_insert:.1f}s", flush=True)
    from django_qtasks import app
    from django_qtasks.models import Task

    assert STREAM_NAME in app.tasks, f"no task {STREAM_NAME!r}: {list(app.tasks)}"
    worker_env = {**env, "PGAPPNAME": "bench-worker"}
    worker = [PY, MANAGE, "qtasks_worker", "--loglevel", "WARNING"]
    worker += ["--concurrency", str(args.concurrency)]
    workers = [subprocess.Popen(worker, cwd=HERE, env=worker_env) for _ in range(args.workers)]
    stream = Stream()
    sampler = Sampler()
    try:
        stream.start()
        deadline = time.monotonic() + 120
        while done() < 1000:
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not start")
            time.sleep(0.1)
        start, before = time.monotonic(), done()
        time.sleep(args.window)
        baseline = (done() - before) / (time.monotonic() - start)
        print(f"baseline drain {baseline:,.0f} tasks/s", flush=True)
        sampler.start()
        time.sleep(0.5)  # the sampler's first look
        purge_env = {**env, "PGAPPNAME": "bench-purge"}
        command = [PY, MANAGE, "qtasks_purge", "--older-than", "30d"]
        command += ["--batch-size", str(args.batch_size)]
        start, before = time.monotonic(), done()
        output = subprocess.run(
            command, cwd=HERE, env=purge_env, check=True, capture_output=True, text=True
        ).stdout
        ended = time.monotonic()
        took = ended - start
        during = (done() - before) / took
        sampler.stopping.set()
        sampler.join()
        match = re.search(r"Deleted (\d+) tasks", output)
        deleted = int(match[1]) if match else 0
        left = Task.objects.filter(task_name=OLD_NAME).count()
        print(output.strip(), flush=True)
    finally:
        stream.stopping.set()
        stream.join(30)
        for process in workers:
            process.terminate()
        for process in workers:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        from django.db import connections

        connections.close_all()
    return {
        "deleted": deleted,
        "left": left,
        "purge_s": took,
        "batches_s": ended - (sampler.seen.first_batch or start),
        "baseline": baseline,
        "during": during,
        "samples": sampler.seen,
        "command": " ".join(["manage.py", *command[2:]]),
    }


def report(args: argparse.Namespace, r: dict[str, Any]) -> None:
    seen: Samples = r["samples"]
    waits = sorted(seen.waits.values(), key=lambda wait: wait[1] - wait[0], reverse=True)
    print()
    print(f"rows inserted                {args.rows:,}")
    print(f"purge command                {r['command']}")
    print(f"rows deleted                 {r['deleted']:,} (old rows left: {r['left']:,})")
    print(f"purge wall time              {r['purge_s']:.1f} s")
    print(
        f"rows deleted per second      {r['deleted'] / r['purge_s']:,.0f} "
        f"({r['deleted'] / r['batches_s']:,.0f} from its first batch, "
        f"{r['batches_s']:.1f} s)"
    )
    print(
        f"drain without purge          {r['baseline']:,.0f} tasks/s "
        f"({args.workers} workers x concurrency {args.concurrency})"
    )
    print(
        f"drain during the purge       {r['during']:,.0f} tasks/s "
        f"({r['during'] / r['baseline']:.0%} of the baseline)"
    )
    on_purge = [wait for wait in waits if wait[4]]
    print(
        f"worker lock waits            {len(waits)} waits seen in "
        f"{seen.samples_waiting} of {seen.samples} samples (every {SAMPLE_EVERY * 1000:.0f} ms); "
        f"{len(on_purge)} of them on the purge's connection"
    )
    for label, found in (("longest worker lock wait", waits), ("  ... on the purge", on_purge)):
        if not found:
            print(f"{label:<29}none seen")
            continue
        first, last, upper, what, _ = found[0]
        print(
            f"{label:<29}{(last - first).total_seconds() * 1000:.0f} ms between samples, "
            f"statement {upper * 1000:.0f} ms so far ({what})"
        )
    print(f"longest purge transaction    {seen.longest_purge_transaction * 1000:.0f} ms seen")


if __name__ == "__main__":
    sys.exit(main())
