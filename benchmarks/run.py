"""Benchmark django-qtasks against Celery, RQ, Huey and django-tasks-db, side by side.

    .venv-bench/bin/python benchmarks/run.py [--tasks 5000] [--latency-tasks 300]
        [--bulk-tasks 2000] [--only qtasks-db,celery-db,...] (--help lists them)

For each system in turn: a fresh PostgreSQL database (qtasks_bench_<system>)
and fresh Redis databases (10-15 only), then ``client.py`` in its own process
group measures W1 (enqueue N no-op tasks with no worker running, then start
the worker at concurrency 2 and time until every result is in the system's
result store), W2 (an idle worker, tasks enqueued 20 ms apart: enqueue-to-start
p50/p95/p99), the worker's peak RSS, and a bulk enqueue through each
system's bulk API where it has one. Then one table, and the targets of the
issue as ratios from this same run. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchproject.systems import DB_PREFIX, PG, REDIS_HOST, REDIS_PORT, SYSTEMS  # noqa: E402

SETUP = (
    "python3 -m venv .venv-bench && "
    ".venv-bench/bin/pip install -e '.[all]' -r benchmarks/requirements.txt"
)
QTASKS = ("qtasks-db", "qtasks-redis", "qtasks-db-prefetch0", "qtasks-redis-prefetch0")
CELERY = ("celery-db", "celery-redis")


def interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> int:
    args = parse_args()
    # Ctrl-C, and a plain kill too, stop the current system's process group
    # (see run_system) even if we were started with SIGINT ignored.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        import psutil  # noqa: F401
        import psycopg  # noqa: F401
        import redis  # noqa: F401
    except ImportError as exc:
        print(f"{exc}. Run this with the benchmark's virtualenv:\n  {SETUP}", file=sys.stderr)
        return 2
    out = Path(args.out or tempfile.mkdtemp(prefix="qtasks-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    names = args.only.split(",") if args.only else list(SYSTEMS)
    unknown = [name for name in names if name not in SYSTEMS]
    if unknown:
        print(f"Unknown systems {unknown}; known: {', '.join(SYSTEMS)}", file=sys.stderr)
        return 2
    if args.profile and args.rounds > 1:
        print("--profile runs one round: leave --rounds out", file=sys.stderr)
        return 2
    print(
        f"{len(names)} systems, {args.tasks} + {args.latency_tasks} tasks each"
        + (f", {args.rounds} rounds" if args.rounds > 1 else "")
        + f"; logs in {out}"
    )
    rounds: list[dict[str, dict[str, Any]]] = []
    interrupted = False
    name = names[0]
    try:
        for number in range(1, args.rounds + 1):
            logs = out if args.rounds == 1 else out / f"round-{number}"
            logs.mkdir(exist_ok=True)
            if args.rounds > 1:
                print(f" round {number} of {args.rounds}", flush=True)
            rounds.append({})
            for name in names:
                rounds[-1][name] = run_system(name, args, logs)
                print(f"  {name}: {summary(rounds[-1][name])}", flush=True)
    except KeyboardInterrupt:
        interrupted = True
        if not rounds:
            rounds.append({})
        rounds[-1].setdefault(name, {"system": name, "status": "interrupted"})
        print("\nInterrupted: every process started was stopped.", file=sys.stderr)
    results = combine(rounds)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print()
    print_report(results, rounds, args)
    if args.profile:
        print_profiles(names, out, results)
    print(f"\nRaw results: {out / 'results.json'}")
    return 130 if interrupted else 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=5000, help="W1 tasks (default 5000)")
    parser.add_argument("--latency-tasks", type=int, default=300, help="W2 tasks (default 300)")
    parser.add_argument(
        "--bulk-tasks",
        type=int,
        default=2000,
        help="tasks enqueued through each system's bulk API, 500 a call (default 2000; "
        "0: skip); then run, to check them",
    )
    parser.add_argument(
        "--interval", type=float, default=0.02, help="W2 seconds between tasks (default 0.02)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every system this many times, in turn (default 1); the table then shows "
        "each figure's median, and each target's ratio within every round",
    )
    parser.add_argument("--only", default="", help=f"comma-separated, of: {','.join(SYSTEMS)}")
    parser.add_argument(
        "--timeout", type=float, default=180, help="seconds per system (default 180)"
    )
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=0,
        help="Django's CONN_MAX_AGE for every system (default 0, Django's own default)",
    )
    parser.add_argument(
        "--celery-full-life",
        action="store_true",
        help="Celery records the start and arguments too (task_track_started, result_extended)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile django-qtasks' worker in W1 (py-spy) and count its SQL; "
        "not for timing: counting costs time",
    )
    parser.add_argument(
        "--qtasks-worker-args",
        default="",
        help="more options for django-qtasks' workers, to measure what one costs, e.g. "
        "'--metrics-port 0'",
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument("--out", help="directory for logs and results (default: a new temp dir)")
    return parser.parse_args()


# One system -------------------------------------------------------------------------


def run_system(name: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    system = SYSTEMS[name]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchproject.settings",
        "BENCH_SYSTEM": name,
        "BENCH_CONN_MAX_AGE": str(args.conn_max_age),
        "BENCH_CELERY_FULL_LIFE": "1" if args.celery_full_life else "0",
        "BENCH_QTASKS_WORKER_ARGS": args.qtasks_worker_args,
    }
    profiling = args.profile and name in QTASKS
    if profiling:
        env["BENCH_PYSPY"] = str(out / f"{name}-pyspy")
    result_path = out / f"{name}.json"
    sql_path = out / f"{name}-sql.jsonl"
    for path in (result_path, sql_path):
        path.unlink(missing_ok=True)
    flush_redis(system.redis_dbs)
    recreate_database(system.database)
    try:
        subprocess.run(
            [sys.executable, str(HERE / "manage.py"), "migrate", "--verbosity", "0"],
            cwd=HERE,
            env=env,
            check=True,
            timeout=120,
        )
        client = [
            sys.executable,
            str(HERE / "client.py"),
            f"--tasks={args.tasks}",
            f"--latency-tasks={args.latency_tasks}",
            f"--interval={args.interval}",
            f"--bulk-tasks={args.bulk_tasks}",
            f"--deadline={time.time() + args.timeout}",
            f"--out={result_path}",
            f"--log={out / f'{name}-worker.log'}",
        ]
        if profiling:
            client.append(f"--sql-count={sql_path}")
        with open(out / f"{name}-client.log", "wb") as log:
            # A process group of its own: the client and its workers, killed as one.
            proc = subprocess.Popen(
                client,
                cwd=HERE,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                # The client gives up at the deadline by itself; this is for a hang.
                proc.wait(args.timeout + 60)
            finally:
                stop_group(proc)
        if result_path.exists():
            return json.loads(result_path.read_text())
        return {"system": name, "status": f"client failed, see {out / f'{name}-client.log'}"}
    except subprocess.TimeoutExpired:
        return {"system": name, "status": "timeout"}
    except subprocess.CalledProcessError as exc:
        return {"system": name, "status": f"setup failed: {exc}"}
    finally:
        flush_redis(system.redis_dbs)
        if not args.keep:
            drop_database(system.database)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop the client's process group: SIGTERM, then SIGKILL whatever is left."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return  # nothing of that group is left
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and group_alive(proc):
            time.sleep(0.1)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def group_alive(proc: subprocess.Popen[bytes]) -> bool:
    proc.poll()  # reap the client itself, or the group looks alive because of it
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return False
    return True


def flush_redis(dbs: tuple[int, ...]) -> None:
    import redis

    for db in dbs:
        assert 10 <= db <= 15, "the benchmark only ever touches Redis databases 10-15"
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).flushdb()


def admin_connection() -> Any:
    import psycopg

    return psycopg.connect(
        host=PG["HOST"], port=PG["PORT"], user=PG["USER"], dbname="postgres", autocommit=True
    )


def recreate_database(name: str) -> None:
    drop_database(name)
    with admin_connection() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    assert name.startswith(DB_PREFIX), "the benchmark only ever drops its own databases"
    with admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# The report -------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def summary(r: dict[str, Any]) -> str:
    if r.get("status") != "ok":
        return str(r.get("status"))
    return (
        f"enqueue {fmt(r.get('enqueue_rate'))}/s, drain {fmt(r.get('drain_rate'))}/s, "
        f"W2 p50 {fmt(r.get('w2_p50_ms'), 1)} ms"
    )


def row(name: str, r: dict[str, Any]) -> list[str]:
    status = r.get("status", "missing")
    w2 = "/".join(fmt(r.get(f"w2_p{p}_ms"), 1) for p in (50, 95, 99))
    verified = r.get("verified", "-")
    if status != "ok":
        verified = "timeout" if status == "timeout" else status[:40]
    missing = "timeout" if status == "timeout" else "-"
    return [
        SYSTEMS[name].label,
        fmt(r.get("enqueue_rate")),
        fmt(r.get("drain_rate")) if "drain_rate" in r else missing,
        fmt(r.get("drain_rate_after_first")) if "drain_rate" in r else missing,
        w2,
        fmt(r.get("peak_rss_mb")),
        verified,
    ]


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(cells[i]) for cells in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for cells in rows:
        print(line(cells))


def combine(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """One result per system: the only round's, or each figure's median over the rounds."""
    if len(rounds) == 1:
        return rounds[0]
    names = list(dict.fromkeys(name for results in rounds for name in results))
    return {name: median_result([r[name] for r in rounds if name in r]) for name in names}


def median_result(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Numbers: their median; checks: all of them; the status: the first that is not "ok"."""
    failed = [r["status"] for r in runs if r.get("status") != "ok"]
    combined: dict[str, Any] = {"system": runs[0]["system"], "status": (failed or ["ok"])[0]}
    for key in dict.fromkeys(key for r in runs for key in r):
        values = [r[key] for r in runs if key in r]
        if all(isinstance(value, bool) for value in values):
            combined[key] = all(values)
        elif all(isinstance(value, int | float) for value in values):
            combined[key] = statistics.median(values)
        elif key in ("verified", "timeout_progress"):
            combined[key] = "; ".join(dict.fromkeys(values))
    combined["rounds"] = len(runs)
    return combined


