"""Measure one system: W1 (throughput), W2 (latency) and the worker's peak memory.

Started by ``run.py`` once per system, in its own process group, with
BENCH_SYSTEM naming the system; not meant to be run by hand. It enqueues
through the system's normal API, starts the system's own worker CLI as
subprocesses, reads every result back from the system's own result store,
and writes what it measured as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
MANAGE = str(HERE / "manage.py")
PY = sys.executable
#: The client looks this often for finished tasks, with one cheap count query.
POLL = 0.02
CHUNK = 1000
#: Arguments of the bulk phase's tasks: apart from W1's, so that no result is taken for another.
BULK_BASE = 1_000_000


def chunks(items: list[str], size: int = CHUNK) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Timeout(Exception):
    pass


# Adapters: the same few operations on each system, through its own API ------------


class Adapter:
    #: argv of each worker process; all of them together give concurrency 2.
    workers: list[list[str]] = []

    def enqueue_noop(self, i: int) -> str:
        raise NotImplementedError

    def enqueue_stamp(self) -> str:
        raise NotImplementedError

    def enqueue_bulk(self, numbers: list[int]) -> list[str] | None:
        """noop(i) for each of ``numbers`` through the system's bulk API; None: it has none."""
        return None

    def done_count(self) -> int:
        """Tasks that ended successfully so far, from the result store (cumulative)."""
        raise NotImplementedError

    def results(self, ids: list[str]) -> dict[str, Any]:
        """The stored result of each of these tasks that ended successfully."""
        raise NotImplementedError


class QTasks(Adapter):
    workers = [
        [
            PY,
            MANAGE,
            "qtasks_worker",
            "--concurrency",
            "2",
            "--loglevel",
            "WARNING",
            # run.py --qtasks-worker-args: what an option costs (e.g. --metrics-port 0).
            *shlex.split(os.environ.get("BENCH_QTASKS_WORKER_ARGS", "")),
        ]
    ]

    def __init__(self) -> None:
        from bench_qtasks.tasks import noop, stamp

        from django_qtasks.models import Task

        self.noop, self.stamp, self.Task = noop, stamp, Task

    def enqueue_noop(self, i: int) -> str:
        return str(self.noop.add_task(i).uuid)

    def enqueue_stamp(self) -> str:
        return str(self.stamp.add_task().uuid)

    def enqueue_bulk(self, numbers: list[int]) -> list[str] | None:
        from django_qtasks import app

        return [str(task.uuid) for task in app.add_tasks(self.noop.s(i) for i in numbers)]

    def done_count(self) -> int:
        return self.Task.objects.filter(status="success").count()

    def results(self, ids: list[str]) -> dict[str, Any]:
        found = {}
        for part in chunks(ids):
            rows = self.Task.objects.filter(uuid__in=part, status="success")
            found.update(
                (str(uuid), value) for uuid, value in rows.values_list("uuid", "returning")
            )
        return found

    def lifetimes(self, ids: list[str]) -> list[tuple[Any, Any, Any]]:
        """(created_at, started_at, finished_at) of these tasks, for the cross-checks."""
        times = []
        for part in chunks(ids):
            rows = self.Task.objects.filter(uuid__in=part)
            times += rows.values_list("created_at", "started_at", "finished_at")
        return times


class Celery(Adapter):
    workers = [
        # prefork with 2 child processes: Celery's default pool, at concurrency 2.
        [
            *(PY, "-m", "celery", "-A", "benchproject.celery", "worker"),
            *("--concurrency", "2", "--pool", "prefork", "--loglevel", "WARNING"),
        ]
    ]

    def __init__(self, results_in_db: bool) -> None:
        import benchproject.celery  # noqa: F401  (binds the shared tasks to the app)
        from bench_celery.tasks import noop, stamp

        self.noop, self.stamp, self.in_db = noop, stamp, results_in_db
        if results_in_db:
            from django_celery_results.models import TaskResult

            self.TaskResult = TaskResult
        else:
            import redis
            from django.conf import settings

            self.redis = redis.Redis.from_url(settings.CELERY_RESULT_BACKEND)

    def enqueue_noop(self, i: int) -> str:
        return self.noop.delay(i).id

    def enqueue_stamp(self) -> str:
        return self.stamp.delay().id

    def enqueue_bulk(self, numbers: list[int]) -> list[str] | None:
        from celery import group

        return [result.id for result in group(self.noop.s(i) for i in numbers).apply_async()]

    def done_count(self) -> int:
        if self.in_db:
            return self.TaskResult.objects.filter(status="SUCCESS").count()
        # One key per task in the results database; results() checks their status.
        return self.redis.dbsize()

    def results(self, ids: list[str]) -> dict[str, Any]:
        found = {}
        for part in chunks(ids):
            if self.in_db:
                rows = self.TaskResult.objects.filter(task_id__in=part, status="SUCCESS")
                found.update(
                    (id_, json.loads(res)) for id_, res in rows.values_list("task_id", "result")
                )
                continue
            metas = self.redis.mget([f"celery-task-meta-{id_}" for id_ in part])
            for id_, raw in zip(part, metas, strict=True):
                meta = json.loads(raw) if raw else {}
                if meta.get("status") == "SUCCESS":
                    found[id_] = meta["result"]
        return found


