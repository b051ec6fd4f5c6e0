"""Fault injection with real message brokers: brokers that go down, workers killed with SIGKILL.

Each test runs against a PRIVATE redis-server or RabbitMQ node started here on
free ports (the machine's own services on 6379 and 5672 are never touched),
stops and restarts it mid-run, or kills a worker with SIGKILL, and then counts:
every task must end exactly once in a final status. Executions are counted
from outside the library: quick tasks append one line per run to a file
(``worker_append_line``), long ones are counted by the "started, attempt" line
each worker logs when a run begins (a killed worker's log file survives it).

The figures of each scenario (enqueued, ended, duplicated, lost) are in every
assertion message and in a summary printed at the end of the module.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kombu
import pytest
from django.conf import settings
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from django_qtasks import app
from django_qtasks.brokers import get_broker, reset_broker
from django_qtasks.brokers.kombu import Consumer, KombuBroker
from django_qtasks.models import FINAL_STATUSES, Task, TaskStatus, WorkerHeartbeat
from tests.conftest import WorkerProcess, wait_all_final, wait_status
from tests.testapp import tasks, tasks_lifecycle

pytestmark = [pytest.mark.e2e, pytest.mark.db_independent, pytest.mark.django_db(transaction=True)]

HEARTBEAT_TIMEOUT = settings.QTASKS["HEARTBEAT_TIMEOUT"]
#: How long a broker stays down in the restart scenarios.
DOWNTIME = 5.0
UNREACHABLE = re.compile(r"Broker \S+ is unreachable \(.*\); reconnecting in (\d+)s")

#: One line per scenario and broker, printed at the end of the module.
FIGURES: list[str] = []


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def record_figures(scenario: str, **figures: int) -> str:
    line = f"figures {scenario}: " + " ".join(f"{key}={value}" for key, value in figures.items())
    FIGURES.append(line)
    print(line)
    return line


@pytest.fixture(scope="module", autouse=True)
def figures_summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not FIGURES:
        return
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    lines = ["", "broker fault figures:", *(f"  {line}" for line in FIGURES)]
    for line in lines:
        if reporter is not None:
            reporter.write_line(line)
        else:  # pragma: no cover
            print(line)


# Private broker instances ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


class BrokerServer:
    """A broker process of our own on a free port, that tests stop and start again."""

    name = ""
    url = ""
    port = 0

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{self.name}.out"
        self.starts = 0

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 60) -> None:
        assert not self.running, f"{self.name} is already running"
        assert not port_open(self.port), f"port {self.port} is taken: not starting {self.name}"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                env=self.env(),
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, to kill it whole if need be
            )
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.name} did not listen on {self.port}:\n{self.log_tail()}")
            time.sleep(0.05)
        self.starts += 1

    def stop(self, timeout: float = 30) -> None:
        """Stop it the way its service manager would (SIGTERM), and wait until it is gone."""
        if not self.running:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        deadline = time.monotonic() + 10
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not port_open(self.port), f"{self.name} still listens on {self.port}"

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def ensure_started(self) -> None:
        if not self.running:
            self.start()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def close(self) -> None:
        self.stop()


class RedisServer(BrokerServer):
    name = "redis"

    def __init__(self, binary: str, workdir: Path) -> None:
        super().__init__(workdir)
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        # No persistence, like the default of many Redis deployments: what the
        # queues held is gone after a restart.
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self.workdir),
        ]  # fmt: skip


class RabbitServer(BrokerServer):
    """A RabbitMQ node of our own: own name, ports, epmd, data and logs, no plugins."""

    name = "rabbitmq"

    def __init__(self, script: str, epmd: str, workdir: Path) -> None:
        super().__init__(workdir)
        self.script = script
        self.epmd = epmd
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_port())
        self.port, self.dist_port, self.epmd_port = sorted(ports)
        self.node = f"qtasks-test-{os.getpid()}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        (workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )
        (workdir / "enabled_plugins").write_text("[].\n")
        (workdir / "rabbitmq-env.conf").write_text("")
        self.epmd_process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [self.script]

    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RABBITMQ_", "ERL_"))
        }
        work = str(self.workdir)
        env.update(
            HOME=work,  # its own Erlang cookie
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_CONFIG_FILE=f"{work}/rabbitmq",
            RABBITMQ_ADVANCED_CONFIG_FILE=f"{work}/advanced.config",
            RABBITMQ_CONF_ENV_FILE=f"{work}/rabbitmq-env.conf",
            RABBITMQ_ENABLED_PLUGINS_FILE=f"{work}/enabled_plugins",
            RABBITMQ_MNESIA_BASE=f"{work}/mnesia",
            RABBITMQ_LOG_BASE=f"{work}/log",
            RABBITMQ_PID_FILE=f"{work}/rabbitmq.pid",
            RABBITMQ_SERVER_START_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        return env

    def start(self, timeout: float = 60) -> None:
        if self.epmd_process is None or self.epmd_process.poll() is not None:
            # Our own epmd: the node never registers with the machine's one.
            self.epmd_process = subprocess.Popen(
                [self.epmd, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10
            while not port_open(self.epmd_port) and time.monotonic() < deadline:
                time.sleep(0.05)
        super().start(timeout)

    def close(self) -> None:
        super().close()
        if self.epmd_process is not None and self.epmd_process.poll() is None:
            self.epmd_process.terminate()
            self.epmd_process.wait(10)


def rabbitmq_script() -> str | None:
    # The packaged /usr/sbin/rabbitmq-server is a wrapper that su's to the
    # rabbitmq user and the machine's own settings: run the real script.
    direct = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
    if direct.exists():
        return str(direct)
    return shutil.which("rabbitmq-server")


@contextlib.contextmanager
def private_server(factory: Callable[[Path], BrokerServer]) -> Iterator[BrokerServer]:
    workdir = Path(tempfile.mkdtemp(prefix="qtasks-broker-"))
    server = factory(workdir)
    try:
        server.start()
        yield server
    finally:
        server.close()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[BrokerServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: no private Redis to break")
    with private_server(lambda workdir: RedisServer(binary, workdir)) as server:
        yield server


@pytest.fixture(scope="module")
def rabbitmq_server() -> Iterator[BrokerServer]:
    script, epmd = rabbitmq_script(), shutil.which("epmd")
    if script is None or epmd is None:
        pytest.skip("rabbitmq-server (with epmd) is not installed: no private RabbitMQ to break")
    with private_server(lambda workdir: RabbitServer(script, epmd, workdir)) as server:
        yield server


@pytest.fixture(params=["redis", "rabbitmq"])
def server(request: pytest.FixtureRequest) -> BrokerServer:
    """Each scenario on both brokers; running at the start of every test."""
    instance: BrokerServer = request.getfixturevalue(f"{request.param}_server")
    instance.ensure_started()
    return instance


@contextlib.contextmanager
def use_broker(
    monkeypatch: pytest.MonkeyPatch, url: str, **options: Any
) -> Iterator[dict[str, Any]]:
    """Point worker subprocesses (environment) and this process (settings) at ``url``.

    ``options``: more QTASKS keys, for both (tests/settings.py reads them from
    QTASKS_TEST_SETTINGS in the worker processes).
    """
    monkeypatch.setenv("QTASKS_BROKER_URL", url)
    if options:
        extra = json.loads(os.environ.get("QTASKS_TEST_SETTINGS", "{}"))
        monkeypatch.setenv("QTASKS_TEST_SETTINGS", json.dumps({**extra, **options}))
    qtasks = {**settings.QTASKS, "BROKER_URL": url, **options}
    with override_settings(QTASKS=qtasks):
        reset_broker()
        try:
            yield qtasks
        finally:
            reset_broker()


# Workers ------------------------------------------------------------------------------------


@contextlib.contextmanager
def captured_log(name: str) -> Iterator[list[str]]:
    """The lines logged to ``name`` in this process, instead of the console."""
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    saved = logger.handlers, logger.propagate
    logger.handlers, logger.propagate = [handler], False
    try:
        yield lines
    finally:
        logger.handlers, logger.propagate = saved


def wait_reconnected(worker: WorkerProcess, queue: str, timeout: float = 40) -> None:
    """Wait until the worker consumes again after its last "unreachable" line."""
    deadline = time.monotonic() + timeout
    while True:
        log = worker.log
        if log.rfind(f"Consuming {queue} from") > log.rfind("; reconnecting in"):
            return
        assert time.monotonic() < deadline, f"the worker did not reconnect:\n{log[-3000:]}"
        time.sleep(0.1)


def assert_alive(*workers: WorkerProcess) -> None:
    for worker in workers:
        assert worker.process.poll() is None, f"worker exited:\n{worker.log}"


def runs_started(task_uuid: Any, *workers: WorkerProcess) -> int:
    """How many runs of this task began, counted in the workers' own logs."""
    marker = f"Task {task_uuid} ("
    return sum(
        1
        for worker in workers
        for line in worker.log.splitlines()
        if marker in line and ") started, attempt" in line
    )