def print_report(
    results: dict[str, dict[str, Any]],
    rounds: list[dict[str, dict[str, Any]]],
    args: argparse.Namespace,
) -> None:
    print(
        f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{datetime.now():%Y-%m-%d %H:%M}; W1 {args.tasks} tasks, W2 {args.latency_tasks} "
        f"tasks {args.interval * 1000:g} ms apart; CONN_MAX_AGE={args.conn_max_age}"
        + ("; Celery with track_started + result_extended" if args.celery_full_life else "")
        + (f"; medians of {len(rounds)} rounds" if len(rounds) > 1 else "")
    )
    print()
    header = [
        "system",
        "enqueue tasks/s",
        "drain tasks/s",
        "drain after 1st result",
        "W2 p50/p95/p99 ms",
        "peak worker RSS MB",
        "result verified",
    ]
    print_table(header, [row(name, r) for name, r in results.items()])

    xacts = [
        f"  {name:13} {r['pg_xacts_per_enqueue']:.2f} per enqueue, "
        f"{r['pg_xacts_per_task']:.2f} per task in the W1 drain"
        for name, r in results.items()
        # Only the systems that keep tasks in PostgreSQL.
        if r.get("pg_xacts_per_task", 0) > 0.05 or r.get("pg_xacts_per_enqueue", 0) > 0.05
    ]
    bulk = [
        (name, r["bulk_enqueue_rate"], r.get("bulk_verified_ok"))
        for name, r in results.items()
        if "bulk_enqueue_rate" in r
    ]
    if bulk:
        print(
            f"\nBulk enqueue ({args.bulk_tasks} tasks, 500 a call: django-qtasks app.add_tasks, "
            "Celery group().apply_async(), RQ enqueue_many; the others have no bulk API):"
        )
        for name, rate, ok in bulk:
            checked = {True: "all ran", False: "RESULTS WRONG", None: "not checked"}[ok]
            print(f"  {name:13} {rate:9,.0f} tasks/s ({checked})")
    if xacts:
        print("\nPostgreSQL transactions (pg_stat_database, this system's own database):")
        print("\n".join(xacts))
    print("\nOther figures:")
    for name, r in results.items():
        extra = []
        if "timeout_progress" in r:
            extra.append(f"timeout with {r['timeout_progress']}")
        if "first_result_after_s" in r:
            extra.append(f"first result {r['first_result_after_s']:.1f} s after spawn")
        if "worker_cpu_s_w1" in r:
            extra.append(f"worker CPU {r['worker_cpu_s_w1']:.1f} s in W1")
        if "drain_rate_from_first_start" in r:
            extra.append(f"drain from first started_at {r['drain_rate_from_first_start']:,.0f}/s")
        if "w2_p50_ms_row" in r:
            extra.append(f"W2 p50 from started_at - created_at {r['w2_p50_ms_row']:.1f} ms")
        if "load_before" in r:
            extra.append(f"load average {r['load_before']:.1f} -> {r.get('load_after', 0):.1f}")
        if extra:
            print(f"  {name:13} " + "; ".join(extra))
    print("\nWhat each system keeps about a task (at the settings used here):")
    for name in results:
        records = SYSTEMS[name].records
        if args.celery_full_life and name in CELERY:
            records += "; here also STARTED with date_started, args and worker"
        print(f"  {name:13} {records}")
    print_targets(rounds)


