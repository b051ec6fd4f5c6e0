"""Worker processes, side by side with their peers: W3 (CPU-bound) and W1 (drain).

    make bench-processes
    .venv-bench/bin/python benchmarks/processes.py [--tasks 1000] [--n 200000]
        [--drain-tasks 5000] [--rounds 1] [--only name,...]

W3: a worker is started and warmed up (one task run), then ``--tasks`` tasks
``sum(range(n))`` are enqueued through each system's API; the figure is
tasks per second from the first enqueue to the last result, and the peak
PSS of the worker's whole process tree (shared pages split among the
processes that share them, so a forked pool is not counted twice).
Every system runs two tasks at a time: django-qtasks ``--processes 1
--concurrency 2`` (one process, two threads) and ``--processes 2
--concurrency 1``; Celery ``--pool prefork --concurrency 2``; Huey
``--worker-type process --workers 2``.

W1: ``--drain-tasks`` no-op tasks enqueued with no worker running, then the
worker is started and timed until the last result, for django-qtasks with
one process and with two (``--concurrency 2`` each).

The pool's own scenarios (``--processes 2 --concurrency 2``): qtasks-kill
SIGKILLs a child running two tasks and times until neither is ``process``
any more (the supervisor failed them over); qtasks-sighup sends SIGHUP
while 3,000 tasks of 5 ms run, then checks that each ran once and compares
the longest pause between two task ends with the median one.

Each system gets a fresh PostgreSQL database and Redis database as in
``run.py``; django-qtasks uses its default broker (``django://``).
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchproject.systems import SYSTEMS  # noqa: E402
from run import flush_redis, recreate_database  # noqa: E402

PY = sys.executable
MANAGE = str(HERE / "manage.py")
QTASKS_WORKER = [PY, MANAGE, "qtasks_worker", "--loglevel", "WARNING"]

#: name: (the benchmark system whose settings it runs with, worker argv, workload)
RUNS: dict[str, tuple[str, list[str], str]] = {
    "qtasks-p1": ("qtasks-db", [*QTASKS_WORKER, "--concurrency", "2"], "w3"),
    "qtasks-p1-c1": ("qtasks-db", [*QTASKS_WORKER, "--concurrency", "1"], "w3"),
    "qtasks-p2": ("qtasks-db", [*QTASKS_WORKER, "--processes", "2", "--concurrency", "1"], "w3"),
    "qtasks-p2-prefetch0": (
        "qtasks-db-prefetch0",
        [*QTASKS_WORKER, "--processes", "2", "--concurrency", "1"],
        "w3",
    ),
    "celery-prefork": (
        "celery-redis",
        [
            *(PY, "-m", "celery", "-A", "benchproject.celery", "worker"),
            *("--pool", "prefork", "--concurrency", "2", "--loglevel", "WARNING"),
        ],
        "w3",
    ),
    "huey-process": (
        "huey",
        [PY, MANAGE, "run_huey", "--workers", "2", "--worker-type", "process", "--quiet"],
        "w3",
    ),
    "qtasks-kill": (
        "qtasks-db",
        [*QTASKS_WORKER, "--processes", "2", "--concurrency", "2"],
        "kill",
    ),
    "qtasks-sighup": (
        "qtasks-db",
        [*QTASKS_WORKER, "--processes", "2", "--concurrency", "2"],
        "sighup",
    ),
    "qtasks-drain-p1": ("qtasks-db", [*QTASKS_WORKER, "--concurrency", "2"], "w1"),
    "qtasks-drain-p2": (
        "qtasks-db",
        [*QTASKS_WORKER, "--processes", "2", "--concurrency", "2"],
        "w1",
    ),
}


def main() -> int:
    args = parse_args()
    names = args.only.split(",") if args.only else list(RUNS)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for number in range(1, args.rounds + 1):
        print(f"round {number} of {args.rounds}", flush=True)
        for name in names:
            result = run(name, args)
            results[name].append(result)
            print(f"  {name}: {result}", flush=True)
    report(results)
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=1000, help="W3 tasks (default 1000)")
    parser.add_argument("--n", type=int, default=200_000, help="W3: sum(range(n)) (200000)")
    parser.add_argument("--drain-tasks", type=int, default=5000, help="W1 tasks (default 5000)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; the table shows medians")
    parser.add_argument("--only", default="", help=f"comma-separated, of: {','.join(RUNS)}")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the child's mode
    return parser.parse_args()


def run(name: str, args: argparse.Namespace) -> dict[str, float]:
    """One run in a process of its own, with the settings of its system."""
    system = SYSTEMS[RUNS[name][0]]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchproject.settings",
        "BENCH_SYSTEM": system.name,
    }
    flush_redis(system.redis_dbs)
    recreate_database(system.database)
    subprocess.run([PY, MANAGE, "migrate", "--verbosity", "0"], cwd=HERE, env=env, check=True)
    output = subprocess.run(
        [PY, __file__, *sys.argv[1:], "--measure", name],
        cwd=HERE,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    return {
        key: float(value)
        for key, value in (line.split("=", 1) for line in output.splitlines() if "=" in line)
    }


# The child's side: one system, through its own API ------------------------------------


def measure(name: str, args: argparse.Namespace) -> None:
    import django

    django.setup()
    system, argv, workload = RUNS[name]
    client = Client(system)
    if workload == "w1":
        client.enqueue("noop", range(args.drain_tasks))
        started = time.monotonic()
        with Pool(argv) as pool:
            client.wait_done(args.drain_tasks, pool)
            took = time.monotonic() - started
        print(f"drain_per_s={args.drain_tasks / took:.1f}")
        return
    if workload == "kill":
        with Pool(argv) as pool:
            measure_kill(client, pool)
        return
    if workload == "sighup":
        with Pool(argv) as pool:
            measure_sighup(client, pool)
        return
    with Pool(argv) as pool:
        client.enqueue("cpu", [1])
        client.wait_done(1, pool)
        started, cpu = time.monotonic(), pool.cpu_seconds()
        client.enqueue("cpu", [args.n] * args.tasks)
        client.wait_done(1 + args.tasks, pool)
        took = time.monotonic() - started
        print(f"cpu_per_s={args.tasks / took:.1f}")
        print(f"cpu_ms_per_task={(pool.cpu_seconds() - cpu) * 1000 / args.tasks:.2f}")
        print(f"peak_pss_mib={pool.peak_pss / 1024 / 1024:.1f}")
        print(f"processes={pool.processes}")


def measure_kill(client: Client, pool: Pool) -> None:
    """SIGKILL a child running two tasks: seconds until they are no longer ``process``."""
    from django_qtasks.models import Task, WorkerHeartbeat

    client.enqueue("nap", [600] * 4)
    deadline = time.monotonic() + 60
    while True:
        busy = [beat for beat in WorkerHeartbeat.objects.all() if len(beat.running) == 2]
        if len(busy) == 2:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("the four tasks did not start")
        time.sleep(0.01)
    victim = busy[0]
    killed = time.monotonic()
    os.kill(victim.pid, signal.SIGKILL)
    while Task.objects.filter(worker=victim.worker_id, status="process").exists():
        time.sleep(0.005)
    print(f"recovered_s={time.monotonic() - killed:.3f}")
    print(f"failed_over={Task.objects.filter(traceback__contains='died: signal 9').count()}")


def measure_sighup(client: Client, pool: Pool, tasks: int = 3000) -> None:
    """SIGHUP during a stream of short tasks: none lost or run twice, and the longest
    pause between two task ends against the usual one."""
    from django_qtasks.models import Task

    client.enqueue("nap", [0.005] * tasks)
    client.wait_done(tasks // 10, pool)
    pool.process.send_signal(signal.SIGHUP)
    client.wait_done(tasks, pool)
    rows = Task.objects.filter(task_name="nap")
    ends = sorted(rows.values_list("finished_at", flat=True))
    gaps = sorted((b - a).total_seconds() for a, b in itertools.pairwise(ends))
    print(f"tasks_ok={rows.filter(status='success', attempts=1).count()}")
    print(f"tasks={rows.count()}")
    print(f"longest_gap_s={gaps[-1]:.3f}")
    print(f"median_gap_s={statistics.median(gaps):.4f}")


class Client:
    def __init__(self, system: str) -> None:
        self.system = system
        if system.startswith("qtasks"):
            from bench_qtasks import tasks

            from django_qtasks.models import Task

            self.tasks, self.Task = tasks, Task
        elif system.startswith("celery"):
            import benchproject.celery  # noqa: F401  (binds the shared tasks to the app)
            from bench_celery import tasks

            self.tasks = tasks
            self.results: list[Any] = []
        else:
            from bench_huey import tasks
            from huey.contrib.djhuey import HUEY

            self.tasks, self.huey = tasks, HUEY

    def enqueue(self, task: str, arguments: Any) -> None:
        function = getattr(self.tasks, task)
        if self.system.startswith("qtasks"):
            from django_qtasks import app

            app.add_tasks(function.s(argument) for argument in arguments)
        elif self.system.startswith("celery"):
            self.results += [function.delay(argument) for argument in arguments]
        else:
            for argument in arguments:
                function(argument)

    def done(self) -> int:
        if self.system.startswith("qtasks"):
            return self.Task.objects.filter(status="success").count()
        if self.system.startswith("celery"):
            return sum(1 for result in self.results if result.ready())
        return self.huey.storage.result_store_size()

    def wait_done(self, count: int, pool: Pool, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while self.done() < count:
            if time.monotonic() > deadline or pool.process.poll() is not None:
                raise RuntimeError(f"{self.done()} of {count} done; worker {pool.process.poll()}")
            time.sleep(0.02)


class Pool:
    """The worker's process tree, and its peak PSS, sampled every 0.2 s."""

    def __init__(self, argv: list[str]) -> None:
        self.process = subprocess.Popen(argv, cwd=HERE, stdout=sys.stderr, stderr=sys.stderr)
        self.peak_pss = 0
        self.processes = 0
        self.stopping = threading.Event()
        self.sampler = threading.Thread(target=self.sample, daemon=True)

    def __enter__(self) -> Pool:
        self.sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.sampler.join()
        import psutil

        tree = self.tree()[1:]
        self.process.terminate()
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(30)
        for child in tree:
            with suppress(psutil.NoSuchProcess):
                child.kill()
        self.process.kill()
        self.process.wait()

    def tree(self) -> list[Any]:
        import psutil

        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        """CPU time of the worker's processes (a child that exited meanwhile is not counted)."""
        import psutil

        total = 0.0
        for proc in self.tree():
            with suppress(psutil.NoSuchProcess):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def sample(self) -> None:
        import psutil

        while not self.stopping.wait(0.2):
            tree = self.tree()
            total = 0
            for proc in tree:
                with suppress(psutil.NoSuchProcess):
                    total += proc.memory_full_info().pss
            self.peak_pss = max(self.peak_pss, total)
            self.processes = max(self.processes, len(tree))


