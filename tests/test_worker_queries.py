"""What a worker asks of the database per task, counted in a real worker process.

The aim is at most two round trips per task in the steady state: one claim
and one result write. At light load each task arrives alone; a worker woken
by its broker claims it, and does not claim again when it ends (nothing
else arrived), so the next claim goes with the next task.

Only bounds that hold however the runs interleave are asserted here (the
machine may be busy). How far below them a worker stays at full load (claims
of many tasks, results written several to a statement) is a figure, printed
by benchmarks/worker_statements.py.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from django.db import connection

from django_qtasks import app
from django_qtasks.models import Task
from tests.conftest import run_worker, wait_status
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

#: Every side loop far apart, beyond a test's length even on a slow machine:
#: what remains is claims and results.
QUIET = {
    "POLL_INTERVAL": 3600,
    "CANCEL_POLL_INTERVAL": 3600,
    "HEARTBEAT_INTERVAL": 3600,
    "HEARTBEAT_TIMEOUT": 7200,
    "PROGRESS_INTERVAL": 3600,
    "OUTBOX_INTERVAL": 3600,
    "REDELIVER_AFTER": 7200,
}


def kind(sql: str) -> str:
    if '"attempts" = "attempts" + 1' in sql:
        return "claim"
    if sql.startswith("UPDATE") and '"returning"' in sql:
        return "result"
    return sql[:60]


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="counted on PostgreSQL, where a claim and a write are one statement each",
)
def test_one_claim_and_one_write_per_task_at_light_load(monkeypatch, start_worker, tmp_path):
    counts_file = tmp_path / "sql.json"
    monkeypatch.setenv("QTASKS_TEST_SETTINGS", json.dumps(QUIET))
    monkeypatch.setenv("QTASKS_TEST_SQL_COUNT", str(counts_file))
    worker = start_worker("--queues", "light", "--concurrency", "2")
    count = 20
    for number in range(count):
        record = wait_status(tasks.echo.add_task(number, queue="light"), timeout=10)
        assert record.status == "success"
        assert record.returning == number
    worker.signal()
    assert worker.wait() == 0

    statements = json.loads(counts_file.read_text())["qtasks-db"]
    by_kind: Counter[str] = Counter()
    for sql, times in statements.items():
        by_kind[kind(sql)] += times
    carried = sum(times for sql, times in statements.items() if sql.lstrip().startswith("WITH"))
    # One claim per task, plus the first one and one when the broker's
    # connection opens (each finds nothing, or the first task, whichever
    # comes first); one write per result, alone or carried by a claim sent
    # while it waited (on a busy machine, the next task's claim can be).
    assert by_kind["claim"] <= count + 2, by_kind
    assert by_kind["result"] + carried == count, (by_kind, carried)
    # What else the database thread did: starting, stopping, a heartbeat.
    assert sum(by_kind.values()) <= 2 * count + 6, by_kind


def burst_statements(monkeypatch, tmp_path, queue: str, *args: str) -> dict[str, int]:
    """Drain 300 quick tasks with a ``--burst`` worker; the SQL it sent, with counts."""
    counts_file = tmp_path / "sql.json"
    monkeypatch.setenv("QTASKS_TEST_SETTINGS", json.dumps(QUIET))
    monkeypatch.setenv("QTASKS_TEST_SQL_COUNT", str(counts_file))
    count = 300
    app.add_tasks((tasks.echo.s(number) for number in range(count)), queue=queue)

    result = run_worker("--queues", queue, "--concurrency", "2", "--burst", *args)
    assert result.returncode == 0, result.stderr
    done = Task.objects.filter(queue=queue, status="success")
    assert sorted(done.values_list("returning", flat=True)) == list(range(count))
    return json.loads(counts_file.read_text())["qtasks-db"]


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="counted on PostgreSQL, where a claim and a write are one statement each",
)
@pytest.mark.e2e
@pytest.mark.parametrize("prefetch", ["auto", "0"])
def test_at_full_load_at_most_one_claim_and_one_write_per_task(monkeypatch, tmp_path, prefetch):
    statements = burst_statements(monkeypatch, tmp_path, f"full-{prefetch}", "--prefetch", prefetch)
    claims = sum(times for sql, times in statements.items() if kind(sql) == "claim")
    alone = sum(times for sql, times in statements.items() if kind(sql) == "result")
    carried = sum(times for sql, times in statements.items() if sql.lstrip().startswith("WITH"))
    # However the runs interleave: a claim takes one task at least, plus the
    # first claim and the --burst worker's last, which may find nothing; a
    # result is written once, alone or carried by a claim. ("auto" claims
    # many tasks at once and results go several to a statement: fewer, by
    # how much depends on the machine; see benchmarks/worker_statements.py.)
    assert claims <= 300 + 2, claims
    assert alone + carried <= 300, (alone, carried)
    if prefetch == "0":
        # A claim takes no more than the free slots: two at most.
        assert claims >= 300 // 2, claims