# Counting -----------------------------------------------------------------------------------


def line_counts(path: Path) -> collections.Counter[str]:
    """Runs per label in a file that ``worker_append_line`` writes ("label pid" per run)."""
    if not path.exists():
        return collections.Counter()
    return collections.Counter(line.split()[0] for line in path.read_text().splitlines())


def append_tasks(path: Path, prefix: str, count: int, queue: str) -> dict[str, Task]:
    return {
        f"{prefix}{index:03d}": tasks_lifecycle.worker_append_line.add_task(
            str(path), f"{prefix}{index:03d}", queue=queue
        )
        for index in range(count)
    }


def warnings_of(worker: WorkerProcess) -> str:
    """A worker's last warnings and errors (with their tracebacks) and its last lines,
    for a failure's message."""
    records: list[str] = []
    for line in worker.log.splitlines():
        if line.startswith("[") or not records:
            records.append(line)
        else:  # a traceback's line belongs to the record above it
            records[-1] += "\n" + line
    warnings = [
        r for r in records if any(f" {level} " in r for level in ("WARNING", "ERROR", "CRITICAL"))
    ]
    return (
        f"worker {worker.process.pid}, last warnings:\n"
        + "\n".join(warnings[-30:])
        + "\nits last lines:\n"
        + "\n".join(records[-40:])
    )


