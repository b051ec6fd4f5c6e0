"""The task store, in this process: every change of a task row's state.

Each test runs with every strategy the database has: on PostgreSQL its fast
statements (``PostgresTaskStore``) and the generic ones (``TaskStore``, what
MySQL, MariaDB and SQLite use); elsewhere the generic ones. Both must leave
the same rows: the tests assert what the rows hold, and
``test_both_strategies_leave_the_same_rows`` compares them row by row.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import signals
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_qtasks.models import Task, TaskStatus, WorkerHeartbeat, task_store
from django_qtasks.store import INSERT_BATCH, PostgresTaskStore, TaskStore, still_mine

pytestmark = pytest.mark.django_db(transaction=True)

STRATEGIES = ["postgresql", "generic"] if connection.vendor == "postgresql" else ["generic"]
WORKER = "store-test:1"


@pytest.fixture(params=STRATEGIES)
def store(request: pytest.FixtureRequest) -> TaskStore:
    kind = PostgresTaskStore if request.param == "postgresql" else TaskStore
    return kind(Task, WorkerHeartbeat, Task.objects.db)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def new_tasks(store: TaskStore, queue: str, count: int, **fields: Any) -> list[Task]:
    """``count`` new tasks of ``queue``, numbered by their first argument, oldest first."""
    now = timezone.now()
    records = [
        Task(
            task_name="echo",
            queue=queue,
            args=[n],
            created_at=now + timedelta(milliseconds=n),
            **fields,
        )
        for n in range(count)
    ]
    store.insert(records)
    return records


def claim_whole(
    store: TaskStore, queues: list[str], count: int, worker_id: str = WORKER
) -> list[Task]:
    """``claim_due`` for ``count`` rows, again until one claim takes them all.

    On MySQL a claim skips the rows that another claim has locked for a
    moment (SKIP LOCKED), and the session's shared worker, idle on other
    queues, locks every waiting row its claim scans: a claim may come back
    short. What a short claim took goes back, and the claim is made again.
    """
    deadline = time.monotonic() + 60
    while True:
        claimed = store.claim_due(queues, count, worker_id)
        if len(claimed) >= count or time.monotonic() > deadline:
            return claimed
        store.hand_back([task.pk for task in claimed], worker_id)
        time.sleep(0.05)


def by_number(queue: str) -> dict[int, Task]:
    return {task.args[0]: task for task in Task.objects.filter(queue=queue)}


def test_the_default_store_is_the_fast_one_on_postgresql():
    expected = PostgresTaskStore if connection.vendor == "postgresql" else TaskStore
    assert type(task_store()) is expected
    assert task_store() is task_store(Task.objects.db)


# Insert ------------------------------------------------------------------------


def test_insert_writes_every_row_as_given_and_sends_the_save_signals(store):
    queue = unique("insert")
    sent: list[tuple[str, bool]] = []

    def pre(instance: Task, **kwargs: Any) -> None:
        sent.append(("pre", instance._state.adding))

    def post(instance: Task, created: bool, **kwargs: Any) -> None:
        sent.append(("post", created))

    signals.pre_save.connect(pre, sender=Task)
    signals.post_save.connect(post, sender=Task)
    try:
        records = new_tasks(store, queue, INSERT_BATCH + 3, kwargs={"k": 'quote " and \\'})
    finally:
        signals.pre_save.disconnect(pre, sender=Task)
        signals.post_save.disconnect(post, sender=Task)

    assert sent == [("pre", True)] * len(records) + [("post", True)] * len(records)
    rows = by_number(queue)
    assert sorted(rows) == list(range(len(records)))
    assert {(row.status, row.kwargs["k"]) for row in rows.values()} == {
        (TaskStatus.NEW, 'quote " and \\')
    }
    assert all(record._state.db == store.using and not record._state.adding for record in records)
    assert all(record.updated_at is not None for record in records)  # auto_now, as save() does


# Claims ------------------------------------------------------------------------


def test_claim_due_takes_the_best_due_rows_of_its_queues_once(store):
    queue, other = unique("due"), unique("other")
    later = timezone.now() + timedelta(hours=1)
    new_tasks(store, queue, 2, priority=5)  # 0, 1
    urgent = Task(task_name="echo", queue=queue, args=[2], priority=-1)
    not_due = Task(task_name="echo", queue=queue, args=[3], priority=-9, run_after=later)
    elsewhere = Task(task_name="echo", queue=other, args=[4], priority=-9)
    store.insert([urgent, not_due, elsewhere])

    first = claim_whole(store, [queue], 2)
    second = store.claim_due([queue], 2, "store-test:2")
    if not second:  # short on MySQL (see claim_whole): claim the one left
        second = claim_whole(store, [queue], 1, "store-test:2")
    third = store.claim_due([queue], 2, WORKER)

    assert [task.args[0] for task in first] == [2, 0]
    assert [task.args[0] for task in second] == [1]
    assert third == []
    for task in [*first, *second]:
        assert (task.status, task.attempts, task.finished_at) == (TaskStatus.PROCESS, 1, None)
        assert task.started_at is not None
        assert task.updated_at == task.started_at
    rows = by_number(queue)
    assert [(rows[n].status, rows[n].worker, rows[n].attempts) for n in (2, 0, 1)] == [
        (TaskStatus.PROCESS, WORKER, 1),
        (TaskStatus.PROCESS, WORKER, 1),
        (TaskStatus.PROCESS, "store-test:2", 1),
    ]
    assert rows[3].status == TaskStatus.NEW
    assert Task.objects.get(pk=elsewhere.pk).status == TaskStatus.NEW
    # Several queues at once.
    assert [task.args[0] for task in claim_whole(store, [queue, other], 1)] == [4]
    assert store.claim_due([queue, other], 5, WORKER) == []


def test_claim_by_id_takes_only_the_named_rows_that_wait_and_are_due(store):
    queue = unique("byid")
    later = timezone.now() + timedelta(hours=1)
    waiting, retrying, ended, cancelled = new_tasks(store, queue, 4)
    not_due = Task(task_name="echo", queue=queue, args=[4], run_after=later)
    store.insert([not_due])
    Task.objects.filter(pk=retrying.pk).update(status=TaskStatus.RETRY, attempts=1)
    Task.objects.filter(pk=ended.pk).update(status=TaskStatus.SUCCESS)
    Task.objects.filter(pk=cancelled.pk).update(status=TaskStatus.CANCEL)
    named = [task.pk for task in (waiting, retrying, ended, cancelled, not_due)]

    claimed = store.claim_by_id([*named, uuid.uuid4()], WORKER)

    assert {task.pk for task in claimed} == {waiting.pk, retrying.pk}
    assert {task.pk: task.attempts for task in claimed} == {waiting.pk: 1, retrying.pk: 2}
    assert store.claim_by_id(named, "store-test:2") == []
    rows = by_number(queue)
    assert [rows[n].status for n in range(5)] == [
        TaskStatus.PROCESS,
        TaskStatus.PROCESS,
        TaskStatus.SUCCESS,
        TaskStatus.CANCEL,
        TaskStatus.NEW,
    ]


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="on PostgreSQL, a claim carries the results written before it",
)
def test_a_claim_carries_the_write_of_results_in_its_own_statement():
    # What a worker does at full load when slots free up while its database
    # thread works: the next claim takes the results of the runs that ended.
    store = task_store()
    queue = unique("carry")
    ended = new_tasks(store, queue, 3)
    waiting = [Task(task_name="echo", queue=queue, args=[n]) for n in (3, 4)]
    store.insert(waiting)
    Task.objects.filter(pk__in=[task.pk for task in ended]).update(
        status=TaskStatus.PROCESS, worker="w-carry"
    )
    guard = {"status": TaskStatus.PROCESS, "worker": "w-carry"}
    results = [
        (task.pk, {"status": TaskStatus.SUCCESS, "returning": number * 10})
        for number, task in enumerate(ended)
    ]
    carried = store.update_statement(guard, results)
    assert carried is not None

    with CaptureQueriesContext(connection) as queries:
        claimed = store.claim_due([queue], 5, "w-carry", carried)

    assert len(queries.captured_queries) == 1, queries.captured_queries
    assert queries.captured_queries[0]["sql"].lstrip().startswith("WITH carried")
    assert sorted(carried.pks) == sorted(task.pk for task in ended)
    assert {task.pk for task in claimed} == {task.pk for task in waiting}
    rows = by_number(queue)
    assert [(rows[n].status, rows[n].returning) for n in range(3)] == [
        (TaskStatus.SUCCESS, number * 10) for number in range(3)
    ]
    assert [(rows[n].status, rows[n].worker) for n in (3, 4)] == [
        (TaskStatus.PROCESS, "w-carry")
    ] * 2


# Results -----------------------------------------------------------------------


def test_update_many_writes_only_the_rows_that_match_the_guard(store):
    queue = unique("batch")
    now = timezone.now()
    *mine, theirs = new_tasks(store, queue, 4)
    Task.objects.filter(queue=queue).update(status=TaskStatus.PROCESS, worker="w-mine")
    Task.objects.filter(pk=theirs.pk).update(worker="w-other")  # failed over meanwhile

    changes = [
        (task.pk, {"status": TaskStatus.SUCCESS, "returning": {"n": n}, "finished_at": now})
        for n, task in enumerate([*mine, theirs])
    ]
    # A row that ends in error changes other columns: a second statement.
    changes[2] = (mine[2].pk, {"status": TaskStatus.ERROR, "traceback": "KeyError: 'x'"})
    saved = store.update_many(still_mine("w-mine"), changes)

    assert saved == {task.pk for task in mine}
    rows = {task.pk: task for task in Task.objects.filter(queue=queue)}
    assert (rows[mine[0].pk].status, rows[mine[0].pk].returning) == ("success", {"n": 0})
    assert (rows[mine[1].pk].returning, rows[mine[1].pk].finished_at) == ({"n": 1}, now)
    assert (rows[mine[2].pk].status, rows[mine[2].pk].traceback) == ("error", "KeyError: 'x'")
    assert rows[mine[2].pk].returning is None
    assert (rows[theirs.pk].status, rows[theirs.pk].returning) == ("process", None)


@pytest.mark.parametrize("count", [5, 150])
def test_update_many_writes_rows_that_change_the_same_columns_together(store, count):
    # One UPDATE for them all (on PostgreSQL, from arrays), or two where
    # SQLite's 999 parameters run out.
    queue = unique("batch")
    now = timezone.now()
    rows = new_tasks(store, queue, count)
    Task.objects.filter(queue=queue).update(status=TaskStatus.PROCESS, worker="w-mine")
    changes = [
        (task.pk, {"status": TaskStatus.SUCCESS, "returning": n * 10, "finished_at": now})
        for n, task in enumerate(rows)
    ]
    with CaptureQueriesContext(connection) as queries:
        saved = store.update_many(still_mine("w-mine"), changes)

    assert saved == {task.pk for task in rows}
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    most = 1 if count < 100 or connection.vendor == "postgresql" else 2
    assert 1 <= len(updates) <= most, updates
    stored = {task.pk: task for task in Task.objects.filter(queue=queue)}
    assert [
        (stored[task.pk].status, stored[task.pk].returning, stored[task.pk].finished_at)
        for task in rows
    ] == [(TaskStatus.SUCCESS, n * 10, now) for n in range(count)]


def test_update_many_keeps_results_and_tracebacks_exactly_as_given(store):
    # On PostgreSQL each column goes as one array literal: quotes, braces,
    # commas, backslashes and NULLs must come back unchanged.
    queue = unique("batch")
    values = [
        'a "quoted" {brace}, back\\slash',
        None,
        [1, {"x": "y, z"}, None],
        "NULL",
        "ünïcode ✓ \t tab",
    ]
    rows = new_tasks(store, queue, len(values))
    Task.objects.filter(queue=queue).update(status=TaskStatus.PROCESS, worker="w-mine")
    changes = [
        (
            task.pk,
            {"status": TaskStatus.SUCCESS, "returning": value, "traceback": f"line 1\n{value}"},
        )
        for task, value in zip(rows, values, strict=True)
    ]
    saved = store.update_many(still_mine("w-mine"), changes)

    assert saved == {task.pk for task in rows}
    stored = {task.pk: task for task in Task.objects.filter(queue=queue)}
    for task, value in zip(rows, values, strict=True):
        assert (stored[task.pk].returning, stored[task.pk].traceback) == (value, f"line 1\n{value}")


# Outbox marks --------------------------------------------------------------------


def test_mark_published_marks_only_rows_still_in_the_state_they_were_sent_in(store):
    queue = unique("mark")
    sent = new_tasks(store, queue, 3)
    # Claimed and handed back since its message went out: a new state, unmarked.
    Task.objects.filter(pk=sent[1].pk).update(updated_at=timezone.now() + timedelta(seconds=1))
    Task.objects.filter(pk=sent[2].pk).update(status=TaskStatus.PROCESS)
    stamp = timezone.now()

    store.mark_published(sent, stamp)

    rows = by_number(queue)
    assert [rows[n].published_at for n in range(3)] == [stamp, None, None]


def test_back_to_outbox_and_redelivery_marks(store):
    queue = unique("outbox")
    old = timezone.now() - timedelta(minutes=5)
    records = new_tasks(store, queue, 4)
    Task.objects.filter(queue=queue).update(published_at=old)
    Task.objects.filter(pk=records[3].pk).update(status=TaskStatus.SUCCESS)

    stamped = store.mark_for_redelivery(
        [task.pk for task in records[:2]] + [records[3].pk], sent_before=timezone.now()
    )
    again = store.mark_for_redelivery([task.pk for task in records], sent_before=old)

    assert [task.args[0] for task in stamped] == [0, 1]
    assert again == []  # stamped since: another worker sends them
    assert {task.published_at for task in stamped} == {by_number(queue)[0].published_at}
    assert store.back_to_outbox(Task.objects.filter(pk=records[0].pk)) == 1
    assert store.back_to_outbox(Task.objects.filter(queue=queue)) == 2  # 1 and 2; 3 has ended
    rows = by_number(queue)
    assert [rows[n].published_at for n in range(3)] == [None, None, None]
    assert rows[3].published_at == old


# Hand-backs, take-overs, cancels --------------------------------------------------


def claimed_rows(store: TaskStore, queue: str, count: int, **fields: Any) -> list[Task]:
    new_tasks(store, queue, count, **fields)
    return claim_whole(store, [queue], count)


def test_hand_back_returns_claimed_rows_unattempted(store):
    queue = unique("back")
    first, second = claimed_rows(store, queue, 2)

    assert store.hand_back([first.pk, second.pk], "someone-else") == 0
    assert store.hand_back([first.pk], WORKER) == 1

    rows = by_number(queue)
    assert (rows[0].status, rows[0].worker, rows[0].attempts, rows[0].started_at) == (
        TaskStatus.NEW,
        "",
        0,
        None,
    )
    assert rows[1].status == TaskStatus.PROCESS


def test_a_fail_over_hand_back_or_take_over_leaves_a_live_workers_rows(store):
    queue = unique("alive")
    first, second = claimed_rows(store, queue, 2)
    WorkerHeartbeat.objects.create(  # fresh
        worker_id=WORKER, hostname="here", pid=1, concurrency=1, queues=[queue]
    )

    assert store.hand_back([first.pk], WORKER, unless_alive=True) == 0
    assert store.take_over(second, "gone", unless_alive=True) is False
    WorkerHeartbeat.objects.filter(worker_id=WORKER).update(
        last_heartbeat=timezone.now() - timedelta(hours=1)
    )
    assert store.hand_back([first.pk], WORKER, unless_alive=True) == 1
    assert store.take_over(second, "gone", unless_alive=True) is True
    rows = by_number(queue)
    assert [rows[n].status for n in (0, 1)] == [TaskStatus.NEW, TaskStatus.ERROR]


def test_take_over_retries_while_attempts_are_left_then_fails(store):
    queue = unique("take")
    retried, failed = claimed_rows(store, queue, 2, max_attempts=2)
    Task.objects.filter(pk=failed.pk).update(attempts=2)
    failed.refresh_from_db()

    assert store.take_over(retried, "Worker w died.", unless_alive=False)
    assert store.take_over(failed, "Worker w died.", unless_alive=False)
    assert not store.take_over(failed, "again", unless_alive=False)  # no longer running

    rows = by_number(queue)
    assert (rows[0].status, rows[0].traceback, rows[0].finished_at) == (
        TaskStatus.RETRY,
        "Worker w died.",
        None,
    )
    assert rows[0].run_after is not None
    assert rows[0].published_at is None
    assert (rows[1].status, rows[1].traceback) == (TaskStatus.ERROR, "Worker w died.")
    assert rows[1].finished_at is not None
    assert [entry["status"] for entry in rows[1].attempt_log] == [TaskStatus.ERROR]


def test_hand_back_interrupted_keeps_its_log_and_allows_one_more_attempt(store):
    queue = unique("interrupted")
    (record,) = claimed_rows(store, queue, 1)
    line = {"level": "INFO", "message": "half done"}

    assert store.hand_back_interrupted(record, "someone-else", [line], "stop") is False
    assert store.hand_back_interrupted(record, WORKER, [line], "Worker stopped.") is True

    row = Task.objects.get(pk=record.pk)
    assert (row.status, row.worker, row.max_attempts, row.logs) == (
        TaskStatus.NEW,
        "",
        2,
        [line],
    )
    assert [(e["status"], e["error"]) for e in row.attempt_log] == [
        ("interrupted", "Worker stopped.")
    ]


def test_cancel_ends_a_waiting_task_and_asks_a_running_one_to_stop(store):
    queue = unique("cancel")
    waiting, running, ended = new_tasks(store, queue, 3)
    store.claim_by_id([running.pk], WORKER)
    Task.objects.filter(pk=ended.pk).update(status=TaskStatus.SUCCESS)

    assert store.cancel(waiting.pk, "no longer needed", "alice") == "ended"
    assert store.cancel(running.pk, "stop it", "bob") == "requested"
    assert store.cancel(ended.pk, "too late", "carol") is None

    rows = by_number(queue)
    assert (rows[0].status, rows[0].cancel_reason, rows[0].canceled_by) == (
        TaskStatus.CANCEL,
        "no longer needed",
        "alice",
    )
    assert rows[0].finished_at is not None
    assert (rows[1].status, rows[1].cancel_reason, rows[1].canceled_by) == (
        TaskStatus.PROCESS,
        "stop it",
        "bob",
    )
    assert rows[1].cancel_requested_at is not None
    assert rows[1].finished_at is None
    assert (rows[2].status, rows[2].cancel_reason) == (TaskStatus.SUCCESS, "")


# The strategies side by side --------------------------------------------------------


def a_day_of_work(store: TaskStore) -> dict[int, tuple[Any, ...]]:
    """Every kind of change on one queue; the rows it leaves, by task number."""
    queue = unique("day")
    records = new_tasks(store, queue, 8, max_attempts=2)
    claimed = claim_whole(store, [queue], 3)
    store.mark_published(records[:6], timezone.now())  # those still waiting: 3, 4 and 5
    by_id = store.claim_by_id([records[5].pk, records[6].pk, records[0].pk], WORKER)
    store.update_many(
        still_mine(WORKER),
        [(claimed[0].pk, {"status": TaskStatus.SUCCESS, "returning": {"ok": [1, None]}})],
    )
    store.update(claimed[1].pk, still_mine(WORKER), {"logs": [{"message": "50%"}]})
    store.take_over(claimed[2], "Worker died.", unless_alive=False)
    store.hand_back([by_id[0].pk], WORKER)
    store.hand_back_interrupted(by_id[1], WORKER, [], "stopped")
    store.cancel(records[7].pk, "not needed", "tester")
    store.cancel(claimed[1].pk, "stop", "tester")
    store.back_to_outbox(Task.objects.filter(pk=records[3].pk))
    return {
        task.args[0]: (
            task.status,
            task.worker,
            task.attempts,
            task.max_attempts,
            task.returning,
            task.traceback,
            task.logs,
            task.cancel_reason,
            [(entry["status"], entry["error"]) for entry in task.attempt_log],
            task.published_at is None,
            task.started_at is None,
            task.finished_at is None,
        )
        for task in Task.objects.filter(queue=queue)
    }


def test_both_strategies_leave_the_same_rows():
    results: dict[str, dict[int, tuple[Any, ...]]] = {}
    kinds: dict[str, Callable[..., TaskStore]] = {
        "generic": TaskStore,
        "postgresql": PostgresTaskStore,
    }
    for name in STRATEGIES:
        results[name] = a_day_of_work(kinds[name](Task, WorkerHeartbeat, Task.objects.db))
    expected = {
        0: ("success", WORKER, 1, 2, {"ok": [1, None]}, "", [], "", [], True, False, True),
        1: ("process", WORKER, 1, 2, None, "", [{"message": "50%"}], "stop", [], True, False,
            True),
        2: ("retry", WORKER, 1, 2, None, "Worker died.", [], "", [("error", "Worker died.")],
            True, False, True),
        3: ("new", "", 0, 2, None, "", [], "", [], True, True, True),
        4: ("new", "", 0, 2, None, "", [], "", [], False, True, True),
        5: ("new", "", 0, 2, None, "", [], "", [], True, True, True),
        6: ("new", "", 1, 3, None, "", [], "", [("interrupted", "stopped")], True, True, True),
        7: ("cancel", "", 0, 2, None, "", [], "not needed", [], True, True, False),
    }  # fmt: skip
    for name in STRATEGIES:
        assert results[name] == expected, name


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a setting of PostgreSQL's")
def test_relax_commits_turns_synchronous_commit_off_for_the_connection_only_once():
    store = task_store()
    try:
        with CaptureQueriesContext(connection) as queries:
            store.relax_commits()
            store.relax_commits()
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone() == ("off",)
        assert [q["sql"] for q in queries.captured_queries] == ["SET synchronous_commit TO off"]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO DEFAULT")
        del connection.qtasks_relaxed