Check = tuple[str, float | None, str, bool | None]


def target_checks(results: dict[str, dict[str, Any]], run: set[str]) -> list[Check]:
    """(what, value, target, met) for each target of the issue, from one round.

    Only for the systems in ``run`` (those of any round, so that every round
    gives the same list).
    """
    ours_run = [name for name in QTASKS if name in run]

    def value(name: str, key: str) -> float | None:
        # A system that timed out in W1 still has its enqueue and W2 figures.
        return results.get(name, {}).get(key)

    checks: list[Check] = []
    for ours in ours_run:
        for peer, least in (("celery-db", 10.0), ("celery-redis", 2.0)):
            if peer not in run:
                continue
            a, b = value(ours, "drain_rate"), value(peer, "drain_rate")
            label = f"W1 drain {ours} / {peer}"
            below = value(ours, "drain_rate_below")
            if a is None and below is not None and b:
                # Timed out in W1: its drain rate, so the ratio, is below this bound.
                bound = below / b
                met = False if bound < least else None
                checks.append((label + " (timeout: below)", bound, f">= {least:g}x", met))
                continue
            ratio = a / b if a and b else None
            met = None if ratio is None else ratio >= least
            checks.append((label, ratio, f">= {least:g}x", met))
    for ours in ours_run:
        most = 5.0 if ours.startswith("qtasks-redis") else 20.0
        p50 = value(ours, "w2_p50_ms")
        met = None if p50 is None else p50 < most
        checks.append((f"W2 p50 {ours} (ms)", p50, f"< {most:g} ms", met))
    # Enqueueing does not depend on the worker's settings: the variants are left out.
    for ours in (name for name in ours_run if not name.endswith("-prefetch0")):
        for peer in (peer for peer in CELERY if peer in run):
            a, b = value(ours, "enqueue_rate"), value(peer, "enqueue_rate")
            ratio = a / b if a and b else None
            met = None if ratio is None else ratio >= 2.0
            checks.append((f"enqueue {ours} / {peer} .delay()", ratio, ">= 2x", met))
    return checks