def stuck_report(uuids: list[Any]) -> str:
    rows = Task.objects.filter(pk__in=uuids).exclude(status__in=FINAL_STATUSES)
    return "; ".join(
        f"{row.uuid} {row.status} published_at={row.published_at} worker={row.worker!r}"
        for row in rows[:10]
    )


# 1. The broker stops and comes back while workers run -------------------------------------


def test_broker_restart_mid_run_loses_and_duplicates_nothing(
    server, start_worker, monkeypatch, tmp_path
):
    queue, path = unique("restart"), tmp_path / "runs.txt"
    # More than the two workers hold at once (claimed ahead, and received
    # ahead on Redis): most are in the broker when it stops.
    first_count, down_count = 1000, 50
    with use_broker(monkeypatch, server.url):
        before = append_tasks(path, "a", first_count, queue)
        unpublished = Task.objects.filter(queue=queue, published_at__isnull=True)
        assert not unpublished.exists(), "the broker is up: every task is published at once"
        # Both workers start at once, and the broker stops mid-run: as soon as
        # a few tasks ended (a worker runs hundreds a second), most still waiting.
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            starting = [
                pool.submit(
                    start_worker,
                    "--queues",
                    queue,
                    "--concurrency",
                    "4",
                    "--worker-id",
                    unique("w"),
                )
                for _ in range(2)
            ]
            deadline = time.monotonic() + 20
            while sum(line_counts(path).values()) < 40 and time.monotonic() < deadline:
                time.sleep(0.002)
            ended_at_stop = Task.objects.filter(queue=queue, status__in=FINAL_STATUSES).count()
            server.stop()
            down_at = time.monotonic()
            ended_when_down = Task.objects.filter(queue=queue, status__in=FINAL_STATUSES).count()
            workers = [future.result() for future in starting]

        for worker in workers:
            worker.wait_for_log("is unreachable", timeout=15)
        assert_alive(*workers)

        # A client enqueuing now gets its task, kept in the outbox: no exception.
        started = time.monotonic()
        with captured_log("django_qtasks.broker") as client_log:
            during = append_tasks(path, "b", down_count, queue)
        enqueue_seconds = time.monotonic() - started
        assert len(client_log) == down_count
        assert all("it stays in the outbox" in line for line in client_log), client_log[:3]
        for task in during.values():
            assert isinstance(task, Task)
            task.refresh_from_db()
            assert task.published_at is None
            assert task.status == TaskStatus.NEW

        time.sleep(max(0.0, DOWNTIME - (time.monotonic() - down_at)))
        assert_alive(*workers)
        server.start()
        restarted_at = time.monotonic()

        everything = {**before, **during}
        uuids = [task.uuid for task in everything.values()]
        statuses = wait_all_final(uuids, stalled_for=60)
        resumed_seconds = time.monotonic() - restarted_at

    runs = line_counts(path)
    records = {row.uuid: row for row in Task.objects.filter(pk__in=uuids)}
    ended = sum(1 for row in records.values() if row.status in FINAL_STATUSES)
    duplicated = sum(count - 1 for count in runs.values() if count > 1)
    lost = sum(1 for label in everything if runs[label] == 0)
    figures = record_figures(
        f"{server.name} broker-restart",
        enqueued=len(everything),
        enqueued_while_down=len(during),
        ended_at_stop=ended_at_stop,
        ended_when_down=ended_when_down,
        ended=ended,
        duplicated=duplicated,
        lost=lost,
    )
    timing = (
        f"timing {server.name} broker-restart: {down_count} enqueues while down took "
        f"{enqueue_seconds:.2f}s; all ended {resumed_seconds:.1f}s after the restart"
    )
    FIGURES.append(timing)
    print(timing)
    context = f"{figures}\nstatuses={statuses}\nnot ended: {stuck_report(uuids)}\n" + "\n".join(
        warnings_of(worker) for worker in workers
    )
    if ended != len(everything):
        context += "\n".join(worker.report_state() for worker in workers)
    assert ended_when_down < len(before), f"the broker went down after the run: {context}"
    assert ended == len(everything), context
    assert statuses == {TaskStatus.SUCCESS: len(everything)}, context
    assert duplicated == 0, context
    assert lost == 0, context
    assert set(runs) == set(everything), context
    assert all(row.attempts == 1 for row in records.values()), context
    assert all(len(row.attempt_log) == 1 for row in records.values()), context
    assert not Task.objects.filter(queue=queue, status=TaskStatus.PROCESS).exists()

    # The workers stayed up, said why, backed off, and came back.
    assert_alive(*workers)
    logs = "\n".join(worker.log for worker in workers)
    pauses = {int(seconds) for seconds in UNREACHABLE.findall(logs)}
    assert {1, 2} <= pauses, logs[-3000:]
    for worker in workers:
        wait_reconnected(worker, queue)
    assert "from the outbox to" in logs
    # What the broker held before it stopped was published again on reconnection
    # (the private Redis keeps nothing across a restart).
    assert f"waiting tasks of {queue} again" in logs
    assert ":***@" in logs or "guest" not in logs  # no password in the logs


