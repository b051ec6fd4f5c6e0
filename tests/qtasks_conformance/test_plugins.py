"""Plugins, routers and pydantic models on a real worker, in the sync app.

The documented plugin example uses the async app; these programs check the
same machinery where only this branch's pieces are needed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.qtasks_conformance.catalogue import Program, Usage
from tests.qtasks_conformance.test_conformance import program_worker, run_client

pytestmark = [pytest.mark.e2e, pytest.mark.db_independent]

PLUGINS = Program(
    "sync_plugins_app",
    "tests",
    """
from qtasks import QueueTasks
from qtasks.exc import TaskPluginTriggerError
from qtasks.plugins.base import BasePlugin
from qtasks.registries import SyncTask

app = QueueTasks()


class Answer(BasePlugin):
    def trigger(self, name, **kwargs):
        if kwargs["e"].kwargs.get("answer"):
            return {"result": f"{name}: {kwargs['task_func'].task_name} {kwargs['e'].kwargs}"}
        return None


class AsyncSilent(BasePlugin):
    async def trigger(self, name, **kwargs):
        return None


app.add_plugin(AsyncSilent())
app.add_plugin(Answer(), trigger_names=["task_executor_run_task_trigger_error"], component="worker")


@app.task(echo=True)
def answered(self: SyncTask):
    self.ctx.plugin_error(answer=1)


@app.task(echo=True)
async def answered_async(self):
    self.ctx.plugin_error(answer=2)


@app.task
def unanswered():
    raise TaskPluginTriggerError("nobody answers")
""",
)


def usage(id: str, client: str, *checks: str) -> Usage:
    return Usage(id, PLUGINS, "tests", id, client, checks)


@pytest.fixture(scope="module")
def workers(django_db_setup: None, django_db_blocker: object) -> Iterator[dict[str, object]]:
    from tests.qtasks_conformance.test_conformance import ProgramWorker

    running: dict[str, object] = {}
    yield running
    current = running.get("worker")
    if isinstance(current, ProgramWorker):
        current.stop()


@pytest.mark.parametrize(
    "case",
    [
        usage(
            "answered",
            "from sync_plugins_app import answered\ntask = answered.add_task(timeout=50)",
            'task.status == "success"',
            "task.returning == \"task_executor_run_task_trigger_error: answered {'answer': 1}\"",
        ),
        usage(
            "answered-async",
            "from sync_plugins_app import app\ntask = app.add_task('answered_async', timeout=50)",
            'task.status == "success"',
            "task.returning.endswith(\"answered_async {'answer': 2}\")",
        ),
        usage(
            "unanswered",
            "from sync_plugins_app import unanswered\ntask = unanswered.add_task(timeout=50)",
            'task.status == "error"',
            '"TaskPluginTriggerError: nobody answers" in task.traceback',
        ),
    ],
    ids=lambda case: case.id,
)
def test_plugin(case: Usage, workers: dict[str, object], transactional_db: None) -> None:
    results = run_client(case, program_worker(workers, case.program))
    assert results == dict.fromkeys(case.checks, True)