def print_targets(rounds: list[dict[str, dict[str, Any]]]) -> None:
    """Each target as a ratio within a round: the systems side by side, at the same moment."""
    run = {name for results in rounds for name in results}
    per_round = [target_checks(results, run) for results in rounds]
    if not per_round[0]:
        return
    if len(rounds) == 1:
        print("\nTargets, as ratios from this run:")
    else:
        print(f"\nTargets, as ratios within each round: median [lowest, highest] of {len(rounds)}:")
    width = max(len(label) for checks in per_round for label, *_ in checks)
    for i, (label, _, target, _) in enumerate(per_round[0]):
        label = label.removesuffix(" (timeout: below)")
        checks = [checks[i] for checks in per_round]
        numbers = [number for _, number, _, _ in checks if number is not None]
        verdicts = [met for _, _, _, met in checks if met is not None]
        unit = "" if "ms" in label else "x"
        shown = "n/a" if not numbers else f"{statistics.median(numbers):.2f}{unit}"
        spread = f"[{min(numbers):.2f}, {max(numbers):.2f}]" if len(numbers) > 1 else ""
        if not verdicts:
            verdict = "n/a"
        elif all(verdicts) or not any(verdicts):
            verdict = "met" if verdicts[0] else "NOT met"
        else:
            verdict = f"met in {sum(verdicts)} of {len(verdicts)}"
        if any("timeout" in c[0] for c in checks):
            label += " (timeout: below)"
        shown = f"{shown:>9}" + (f" {spread:>16}" if len(rounds) > 1 else "")
        print(f"  {label.ljust(width)}  {shown}  target {target:9}  {verdict}")