# 2. A worker killed with SIGKILL in the middle of long tasks ---------------------------------


def test_sigkilled_worker_tasks_are_retried_or_failed_and_nothing_else_runs_twice(
    server, start_worker, monkeypatch, tmp_path
):
    queue, path = unique("kill"), tmp_path / "runs.txt"
    doomed_id, rescuer_id = unique("doomed"), unique("rescuer")
    with use_broker(monkeypatch, server.url):
        doomed = start_worker("--queues", queue, "--concurrency", "3", "--worker-id", doomed_id)
        # What the doomed worker is running when it dies: two tasks that may
        # retry once (retry=1) and one that may not.
        retryable = [tasks_lifecycle.worker_slow_first_attempt.add_task(30, queue=queue)]
        final = [tasks.sync_sleeper.add_task(30, queue=queue)]
        retryable.append(tasks_lifecycle.worker_slow_first_attempt.add_task(30, queue=queue))
        killed = [*retryable, *final]
        deadline = time.monotonic() + 60
        # Started, not only claimed: a claimed task that has not started
        # when its worker dies goes back unattempted.
        while not all(runs_started(task.uuid, doomed) for task in killed):
            assert time.monotonic() < deadline, "the doomed worker did not start its tasks"
            time.sleep(0.02)
        # And a backlog behind them: long first attempts and quick tasks; the
        # doomed worker is full, so what it received of these it has not claimed.
        slow = [
            tasks_lifecycle.worker_slow_first_attempt.add_task(1, queue=queue) for _ in range(6)
        ]
        quick = append_tasks(path, "q", 30, queue)
        time.sleep(0.5)
        rescuer = start_worker("--queues", queue, "--concurrency", "4", "--worker-id", rescuer_id)
        time.sleep(0.3)

        for task in killed:
            task.refresh_from_db()
            assert (task.status, task.worker, task.attempts) == (TaskStatus.PROCESS, doomed_id, 1)
        killed_at = timezone.now()
        doomed.signal(signal.SIGKILL)
        assert doomed.wait(10) == -signal.SIGKILL

        everything = [*killed, *slow, *quick.values()]
        uuids = [task.uuid for task in everything]
        statuses = wait_all_final(uuids, stalled_for=40)

    records = {row.uuid: row for row in Task.objects.filter(pk__in=uuids)}
    runs = {task.uuid: runs_started(task.uuid, doomed, rescuer) for task in everything}
    lines = line_counts(path)
    killed_ids = {task.uuid for task in killed}
    ran_twice = {key for key, count in runs.items() if count > 1}
    duplicated = sum(count - 1 for count in runs.values() if count > 1)
    lost = sum(1 for key in uuids if runs[key] == 0)
    figures = record_figures(
        f"{server.name} worker-sigkill",
        enqueued=len(everything),
        running_when_killed=len(killed),
        ended=sum(1 for row in records.values() if row.status in FINAL_STATUSES),
        duplicated=duplicated,
        duplicated_by_kill=len(ran_twice & killed_ids),
        duplicated_otherwise=len(ran_twice - killed_ids),
        # Waiting tasks sent again once the dead worker's heartbeat expired
        # (on Redis, those it had received and not claimed are found only so).
        republished=sum(
            1
            for task in [*slow, *quick.values()]
            if (records[task.uuid].published_at or killed_at) > killed_at
        ),
        retried=sum(1 for key in killed_ids if records[key].attempts == 2),
        failed=sum(1 for key in killed_ids if records[key].status == TaskStatus.ERROR),
        lost=lost,
    )
    context = f"{figures}\nstatuses={statuses}\nnot ended: {stuck_report(uuids)}"
    assert sum(statuses.get(status, 0) for status in FINAL_STATUSES) == len(everything), context
    assert not Task.objects.filter(queue=queue, status=TaskStatus.PROCESS).exists(), context
    assert lost == 0, context

    # Only what the dead worker was running ran twice: the documented
    # at-least-once of a killed worker, counted as an attempt.
    message = f"Worker {doomed_id} stopped sending heartbeats while running this task."
    for task in retryable:
        row = records[task.uuid]
        assert row.status == TaskStatus.SUCCESS, context
        assert (row.attempts, row.returning, row.worker) == (2, 2, rescuer_id), context
        assert [(e["worker"], e["status"]) for e in row.attempt_log] == [
            (doomed_id, TaskStatus.ERROR),
            (rescuer_id, TaskStatus.SUCCESS),
        ], context
        assert row.attempt_log[0]["error"] == message
        assert runs[task.uuid] == 2, context
    for task in final:
        row = records[task.uuid]
        assert (row.status, row.attempts) == (TaskStatus.ERROR, 1), context
        assert message in row.traceback
        assert [(e["worker"], e["status"]) for e in row.attempt_log] == [
            (doomed_id, TaskStatus.ERROR)
        ], context
        assert runs[task.uuid] == 1, context  # no attempts left: failed, not run again
    assert ran_twice == {task.uuid for task in retryable}, context

    for task in [*slow, *quick.values()]:
        row = records[task.uuid]
        assert row.status == TaskStatus.SUCCESS, context
        assert (row.attempts, len(row.attempt_log)) == (1, 1), context
        assert runs[task.uuid] == 1, context
    assert lines == collections.Counter({label: 1 for label in quick}), context
    assert not WorkerHeartbeat.objects.filter(worker_id=doomed_id).exists()