def report(results: dict[str, list[dict[str, float]]]) -> None:
    medians = {
        name: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        for name, runs in results.items()
        if runs
    }
    print(
        f"\n{'run':<21}{'W3 tasks/s':>12}{'CPU ms/task':>13}{'peak PSS MiB':>14}"
        f"{'processes':>11}{'W1 /s':>9}"
    )
    for name, figures in medians.items():
        print(
            f"{name:<21}{figures.get('cpu_per_s', float('nan')):>12.1f}"
            f"{figures.get('cpu_ms_per_task', float('nan')):>13.2f}"
            f"{figures.get('peak_pss_mib', float('nan')):>14.1f}"
            f"{figures.get('processes', float('nan')):>11.0f}"
            f"{figures.get('drain_per_s', float('nan')):>9.1f}"
        )

    def ratio(a: str, b: str, key: str) -> str:
        if a in medians and b in medians and medians[b].get(key):
            return f"{medians[a][key] / medians[b][key]:.2f}"
        return "n/a"

    print()
    print(f"W3 qtasks-p2 / qtasks-p1:         {ratio('qtasks-p2', 'qtasks-p1', 'cpu_per_s')}")
    print(f"W3 qtasks-p2 / celery-prefork:    {ratio('qtasks-p2', 'celery-prefork', 'cpu_per_s')}")
    print(f"W3 qtasks-p2 / huey-process:      {ratio('qtasks-p2', 'huey-process', 'cpu_per_s')}")
    print(
        f"PSS qtasks-p2 / celery-prefork:   {ratio('qtasks-p2', 'celery-prefork', 'peak_pss_mib')}"
    )
    print(
        "W1 qtasks-drain-p2 / -p1:         "
        f"{ratio('qtasks-drain-p2', 'qtasks-drain-p1', 'drain_per_s')}"
    )
    for name in ("qtasks-kill", "qtasks-sighup"):
        if name in medians:
            print(f"{name}: " + ", ".join(f"{k} {v:g}" for k, v in medians[name].items()))


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.measure:
        measure(arguments.measure, arguments)
        sys.exit(0)
    sys.exit(main())
