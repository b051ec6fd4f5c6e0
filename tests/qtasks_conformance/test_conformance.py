"""QTasks' documented usages, run unchanged but for their imports, against real workers.

Each program of catalogue.py is ported by rewrite.port (imports only) and
written to a directory of its own; a ``qtasks_worker`` imports it as its only
tasks module, and each usage's client runs as a program of its own. The
test asserts the documented outcome.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, WorkerProcess, worker_env
from tests.qtasks_conformance.catalogue import USAGES, Program, Usage
from tests.qtasks_conformance.rewrite import port

pytestmark = [pytest.mark.e2e, pytest.mark.db_independent]

SETTINGS = "tests.qtasks_conformance.settings"


def program_env(program: Program, directory: Path) -> dict[str, str]:
    env = worker_env()
    env.update(
        DJANGO_SETTINGS_MODULE=SETTINGS,
        PYTHONPATH=os.pathsep.join([str(directory), env["PYTHONPATH"]]),
        QTASKS_CONFORMANCE_MODULE=program.module,
    )
    return env


class ProgramWorker(WorkerProcess):
    """A ``qtasks_worker`` whose only tasks are a ported program's."""

    def __init__(self, program: Program, directory: Path) -> None:
        self.program = program
        self.directory = directory
        self.log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in stop)
            "w+", prefix="qtasks-conformance-", suffix=".log", delete=False
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "django", "qtasks_worker", "--concurrency", "4"],
            env=program_env(program, directory),
            cwd=ROOT,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            self.wait_for_log("started:", timeout=60)
        except AssertionError:
            self.stop()
            raise


@pytest.fixture(scope="module")
def workers(django_db_setup: None, django_db_blocker: object) -> Iterator[dict[str, object]]:
    """One worker at a time: programs share task names, so two never run side by side."""
    running: dict[str, object] = {}
    yield running
    current = running.get("worker")
    if isinstance(current, ProgramWorker):
        current.stop()


def program_worker(workers: dict[str, object], program: Program) -> ProgramWorker:
    current = workers.get("worker")
    if isinstance(current, ProgramWorker) and current.program == program:
        return current
    if isinstance(current, ProgramWorker):
        del workers["worker"]
        current.stop()
    directory = Path(tempfile.mkdtemp(prefix="qtasks-conformance-"))
    (directory / f"{program.module}.py").write_text(port(program.code))
    worker = ProgramWorker(program, directory)
    workers["worker"] = worker
    return worker


def run_client(usage: Usage, worker: ProgramWorker) -> dict[str, object]:
    client = worker.directory / f"client_{usage.id.replace('-', '_')}.py"
    client.write_text(port(usage.client))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.qtasks_conformance.run",
            str(client),
            json.dumps(usage.checks),
        ],
        env=program_env(usage.program, worker.directory),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    for line in done.stdout.splitlines():
        if line.startswith("CONFORMANCE "):
            results = dict(json.loads(line.removeprefix("CONFORMANCE ")))
            if not all(result is True for result in results.values()):
                # The assertion that follows shows what the client saw and what the worker did.
                results["client output"] = done.stdout + done.stderr
                results["worker log"] = worker.log
            return results
    raise AssertionError(
        f"{usage.id}: the client did not finish ({done.returncode}):\n{done.stdout}\n"
        f"{done.stderr}\nworker log:\n{worker.log}"
    )


def param(usage: Usage) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=usage.gap)] if usage.gap else []
    return pytest.param(usage, id=usage.id, marks=marks)


#: The usages that have a place in a Django app; the others are listed, not run.
APPLICABLE = [usage for usage in USAGES if not usage.not_applicable]


@pytest.mark.parametrize("usage", [param(usage) for usage in APPLICABLE])
def test_usage(usage: Usage, workers: dict[str, object], transactional_db: None) -> None:
    worker = program_worker(workers, usage.program)
    results = run_client(usage, worker)
    failed = {check: result for check, result in results.items() if result is not True}
    assert not failed, f"{usage.id} ({usage.source}): " + "\n".join(
        f"{check}: {result}" for check, result in failed.items()
    )
    assert set(results) == set(usage.checks)


def test_every_import_has_a_rewrite() -> None:
    """The catalogue's programs and clients port: each QTasks import has a target."""
    for usage in APPLICABLE:
        if usage.gap:
            continue
        assert "qtasks" not in port(usage.program.code).replace("django_qtasks", "")
        assert "qtasks" not in port(usage.client).replace("django_qtasks", "")


def test_rewrite_changes_import_lines_only() -> None:
    source = "from qtasks import QueueTasks, SyncRouter as R\napp = QueueTasks()\n"
    assert port(source) == (
        "from django_qtasks.compat import QueueTasks\n"
        "from django_qtasks.routers import SyncRouter as R\n"
        "app = QueueTasks()\n"
    )
