"""Fixtures that run real ``qtasks_worker`` processes against the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from django_qtasks.models import FINAL_STATUSES, Task

ROOT = Path(__file__).resolve().parent.parent

#: Fixtures that run a worker process: a test that uses one is marked ``e2e``.
WORKER_FIXTURES = {"start_worker", "shared_worker", "worker"}

#: The test being run, so that starting a worker can check it is marked ``e2e``.
_running: pytest.Item | None = None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if WORKER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    global _running
    _running = item
    try:
        return (yield)
    finally:
        _running = None


def worker_env() -> dict[str, str]:
    """The environment of a worker process of the test database (for ``e2e`` tests only)."""
    if _running is not None and _running.get_closest_marker("e2e") is None:
        # Keeps `pytest -m "not e2e"` (the quick run) free of worker processes.
        raise AssertionError(f"{_running.nodeid} starts a worker: mark it @pytest.mark.e2e")
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "testproject")]),
        # After django_db_setup, NAME is the test database's name.
        QTASKS_DB_NAME=str(connection.settings_dict["NAME"]),
        PYTHONUNBUFFERED="1",
        # SIGABRT then prints every thread's stack (see WorkerProcess.wait).
        PYTHONFAULTHANDLER="1",
    )
    return env


def run_worker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m django qtasks_worker ARGS`` to its end, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "django", "qtasks_worker", *args],
        env=worker_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


#: Seconds a worker process may take to say it started.
STARTUP_TIMEOUT = 120


class WorkerProcess:
    """A ``manage.py qtasks_worker`` (or other command) subprocess with its log in a file."""

    def __init__(
        self,
        *args: str,
        command: str = "qtasks_worker",
        ready: str = "started:",
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in stop)
            "w+", prefix=f"{command}-", suffix=".log", delete=False
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "django", command, *args],
            env={**worker_env(), **(env or {})},
            cwd=ROOT,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            # Starting is importing Django and every app, and the system
            # checks: on a busy machine that alone can take tens of seconds.
            self.wait_for_log(ready, timeout=STARTUP_TIMEOUT)
        except AssertionError:
            self.stop()  # closes the log file: the caller never gets this object
            raise

    @property
    def log(self) -> str:
        return Path(self.log_file.name).read_text()

    def wait_for_log(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited ({self.process.returncode}):\n{self.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the worker log:\n{self.log}")
            time.sleep(0.02)

    def report_state(self, timeout: float = 30) -> str:
        """What the worker logs of its state and threads on SIGUSR1 (for a failure's message)."""
        before = len(self.log)
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while " state: " not in self.log[before:] and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the stacks follow in the same record
        return self.log[before:] or f"(no state reported within {timeout:g}s)"

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        """The exit code; if it does not come in time, fail with the stacks of its threads."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)
            self.process.wait(10)
            raise AssertionError(
                f"still running after {timeout}s; its log and threads:\n{self.log}"
            ) from None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()
        os.unlink(self.log_file.name)


@pytest.fixture
def start_worker(django_db_setup: None) -> Iterator[Callable[..., WorkerProcess]]:
    """Start workers with the given command-line options; all are stopped at the end."""
    started: list[WorkerProcess] = []

    def start(*args: str, **options: Any) -> WorkerProcess:
        worker = WorkerProcess(*args, **options)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="session")
def shared_worker(django_db_setup: None, django_db_blocker: object) -> Iterator[WorkerProcess]:
    """One worker for the whole session, for tests that only need tasks to run."""
    worker = WorkerProcess("--concurrency", "8", "--queues", "default,other")
    yield worker
    worker.stop()


@pytest.fixture
def worker(shared_worker: WorkerProcess, transactional_db: None) -> WorkerProcess:
    """The shared worker, with a test database whose commits it can see."""
    return shared_worker


def wait_until(
    predicate: Callable[[], object],
    timeout: float = 20,
    message: str | Callable[[], str] = "condition",
) -> None:
    """Poll until ``predicate()`` is true; ``message`` (or what it returns, at the
    timeout) says what was awaited and what was seen instead."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            said = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout:g}s waiting for {said}")
        time.sleep(0.02)


def wait_status(task: Task, *statuses: str, timeout: float = 20) -> Task:
    """Poll the record until it has one of ``statuses`` (default: any final one)."""
    wanted = statuses or FINAL_STATUSES

    def reached() -> bool:
        task.refresh_from_db()
        return task.status in wanted

    wait_until(
        reached, timeout, lambda: f"task {task.task_name} to reach {wanted} (is {task.status})"
    )
    return task


def wait_all_final(uuids: list[uuid.UUID], stalled_for: float) -> dict[str, int]:
    """Wait until every task is in a final status, or until none has ended for
    ``stalled_for`` seconds (a busy machine is slow, a lost task never ends);
    count statuses."""
    deadline = time.monotonic() + stalled_for
    ended = 0
    while True:
        counts = Counter(Task.objects.filter(pk__in=uuids).values_list("status", flat=True))
        ended_now = sum(counts[status] for status in FINAL_STATUSES)
        if ended_now == len(uuids):
            return dict(counts)
        if ended_now > ended:
            ended, deadline = ended_now, time.monotonic() + stalled_for
        if time.monotonic() > deadline:
            return dict(counts)
        time.sleep(0.1)