class RQ(Adapter):
    # Two `rqworker` processes (RQ's worker runs one job at a time, each in a
    # forked work horse: RQ's default Worker class).
    workers = [[PY, MANAGE, "rqworker", "default", "--verbosity", "0"]] * 2

    def __init__(self) -> None:
        import django_rq
        from bench_rq.tasks import noop, stamp
        from rq.job import Job
        from rq.registry import FinishedJobRegistry

        self.queue = django_rq.get_queue("default")
        self.noop, self.stamp, self.Job = noop, stamp, Job
        self.finished = FinishedJobRegistry(queue=self.queue)

    def enqueue_noop(self, i: int) -> str:
        return self.queue.enqueue(self.noop, i).id

    def enqueue_stamp(self) -> str:
        return self.queue.enqueue(self.stamp).id

    def enqueue_bulk(self, numbers: list[int]) -> list[str] | None:
        from rq import Queue

        jobs = self.queue.enqueue_many([Queue.prepare_data(self.noop, (i,)) for i in numbers])
        return [job.id for job in jobs]

    def done_count(self) -> int:
        return self.finished.get_job_count(cleanup=False)

    def results(self, ids: list[str]) -> dict[str, Any]:
        found = {}
        for part in chunks(ids):
            for job in self.Job.fetch_many(part, connection=self.queue.connection):
                if job is not None and job.get_status(refresh=False) == "finished":
                    found[job.id] = job.return_value()
        return found


class Huey(Adapter):
    # One consumer with 2 worker threads (-k thread is Huey's default).
    workers = [[PY, MANAGE, "run_huey", "--workers", "2", "--worker-type", "thread", "--quiet"]]

    def __init__(self) -> None:
        from bench_huey.tasks import noop, stamp
        from huey.contrib.djhuey import HUEY

        self.noop, self.stamp, self.huey = noop, stamp, HUEY

    def enqueue_noop(self, i: int) -> str:
        return self.noop(i).id

    def enqueue_stamp(self) -> str:
        return self.stamp().id

    def done_count(self) -> int:
        return self.huey.storage.result_store_size()

    def results(self, ids: list[str]) -> dict[str, Any]:
        # preserve=True: reading a Huey result otherwise deletes it.
        values = {id_: self.huey.result(id_, preserve=True) for id_ in ids}
        return {id_: value for id_, value in values.items() if value is not None}


class TasksDB(Adapter):
    # db_worker runs one task at a time and has no concurrency option: two
    # processes. No random startup delay (it only spreads many workers' starts).
    workers = [
        [PY, MANAGE, "db_worker", "--no-startup-delay", "--no-reload", "--verbosity", "0"]
    ] * 2

    def __init__(self) -> None:
        from bench_tasksdb.tasks import noop, stamp
        from django_tasks_db.models import DBTaskResult

        self.noop, self.stamp, self.Result = noop, stamp, DBTaskResult

    def enqueue_noop(self, i: int) -> str:
        return str(self.noop.enqueue(i).id)

    def enqueue_stamp(self) -> str:
        return str(self.stamp.enqueue().id)

    def done_count(self) -> int:
        return self.Result.objects.filter(status="SUCCESSFUL").count()

    def results(self, ids: list[str]) -> dict[str, Any]:
        found = {}
        for part in chunks(ids):
            rows = self.Result.objects.filter(id__in=part, status="SUCCESSFUL")
            found.update((str(id_), value) for id_, value in rows.values_list("id", "return_value"))
        return found


