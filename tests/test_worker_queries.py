"""What a worker asks of the database per task, counted in a real worker process.

The aim is at most two round trips per task in the steady state: one claim
and one result write. At light load each task arrives alone; a worker woken
by its broker claims it, and does not claim again when it ends (nothing
else arrived), so the next claim goes with the next task.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from django.db import connection

from django_qtasks import app
from django_qtasks.models import Task
from tests.conftest import run_worker, wait_status
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

#: Every side loop far apart: what remains is claims and results.
QUIET = {
    "POLL_INTERVAL": 30,
    "CANCEL_POLL_INTERVAL": 30,
    "HEARTBEAT_INTERVAL": 30,
    "HEARTBEAT_TIMEOUT": 120,
    "PROGRESS_INTERVAL": 30,
    "OUTBOX_INTERVAL": 30,
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
    time.sleep(0.5)  # idle: its first claim found nothing
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
    # One claim per task, plus the first one and one when the broker's
    # connection opens (both find nothing); one write per result.
    assert by_kind["claim"] <= count + 2, by_kind
    assert by_kind["result"] == count, by_kind
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
    reason="on PostgreSQL, a claim carries the results written before it",
)
def test_at_full_load_a_claim_carries_the_results_of_the_tasks_that_ended(monkeypatch, tmp_path):
    statements = burst_statements(monkeypatch, tmp_path, "full")
    # Slots free up while the database thread works: the next claim takes
    # the results of the runs that ended meanwhile, in the same statement.
    carrying = [sql for sql in statements if sql.lstrip().startswith("WITH carried")]
    assert carrying, list(statements)


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="counted on PostgreSQL, where a claim is one statement",
)
# "auto" sent about 20 claims here (75 with a cap of 4 a slot instead of 16).
# With 0, one claim per task, plus the first and the --burst worker's last,
# which find nothing (as at light load above).
@pytest.mark.parametrize(("prefetch", "most_claims"), [("auto", 40), ("0", 302)])
def test_short_tasks_are_claimed_in_batches_ahead_of_the_free_slots(
    monkeypatch, tmp_path, prefetch, most_claims
):
    statements = burst_statements(
        monkeypatch, tmp_path, f"batches-{prefetch}", "--prefetch", prefetch
    )
    claims = sum(times for sql, times in statements.items() if kind(sql) == "claim")
    # "auto" learns from the first runs that tasks take milliseconds, and
    # claims up to 16 per slot ahead; 0 claims for the free slots only.
    assert claims <= most_claims, claims
    if prefetch == "0":
        assert claims >= 300 // 2, claims


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="counted on PostgreSQL, where a result write is one statement",
)
def test_at_full_load_results_are_written_several_to_a_statement(monkeypatch, tmp_path):
    statements = burst_statements(monkeypatch, tmp_path, "grouped")
    alone = sum(times for sql, times in statements.items() if kind(sql) == "result")
    carried = sum(times for sql, times in statements.items() if sql.lstrip().startswith("WITH"))
    # A result waits WRITE_WAIT for the runs under way: 50 to 56 writes here
    # (alone or carried by a claim), against 108 to 116 without the wait.
    assert alone + carried <= 300 // 4, (alone, carried)
