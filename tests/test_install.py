"""An installation that lacks a library, and publishes that fail after the commit.

``pip install 'django-qtasks[kombu]'`` without the extra of the Redis broker
lacks what kombu's Redis transport imports (``packaging``): the check E006
says so before anything is queued, and a publish that fails, for that or any
other reason, leaves the committed task to the outbox instead of raising.

The missing library is simulated for real: in this process by taking it out of
``sys.modules``, in a worker process by a ``packaging`` module that fails to
import, first on its ``PYTHONPATH``.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import kombu.transport
import pytest
from django.conf import settings
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection, connections, transaction
from django.test import override_settings

import django_qtasks.brokers
from django_qtasks import app
from django_qtasks.checks import check_settings
from django_qtasks.models import Task, TaskStatus
from tests.conftest import ROOT, WorkerProcess, wait_status, wait_until, worker_env
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

REDIS_URL = "redis://127.0.0.1:6379/0"
EXTRA = "pip install 'django-qtasks[kombu,redis]'"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def without_packaging(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as if ``packaging`` were not installed, for the imports to come.

    kombu's Redis transport (and ours on it) are forgotten, so that the next
    use imports them again, as a process that never imported them would.
    """
    monkeypatch.setitem(sys.modules, "packaging", None)
    monkeypatch.setitem(sys.modules, "packaging.version", None)
    monkeypatch.delitem(sys.modules, "kombu.transport.redis", raising=False)
    monkeypatch.delitem(sys.modules, "django_qtasks.brokers.redis_transport", raising=False)
    monkeypatch.delattr(kombu.transport, "redis", raising=False)
    monkeypatch.delattr(django_qtasks.brokers, "redis_transport", raising=False)


@pytest.fixture
def redis_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The Redis broker, here and in the worker processes started afterwards."""
    monkeypatch.setenv("QTASKS_TEST_SETTINGS", json.dumps({"BROKER_URL": REDIS_URL}))
    with override_settings(QTASKS={**settings.QTASKS, "BROKER_URL": REDIS_URL}):
        yield


# --- The extras ------------------------------------------------------------------------------


def extra_requirements(distribution: str, extra: str) -> set[str]:
    """The names of what ``pip install 'distribution[extra]'`` adds."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    return {
        canonicalize_name(Requirement(text).name)
        for text in importlib.metadata.requires(distribution) or []
        if f'extra == "{extra}"' in text
    }


@pytest.mark.django_db(transaction=False)
def test_the_redis_extra_installs_what_kombus_redis_transport_needs():
    # kombu lists them in an extra of its own, which ours does not pull in.
    needed = extra_requirements("kombu", "redis")
    assert "packaging" in needed
    assert needed <= extra_requirements("django-qtasks", "redis")


# --- E006: the broker's transport cannot be loaded ----------------------------------------


@pytest.mark.parametrize("url", [REDIS_URL, "rediss://127.0.0.1:6380/0"])
def test_a_redis_url_without_its_libraries_is_an_error_naming_the_extra(without_packaging, url):
    with override_settings(QTASKS={"BROKER_URL": url}):
        errors = check_settings()
    assert [error.id for error in errors] == ["django_qtasks.E006"]
    scheme = url.split(":")[0]
    assert errors[0].level == checks.ERROR
    assert errors[0].msg == (
        f"QTASKS['BROKER_URL'] is a {scheme}:// URL, and kombu's {scheme} transport cannot be "
        "loaded (ModuleNotFoundError: import of packaging.version halted; None in "
        "sys.modules): no task could be published."
    )
    assert errors[0].hint == f"{EXTRA}, in the environment of the project and of its workers."


@pytest.mark.parametrize(
    "url", [REDIS_URL, "rediss://127.0.0.1:6380/0", "amqp://guest:guest@127.0.0.1:5672//"]
)
def test_installed_transports_pass_without_connecting(url):
    # Port 6380 has no server: the check imports, it does not connect. (A prefix:
    # else W002, a shared broker without one.)
    with override_settings(QTASKS={"BROKER_URL": url, "QUEUE_PREFIX": "project"}):
        assert check_settings() == []