# 3. Redis: a visibility timeout shorter than the tasks ---------------------------------------


def redis_calls(url: str, command: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats").get(f"cmdstat_{command}", {})
    finally:
        client.close()
    return int(stats.get("calls", 0))


def test_redis_visibility_timeout_never_runs_a_long_task_twice(
    redis_server, start_worker, monkeypatch
):
    redis_server.ensure_started()
    queue = unique("visibility")
    options = {"BROKER_TRANSPORT_OPTIONS": {"visibility_timeout": 1}}
    with use_broker(monkeypatch, redis_server.url, **options):
        restores_before = redis_calls(redis_server.url, "hget")
        unacked_before = redis_calls(redis_server.url, "hset")
        workers = [
            start_worker("--queues", queue, "--concurrency", "2", "--worker-id", unique("vt"))
            for _ in range(2)
        ]
        # Twice as many 2.5 s tasks as slots: half of the messages wait in busy
        # workers for longer than the visibility timeout.
        long_tasks = [
            (tasks.sync_sleeper if index % 2 else tasks.async_sleeper).add_task(2.5, queue=queue)
            for index in range(8)
        ]
        uuids = [task.uuid for task in long_tasks]
        statuses = wait_all_final(uuids, stalled_for=40)
        # kombu's Redis transport reads a message back from its "unacked" hash
        # (HGET) only to restore it to the queue once its visibility timeout
        # passed. Workers take messages without acks: nothing is ever restored.
        restored = redis_calls(redis_server.url, "hget") - restores_before
        # ...nor written to that hash (HSET) on delivery.
        unacked = redis_calls(redis_server.url, "hset") - unacked_before

    records = {row.uuid: row for row in Task.objects.filter(pk__in=uuids)}
    runs = {key: runs_started(key, *workers) for key in uuids}
    duplicated = sum(count - 1 for count in runs.values() if count > 1)
    figures = record_figures(
        "redis visibility-timeout=1s tasks=2.5s",
        enqueued=len(uuids),
        messages_restored_by_timeout=restored,
        ended=sum(1 for row in records.values() if row.status in FINAL_STATUSES),
        duplicated=duplicated,
        lost=sum(1 for count in runs.values() if count == 0),
    )
    context = f"{figures}\nstatuses={statuses}\nruns={runs}"
    assert statuses == {TaskStatus.SUCCESS: len(uuids)}, context
    assert restored == 0, f"kombu restored messages after their visibility timeout: {context}"
    assert unacked == 0, f"kombu kept unacked copies of messages: {context}"
    assert all(count == 1 for count in runs.values()), context
    for row in records.values():
        assert (row.attempts, len(row.attempt_log), row.returning) == (1, 1, "woke up"), context
    assert_alive(*workers)


# 4. Redis: messages taken several to a round trip, under a key prefix ------------------------


def test_redis_worker_takes_messages_in_priority_order_under_a_key_prefix(
    redis_server, start_worker, monkeypatch
):
    import redis

    redis_server.ensure_started()
    queue = unique("batches")
    options = {"BROKER_TRANSPORT_OPTIONS": {"global_keyprefix": "site1:"}}
    with use_broker(monkeypatch, redis_server.url, **options):
        with transaction.atomic():
            queued = [
                tasks.echo.add_task(number, queue=queue, priority=number % 5)
                for number in range(100)
            ]
        client = redis.Redis.from_url(redis_server.url)
        try:
            # kombu's lists, one per priority step, all under the prefix.
            assert client.keys(f"site1:*{queue}*"), client.keys("*")
        finally:
            client.close()
        start_worker("--queues", queue, "--concurrency", "1")
        statuses = wait_all_final([task.uuid for task in queued], stalled_for=30)

    assert statuses == {TaskStatus.SUCCESS: 100}
    ran = list(Task.objects.filter(queue=queue).order_by("started_at"))
    assert [task.priority for task in ran] == sorted(task.priority for task in queued)
    # (How many messages a BLMPOP takes depends on how runs and claims
    # interleave: that figure is the benchmarks', not a test's.)


def redis_reads(client: Any) -> int:
    """Read events the server has processed: one per round trip of its clients."""
    return int(client.info("stats")["total_reads_processed"])


@pytest.mark.skipif(not hasattr(kombu.Producer, "batch"), reason="Producer.batch is kombu 5.7+")
def test_redis_add_tasks_publishes_its_messages_in_one_pipeline(redis_server, monkeypatch):
    import redis

    redis_server.ensure_started()
    queue = unique("bulk")
    client = redis.Redis.from_url(redis_server.url)
    try:
        with use_broker(monkeypatch, redis_server.url):
            tasks.echo.add_task("first", queue=queue)  # connects, declares the queue
            reads_before = redis_reads(client)
            queued = app.add_tasks((tasks.echo.s(number) for number in range(200)), queue=queue)
            reads = redis_reads(client) - reads_before
        lists = [key for key in client.keys(f"*{queue}*") if client.type(key) == b"list"]
        messages = sum(client.llen(key) for key in lists)
    finally:
        client.close()

    assert messages == 201
    assert Task.objects.filter(pk__in=[task.pk for task in queued], published_at=None).count() == 0
    # One message a round trip would be 200 or more. A pipeline is read in
    # pieces (about 140 kB here), and the second INFO is one more.
    assert reads <= 200 // 4, reads


def test_a_cancel_requested_while_redis_was_down_reaches_the_run_once_it_is_back(
    redis_server, start_worker, monkeypatch
):
    # The worker's cancel signals come through the private Redis, and its
    # polls are an hour apart: only a look made when it listens again can
    # find the request, whose message went nowhere.
    redis_server.ensure_started()
    monkeypatch.setenv("QTASKS_TEST_REDIS", redis_server.url)
    monkeypatch.setenv(
        "QTASKS_TEST_SETTINGS",
        json.dumps({"REDIS_CACHE_ALIAS": "qtasks", "CANCEL_POLL_INTERVAL": 3600}),
    )
    queue = unique("cancel-down")
    worker = start_worker("--queues", queue)
    running = tasks.sync_sleeper.add_task(600, queue=queue)
    worker.wait_for_log(f"Task {running.uuid} (sync_sleeper) started", timeout=60)

    redis_server.stop()
    try:
        worker.wait_for_log("Redis unreachable for cancel signals", timeout=60)
        running.cancel("while Redis was down", by="alice")
    finally:
        redis_server.start()

    cancelled = wait_status(running, timeout=120)
    assert (cancelled.status, cancelled.cancel_reason) == (
        TaskStatus.CANCEL,
        "while Redis was down",
    )


def test_a_consumer_whose_count_says_full_while_it_holds_nothing_counts_again(
    redis_server, monkeypatch, caplog
):
    redis_server.ensure_started()
    queue = unique("miscount")
    with use_broker(monkeypatch, redis_server.url, STALL_WARNING=0.5):
        broker = get_broker()
        assert isinstance(broker, KombuBroker)
        task = tasks.echo.add_task("waiting", queue=queue)
        arrived = threading.Event()
        consumer = Consumer(broker, [queue], prefetch=2, on_work=arrived.set)
        consumer.unsettled = 2  # settlements that will never come: it would take no message
        with caplog.at_level(logging.ERROR, "django_qtasks.broker"):
            consumer.start()
            try:
                assert arrived.wait(60), "the consumer never received the waiting message"
                taken = consumer.take(10)
                consumer.settle(taken, requeue=False)
            finally:
                consumer.stop()
    assert [uuid for uuid, _ in taken] == [task.uuid]
    assert f"The consumer of {queue} counted 2 messages unsettled (its prefetch: 2)" in caplog.text


def test_redis_add_tasks_while_down_keeps_them_all_in_the_outbox_then_runs_them(
    redis_server, start_worker, monkeypatch
):
    redis_server.ensure_started()
    queue = unique("bulk-down")
    with use_broker(monkeypatch, redis_server.url):
        tasks.echo.add_task("first", queue=queue)  # the publisher is connected
        redis_server.stop()
        try:
            with captured_log("django_qtasks.broker") as client_log:
                queued = app.add_tasks((tasks.echo.s(number) for number in range(50)), queue=queue)
        finally:
            redis_server.start()
        uuids = [task.uuid for task in queued]
        assert Task.objects.filter(pk__in=uuids, published_at=None).count() == 50
        assert len(client_log) == 1, client_log
        assert "and 49 more" in client_log[0]
        assert "stays in the outbox" in client_log[0]

        start_worker("--queues", queue)
        statuses = wait_all_final(uuids, stalled_for=30)
    assert statuses == {TaskStatus.SUCCESS: 50}


class OpensAFile:
    """Unpickling this opens (creates) a file: the proof that something unpickled it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return open, (self.path, "w")


def test_redis_worker_drops_a_pickled_message_unopened(
    redis_server, start_worker, monkeypatch, tmp_path
):
    from django_qtasks.brokers import get_broker
    from django_qtasks.brokers.kombu import KombuBroker

    redis_server.ensure_started()
    queue, marker = unique("pickle"), tmp_path / "unpickled"
    with use_broker(monkeypatch, redis_server.url):
        worker = start_worker("--queues", queue, "--concurrency", "1")
        broker = get_broker()
        assert isinstance(broker, KombuBroker)
        with broker.connection() as connection:
            # Anyone who can write to Redis can put such a message in a queue.
            connection.Producer().publish(
                OpensAFile(str(marker)),
                routing_key=broker.queue(queue).name,
                serializer="pickle",
                declare=[broker.queue(queue)],
            )
        after = tasks.echo.add_task("after", queue=queue)
        assert wait_status(after).status == TaskStatus.SUCCESS

    assert not marker.exists()
    assert "Dropping a message" in worker.log
    assert_alive(worker)