ADAPTERS: dict[str, Callable[[], Adapter]] = {
    "qtasks-db": QTasks,
    "qtasks-redis": QTasks,
    "qtasks-db-prefetch0": QTasks,
    "qtasks-redis-prefetch0": QTasks,
    "celery-db": lambda: Celery(results_in_db=True),
    "celery-redis": lambda: Celery(results_in_db=False),
    "rq": RQ,
    "huey": Huey,
    "tasks-db": TasksDB,
}


# Workers and their memory ---------------------------------------------------------


class Workers:
    """The worker processes, and the peak RSS of their process trees, sampled with psutil."""

    def __init__(self, argvs: list[list[str]], log: Path, env: dict[str, str]) -> None:
        self.log = open(log, "ab")  # noqa: SIM115  (closed in stop())
        self.spawned = time.monotonic()
        # Same process group as this client: run.py kills the whole group on
        # a timeout or Ctrl-C, whatever state we are in.
        self.procs = [
            subprocess.Popen(argv, cwd=HERE, env=env, stdout=self.log, stderr=subprocess.STDOUT)
            for argv in argvs
        ]
        self.peak_rss = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def tree(self) -> list[psutil.Process]:
        found = []
        for proc in self.procs:
            try:
                root = psutil.Process(proc.pid)
                found += [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        return found

    def rss(self) -> int:
        total = 0
        for proc in self.tree():
            with suppress(psutil.NoSuchProcess):
                total += proc.memory_info().rss
        return total

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self.tree():
            with suppress(psutil.NoSuchProcess):
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
        return total

    def _sample(self) -> None:
        # Every 0.1 s: one sample reads /proc for every process (about 2 ms of CPU).
        while not self._stop.wait(0.1):
            self.peak_rss = max(self.peak_rss, self.rss())

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                command = " ".join(map(str, proc.args[1:4]))
                raise RuntimeError(f"worker {command} exited with {proc.returncode}")

    def stop(self) -> None:
        self._stop.set()
        tree = self.tree()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            with suppress(subprocess.TimeoutExpired):
                proc.wait(15)
        for proc in tree:  # children a worker left behind (prefork, work horses)
            with suppress(psutil.NoSuchProcess):
                proc.kill()
        self.log.close()


class Profiler:
    """With run.py --profile: py-spy and SQL snapshots of a worker, from its first result on.

    The SQL counts come from the worker itself (benchproject.sqlcount), which
    writes a snapshot on each SIGUSR1.
    """

    def __init__(self, pid: int, sql: bool) -> None:
        self.pid = pid
        #: Prefix of the two py-spy outputs: <prefix>-gil.txt, <prefix>-idle.txt.
        self.pyspy_out = os.environ.get("BENCH_PYSPY")
        self.sql = sql
        self.active = bool(self.pyspy_out or self.sql)
        self.pyspies: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        if self.sql:
            os.kill(self.pid, signal.SIGUSR1)
        if self.pyspy_out:
            pyspy = str(Path(PY).with_name("py-spy"))
            # --gil: only the thread holding the GIL, i.e. where Python CPU goes;
            # --idle: every thread at every sample, i.e. where wall time goes.
            # --nonblocking: py-spy never pauses the worker.
            for mode in ("gil", "idle"):
                self.pyspies.append(
                    subprocess.Popen(
                        [
                            *(pyspy, "record", "--pid", str(self.pid), "--rate", "200"),
                            *("--format", "raw", "--threads", "--nonblocking", f"--{mode}"),
                            *("--output", f"{self.pyspy_out}-{mode}.txt"),
                        ],
                        stdout=subprocess.DEVNULL,
                    )
                )

    def stop(self) -> None:
        if self.sql:
            os.kill(self.pid, signal.SIGUSR1)
        for pyspy in self.pyspies:
            pyspy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for pyspy in self.pyspies:
            pyspy.wait(30)


# The measurements ---------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.system = os.environ["BENCH_SYSTEM"]
        self.adapter = ADAPTERS[self.system]()
        self.deadline = args.deadline
        self.out: dict[str, Any] = {"system": self.system, "status": "ok"}
        self.workers: Workers | None = None
        self.peak_rss = 0
        #: SQL statements this client ran, to subtract from pg_stat_database.
        self.client_statements = 0
        self.worker_env = dict(os.environ)
        if args.sql_count:
            self.worker_env["BENCH_SQL_COUNT"] = args.sql_count

    def save(self) -> None:
        Path(self.args.out).write_text(json.dumps(self.out, indent=1, default=str))

    def left(self) -> float:
        return self.deadline - time.time()

    def wait_until_done(
        self, target: int, ids: list[str], on_first: Callable[[], None] | None = None
    ) -> tuple[float, float | None, int]:
        """Poll until ``target`` tasks have ended and all of ``ids`` have a result.

        Returns (monotonic time all were seen, time the first was seen, count then).
        """
        first: float | None = None
        first_count = count = 0
        baseline = target - len(ids)  # tasks that had ended before this phase
        since = time.monotonic()
        while True:
            if self.left() <= 0:
                done, took = max(0, count - baseline), time.monotonic() - since
                self.out["timeout_progress"] = (
                    f"{done} of {len(ids)} tasks done in {took:.0f} s ({done / took:.0f}/s)"
                )
                # Had it finished, it would have taken longer than this.
                self.out["drain_rate_below"] = len(ids) / took
                raise Timeout
            assert self.workers is not None
            self.workers.check_alive()
            count = self.adapter.done_count()
            now = time.monotonic()
            if count > baseline and first is None:
                first, first_count = now, count
                if on_first is not None:
                    on_first()
            if count >= target and len(self.adapter.results(ids)) == len(ids):
                return now, first, first_count
            time.sleep(POLL)

    def start_workers(self) -> Workers:
        self.workers = Workers(self.adapter.workers, Path(self.args.log), self.worker_env)
        return self.workers

    def stop_workers(self) -> None:
        if self.workers is not None:
            self.peak_rss = max(self.peak_rss, self.workers.peak_rss)
            self.out["peak_rss_mb"] = self.peak_rss / 2**20
            self.workers.stop()
            self.workers = None

    def w2(self) -> None:
        """Latency: an idle worker, tasks enqueued ``interval`` apart."""
        m, gap = self.args.latency_tasks, self.args.interval
        self.start_workers()
        # A first task tells us the worker is up; then it is idle for a second.
        self.wait_until_done(1, [self.adapter.enqueue_noop(-1)])
        time.sleep(1.0)
        sent: dict[str, float] = {}
        begin = time.monotonic()
        for k in range(m):
            pause = begin + k * gap - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            before = time.time()
            sent[self.adapter.enqueue_stamp()] = before
        self.wait_until_done(1 + m, list(sent))
        started = self.adapter.results(list(sent))
        latencies = [(started[id_] - t) * 1000 for id_, t in sent.items()]
        self.out["w2_latencies_ms"] = [round(latency, 2) for latency in latencies]
        for p in (50, 95, 99):
            self.out[f"w2_p{p}_ms"] = percentile(latencies, p)
        if isinstance(self.adapter, QTasks):
            # Cross-check with the row's own times: started_at - created_at.
            rows = self.adapter.lifetimes(list(sent))
            own = [(s - c).total_seconds() * 1000 for c, s, _ in rows]
            self.out["w2_p50_ms_row"] = percentile(own, 50)
        self.stop_workers()
        self.save()

    def w1(self) -> None:
        """Throughput: enqueue with no worker running, then time one worker's drain."""
        n, before = self.args.tasks, 1 + self.args.latency_tasks  # W2's tasks are done
        pg_start = self.pg_transactions(wait=0.3)
        started = time.perf_counter()
        ids = [self.adapter.enqueue_noop(i) for i in range(n)]
        self.out["enqueue_rate"] = n / (time.perf_counter() - started)
        self.save()
        pg_enqueued = self.pg_transactions(wait=0.3)
        self.out["pg_xacts_per_enqueue"] = (pg_enqueued - pg_start) / n
        with self.counting_client_sql():
            workers = self.start_workers()
            profiler = Profiler(workers.procs[0].pid, bool(self.args.sql_count))
            done, first, first_count = self.wait_until_done(
                before + n, ids, on_first=profiler.start
            )
            profiler.stop()
        first_count -= before
        if profiler.active:
            self.out["profile_tasks"] = n - first_count
        self.out["drain_rate"] = n / (done - workers.spawned)
        if first is not None and done > first:
            self.out["drain_rate_after_first"] = (n - first_count) / (done - first)
            self.out["first_result_after_s"] = first - workers.spawned
        self.out["worker_cpu_s_w1"] = workers.cpu_seconds()
        # Workers' backends flush their statistics at most a second after their
        # last transaction; this includes the 2-4 of an idle worker meanwhile.
        xacts = self.pg_transactions(wait=1.5) - pg_enqueued - self.client_statements
        self.out["pg_xacts_per_task"] = xacts / n
        results = self.adapter.results(ids)
        wrong = sum(1 for i, id_ in enumerate(ids) if results.get(id_) != i)
        self.out["verified"] = f"{n - wrong}/{n}"
        self.out["verified_ok"] = wrong == 0
        if isinstance(self.adapter, QTasks):
            times = self.adapter.lifetimes(ids)
            starts = [s for _, s, _ in times if s]
            self.out["drain_rate_from_first_start"] = (
                n / (max(f for _, _, f in times if f) - min(starts)).total_seconds()
            )
        self.stop_workers()
        self.save()

    def bulk(self) -> None:
        """Enqueue through the system's bulk API, if it has one; then check every task runs."""
        m, batch = self.args.bulk_tasks, self.args.bulk_batch
        before = 1 + self.args.latency_tasks + self.args.tasks  # W2's and W1's are done
        numbers = [BULK_BASE + k for k in range(m)]
        ids: list[str] = []
        started = time.perf_counter()
        for start in range(0, m, batch):
            sent = self.adapter.enqueue_bulk(numbers[start : start + batch])
            if sent is None:
                return
            ids += sent
        self.out["bulk_enqueue_rate"] = m / (time.perf_counter() - started)
        self.save()
        self.start_workers()
        self.wait_until_done(before + m, ids)
        results = self.adapter.results(ids)
        wrong = sum(1 for k, id_ in enumerate(ids) if results.get(id_) != numbers[k])
        self.out["bulk_verified_ok"] = wrong == 0
        self.stop_workers()
        self.save()

    def run(self) -> None:
        # The machine may be shared: say how busy it was (1-minute load average).
        self.out["load_before"] = os.getloadavg()[0]
        try:
            # W2 first, with a worker of its own: a W1 that times out then
            # leaves W2's figures intact.
            self.w2()
            self.w1()
            if self.args.bulk_tasks:
                self.bulk()
        except Timeout:
            self.out["status"] = "timeout"
        except Exception as exc:
            self.out["status"] = f"error: {exc!r}"
            traceback.print_exc()
        finally:
            self.stop_workers()
            self.out["load_after"] = os.getloadavg()[0]
            self.save()

    # PostgreSQL transactions (django-qtasks on django:// only) ----------------------

    def pg_transactions(self, wait: float) -> int:
        """Committed + rolled back transactions of our database so far, up to date.

        Our own connection is closed first, so that its backend flushes its
        statistics as it exits; then we wait ``wait`` seconds for that.
        """
        import psycopg
        from django.db import connection

        connection.close()
        time.sleep(wait)
        settings = connection.settings_dict
        with psycopg.connect(
            host=settings["HOST"], port=settings["PORT"], user=settings["USER"], dbname="postgres"
        ) as conn:
            # A fresh connection, and no cached snapshot: the counters as they are now.
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                [settings["NAME"]],
            ).fetchone()
        assert row is not None
        return int(row[0])

    @contextmanager
    def counting_client_sql(self) -> Iterator[None]:
        """Count the statements this client runs (each one autocommit transaction)."""
        from django.db import connection

        def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            self.client_statements += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            yield


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--latency-tasks", type=int, required=True)
    parser.add_argument("--interval", type=float, required=True)
    parser.add_argument("--bulk-tasks", type=int, default=0)
    parser.add_argument("--bulk-batch", type=int, default=500)
    parser.add_argument("--deadline", type=float, required=True, help="time.time() to give up")
    parser.add_argument("--out", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--sql-count", help="workers count their SQL into this file")
    args = parser.parse_args(list(argv) if argv is not None else None)

    # run.py stops us with SIGTERM: unwind, so that the workers are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.path.insert(0, str(HERE))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproject.settings")
    import django

    django.setup()
    Bench(args).run()


if __name__ == "__main__":
    main()