@pytest.mark.django_db  # Django's own model checks (JSONField) ask the database
def test_manage_py_check_fails(without_packaging):
    with (
        override_settings(QTASKS={"BROKER_URL": REDIS_URL}),
        pytest.raises(SystemCheckError) as raised,
    ):
        call_command("check")
    assert "?: (django_qtasks.E006) QTASKS['BROKER_URL'] is a redis:// URL" in str(raised.value)
    assert f"HINT: {EXTRA}" in str(raised.value)


@pytest.mark.e2e
def test_the_worker_refuses_to_start(redis_broker, tmp_path: Path):
    """It used to start, and log "Broker ... is unreachable" for ever."""
    fake = tmp_path / "packaging"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'packaging'\", name='packaging')\n"
    )
    env = worker_env()
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    finished = subprocess.run(
        [sys.executable, "-m", "django", "qtasks_worker", "--queues", unique("refused")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 1, finished.stdout + finished.stderr
    assert (
        "?: (django_qtasks.E006) QTASKS['BROKER_URL'] is a redis:// URL, and kombu's redis "
        "transport cannot be loaded (ModuleNotFoundError: No module named 'packaging')"
    ) in finished.stderr
    assert f"HINT: {EXTRA}" in finished.stderr
    assert "unreachable" not in finished.stdout + finished.stderr


# --- A publish that fails after the commit ------------------------------------------------


def test_a_task_added_without_the_transport_waits_in_the_outbox(
    redis_broker, without_packaging, start_worker: Callable[..., WorkerProcess], caplog
):
    queue = unique("outbox")
    with caplog.at_level("WARNING", logger="django_qtasks.broker"):
        record = tasks.echo.add_task("kept", queue=queue)
        batch = app.add_tasks([tasks.echo.s(1), tasks.echo.s(2)], queue=queue)
    assert f"Could not publish task {record.uuid} to {REDIS_URL}" in caplog.text
    assert f"Could not publish task {batch[0].uuid} and 1 more to {REDIS_URL}" in caplog.text
    assert "No module named" in caplog.text or "halted" in caplog.text
    rows = Task.objects.filter(queue=queue)
    assert rows.count() == 3
    assert set(rows.values_list("published_at", flat=True)) == {None}
    # A worker that has the library publishes them from the outbox, and runs them.
    start_worker("--queues", queue)
    assert wait_status(record).status == TaskStatus.SUCCESS
    assert record.returning == "kept"
    assert [wait_status(row).returning for row in batch] == [1, 2]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="ends a PostgreSQL session")
def test_a_connection_lost_after_the_commit_neither_raises_nor_loses_the_task(
    redis_broker, start_worker: Callable[..., WorkerProcess], caplog
):
    """The message is sent, then its row cannot be marked published: the commit is done,
    so ``add_task`` returns, and the other ``on_commit`` callbacks run."""
    queue = unique("lost-link")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]

    def end_session() -> None:
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])

                def gone() -> bool:
                    cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
                    return cursor.fetchone() is None

                wait_until(gone, message=f"session {pid} to end")
        finally:
            other.close()

    later: list[str] = []
    with caplog.at_level("WARNING", logger="django_qtasks.broker"), transaction.atomic():
        transaction.on_commit(end_session)
        record = tasks.echo.add_task("survived", queue=queue)
        transaction.on_commit(lambda: later.append("ran"))
    assert later == ["ran"]
    assert f"Could not publish task {record.uuid} to {REDIS_URL}" in caplog.text
    assert "it is saved, and waits in the outbox" in caplog.text
    connection.close()  # the ended session
    assert Task.objects.get(pk=record.pk).status == TaskStatus.NEW
    start_worker("--queues", queue)
    assert wait_status(record).status == TaskStatus.SUCCESS
    assert record.returning == "survived"
    assert record.attempts == 1