# Profiles (--profile) ----------------------------------------------------------------


def print_profiles(names: list[str], out: Path, results: dict[str, dict[str, Any]]) -> None:
    for name in names:
        if name not in QTASKS:
            continue
        r = results.get(name, {})
        print(f"\nProfile of {name}'s worker during the W1 drain:")
        print_sql_counts(out / f"{name}-sql.jsonl", r)
        print_pyspy(out / f"{name}-pyspy")


def print_sql_counts(path: Path, r: dict[str, Any]) -> None:
    snapshots = (
        [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    )
    if len(snapshots) < 2 or not r.get("profile_tasks"):
        print("  no SQL counts (the worker wrote no snapshots)")
        return
    first, last = snapshots[0], snapshots[-1]
    tasks = r["profile_tasks"]
    statements = Counter(last["statements"])
    statements.subtract(first["statements"])
    commits = sum(last["commits"].values()) - sum(first["commits"].values())
    total = sum(statements.values())
    print(
        f"  SQL over {tasks} tasks: {total / tasks:.2f} statements per task, {commits / tasks:.2f} "
        f"explicit transactions per task, so about {(total + 2 * commits) / tasks:.2f} round "
        "trips per task (each transaction adds BEGIN and COMMIT)"
    )
    for sql, count in statements.most_common(8):
        if count > 0:
            print(f"    {count / tasks:5.2f}/task  {sql[:150]}")


def load_collapsed(path: Path) -> list[tuple[str, list[str], int]]:
    """py-spy's raw output: 'thread (tid): name;frame;frame... count' per line."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        thread, *frames = stack.split(";")
        name = thread.partition("): ")[2] or thread
        if frames:
            stacks.append((name, [short(frame) for frame in frames], int(count)))
    return stacks


def print_pyspy(prefix: Path) -> None:
    gil, wall = Path(f"{prefix}-gil.txt"), Path(f"{prefix}-idle.txt")
    if not gil.exists() or not gil.stat().st_size:
        print("  no py-spy profile (is py-spy installed, and is ptrace allowed?)")
        return
    stacks = load_collapsed(gil)
    total = sum(count for _, _, count in stacks)
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for thread, frames, count in stacks:
        threads[thread.rstrip("_0123456789")] += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    print(f"  py-spy --gil (where Python CPU goes): {total} samples")
    for thread, count in threads.most_common(5):
        print(f"    {100 * count / total:5.1f}%  thread {thread}")
    print("   by own time:")
    for frame, count in own.most_common(12):
        print(f"    {100 * count / total:5.1f}%  {frame}")
    print("   including callees (django_qtasks and the ORM):")
    shown = [(f, c) for f, c in inclusive.most_common() if "django" in f or "psycopg" in f]
    for frame, count in shown[:25]:
        print(f"    {100 * count / total:5.1f}%  {frame}")
    if not wall.exists():
        return
    per_thread: dict[str, Counter[str]] = defaultdict(Counter)
    for thread, frames, count in load_collapsed(wall):
        # The innermost frame of ours or of the ORM says what the thread waits for.
        ours = [f for f in frames if "django_qtasks" in f or "django/db" in f]
        label = f"{ours[-1]} -> {frames[-1]}" if ours else frames[-1]
        per_thread[thread.rstrip("_0123456789")][label] += count
    print("  py-spy --idle (where each thread's wall time goes):")
    for thread, labels in sorted(per_thread.items(), key=lambda item: -sum(item[1].values())):
        samples = sum(labels.values())
        print(f"   thread {thread} ({samples} samples):")
        for label, count in labels.most_common(6):
            print(f"    {100 * count / samples:5.1f}%  {label}")


def short(frame: str) -> str:
    """'function (path/to/module.py:12)' -> 'function (module.py)'."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    parts = where.split("/")
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    elif "django_qtasks" in parts:
        parts = parts[parts.index("django_qtasks") :]
    else:
        parts = parts[-2:]
    return f"{name} ({'/'.join(parts)})"


if __name__ == "__main__":
    sys.exit(main())
