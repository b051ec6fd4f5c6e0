"""Retention: ``manage.py qtasks_purge``, ``QTASKS["RETENTION"]`` applied by the beat,
and the batches both delete in (``django_qtasks.retention``), on the real database."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connections
from django.test import override_settings
from django.utils import timezone

from django_qtasks.beat import Beat
from django_qtasks.checks import check_settings
from django_qtasks.models import Schedule, Task, TaskStatus, WorkerHeartbeat, task_db
from django_qtasks.retention import (
    Retention,
    Selection,
    delete_batch,
    purge,
    retention_selections,
)
from tests.conftest import ROOT, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

DAY = 86400


def ended(status: str = "success", days: float = 40, name: str = "echo", **fields: Any) -> Task:
    """A task that ended ``days`` ago in ``status``."""
    at = timezone.now() - timedelta(days=days)
    return Task.objects.create(
        task_name=name,
        status=status,
        created_at=at - timedelta(seconds=1),
        started_at=at - timedelta(seconds=1),
        finished_at=at,
        **fields,
    )


#: The queue of the tasks that have not ended: no worker serves it (the session's
#: shared worker of tests/conftest.py serves "default", and would run them).
UNSERVED = "purge-unserved"


def waiting(status: str = "new", name: str = "echo", **fields: Any) -> Task:
    """A task that has not ended, created long ago, on a queue no worker serves."""
    return Task.objects.create(
        task_name=name,
        status=status,
        queue=UNSERVED,
        created_at=timezone.now() - timedelta(days=400),
        **fields,
    )


def left(*tasks: Task) -> list[bool]:
    """Whether each of ``tasks`` still has its row."""
    present = set(Task.objects.filter(pk__in=[t.pk for t in tasks]).values_list("pk", flat=True))
    return [task.pk in present for task in tasks]


def purge_command(*args: str) -> str:
    out = io.StringIO()
    call_command("qtasks_purge", *args, stdout=out)
    return out.getvalue()


# qtasks_purge: what it deletes ----------------------------------------------------------


def test_older_than_deletes_by_the_time_tasks_ended():
    old, recent = ended(days=40), ended(days=10)
    hours = ended(days=13 / 24)  # 13 hours ago
    output = purge_command("--older-than", "30d")
    assert left(old, recent, hours) == [False, True, True]
    assert output == "Deleted 1 task (success 1):\n  success  echo  1\n"
    purge_command("--older-than", "12h")
    assert left(recent, hours) == [False, False]


@pytest.mark.parametrize(
    ("value", "kept_days"),
    [("30d", [11]), ("2w", [11]), ("240h", []), ("14400m", []), ("3000000", [11])],
)
def test_durations_in_days_weeks_hours_minutes_or_seconds(value, kept_days):
    tasks = {days: ended(days=days) for days in (11, 40)}
    purge_command("--older-than", value)
    assert [days for days, task in tasks.items() if left(task)[0]] == kept_days


def test_status_deletes_those_statuses_only():
    success, error, cancel = ended("success"), ended("error"), ended("cancel")
    output = purge_command("--status", "success,cancel")
    assert left(success, error, cancel) == [False, True, False]
    assert output.startswith("Deleted 2 tasks (success 1, cancel 1):")
    purge_command("--status", "error", "--older-than", "50d")
    assert left(error) == [True]


def test_task_deletes_those_task_names_only_repeated_or_comma_separated():
    a, b, c, d = (ended(name=name) for name in ("a", "b", "c", "d"))
    output = purge_command("--task", "a", "--task", "b,c")
    assert left(a, b, c, d) == [False, False, False, True]
    assert output == (
        "Deleted 3 tasks (success 3):\n  success  a  1\n  success  b  1\n  success  c  1\n"
    )


def test_every_filter_together():
    kept = [ended("error", name="a"), ended(name="b"), ended(name="a", days=1)]
    gone = ended(name="a")
    purge_command("--status", "success", "--task", "a", "--older-than", "7d")
    assert left(gone, *kept) == [False, True, True, True]


def test_dry_run_deletes_nothing_and_prints_the_counts_by_status_and_name():
    tasks = [
        ended("success", name="echo"),
        ended("success", name="echo"),
        ended("success", name="add"),
        ended("cancel", name="slow"),
        ended("error", name="add", days=1),
    ]
    output = purge_command("--older-than", "30d", "--dry-run")
    assert all(left(*tasks))
    assert output == (
        "Would delete 4 tasks (success 3, cancel 1):\n"
        "  success  add   1\n"
        "  success  echo  2\n"
        "  cancel   slow  1\n"
    )
    assert purge_command("--older-than", "60d", "--dry-run") == "Would delete no task.\n"


def test_tasks_that_have_not_ended_are_never_deleted():
    # Rows as old as can be, with an end time written on them by hand.
    long_ago = timezone.now() - timedelta(days=400)
    # The running one's worker stays alive (its heartbeat is ahead of the clock), so
    # that no worker's fail-over takes its row meanwhile.
    WorkerHeartbeat.objects.create(
        worker_id="purge-test",
        hostname="h",
        pid=1,
        concurrency=1,
        last_heartbeat=timezone.now() + timedelta(days=1),
    )
    alive = [
        waiting("new"),
        waiting("retry", finished_at=long_ago),
        waiting("process", worker="purge-test", started_at=long_ago, finished_at=long_ago),
    ]
    gone = ended()
    assert purge_command("--older-than", "0", "--dry-run").startswith("Would delete 1 task ")
    purge_command("--older-than", "0")
    assert left(gone, *alive) == [False, True, True, True]


def test_tasks_that_ended_without_an_end_time_are_aged_by_their_creation():
    # Rows written by hand (every way of ending a task writes finished_at).
    old = waiting("success")
    young = Task.objects.create(task_name="echo", status="cancel")
    purge_command("--older-than", "30d")
    assert left(old, young) == [False, True]
    purge_command("--older-than", "0")
    assert left(young) == [False]


# Links between rows ---------------------------------------------------------------------


def test_links_to_deleted_tasks_are_set_to_null():
    original = ended("error", name="old")
    retried = ended("success", name="kept", days=1, retry_of=original)
    step_one = ended("success", name="old")
    step_two = ended("success", name="kept", days=1, chain_previous=step_one)
    # A retry of a chain's step: both its links point to deleted rows.
    both = ended("success", name="kept", days=1, retry_of=step_one, chain_previous=original)
    schedule = Schedule.objects.create(
        name="nightly", task_name="echo", interval=timedelta(days=1), last_task=original
    )
    purge_command("--task", "old")
    assert left(original, step_one, retried, step_two, both) == [False, False, True, True, True]
    for task in (retried, step_two, both, schedule):
        task.refresh_from_db()
    assert retried.retry_of_id is None
    assert step_two.chain_previous_id is None
    assert (both.retry_of_id, both.chain_previous_id) == (None, None)
    assert schedule.last_task_id is None


def test_links_within_a_batch_are_deleted_together():
    first = ended(days=50)
    second = ended(days=45, chain_previous=first)
    third = ended(days=41, retry_of=second, chain_previous=first)
    purge_command("--older-than", "30d", "--batch-size", "1")
    purge_command("--older-than", "30d")
    assert left(first, second, third) == [False, False, False]


@pytest.mark.parametrize("status", ["new", "process", "retry"])
@pytest.mark.parametrize("link", ["chain_previous", "retry_of"])
def test_a_task_that_one_not_ended_points_to_is_kept(status, link):
    """A chain's next step that has not ended keeps its previous step (the chain's
    waiters follow that link); a retry that has not ended keeps its original."""
    pointed_at, other = ended(), ended()
    following = waiting(status, **{link: pointed_at})
    output = purge_command("--older-than", "30d", "--dry-run")
    assert output.startswith("Would delete 1 task ")
    assert output.endswith(
        "Kept: 1 more that match, which a task not yet ended points to "
        "(a chain's next step or a retry).\n"
    )
    purge_command("--older-than", "30d")
    assert left(pointed_at, other, following) == [True, False, True]
    following.refresh_from_db()
    assert getattr(following, f"{link}_id") == pointed_at.pk
    # Once the step (or the retry) has ended, the next pass deletes the row it pointed to.
    Task.objects.filter(pk=following.pk).update(status="success", finished_at=timezone.now())
    purge_command("--older-than", "30d")
    assert left(pointed_at, following) == [False, True]
    following.refresh_from_db()
    assert getattr(following, f"{link}_id") is None


def test_a_link_made_after_the_selection_refuses_the_delete():
    """The foreign key is the last guard: a row selected before a retry of it was
    written is not deleted from under that retry (the purge selects the batch again)."""
    original = ended()
    retry = waiting("new", retry_of=original)
    # A batch selected before the retry existed: these rows, unchecked.
    stale = Task.objects.filter(pk=original.pk)
    with pytest.raises(IntegrityError):
        delete_batch(stale, ("pk",), None, 10, task_db())
    assert left(original, retry) == [True, True]
    retry.refresh_from_db()
    assert retry.retry_of_id == original.pk


# Batches -----------------------------------------------------------------------------


def test_batches_go_through_rows_that_ended_at_the_same_moment():
    at = timezone.now() - timedelta(days=40)
    tasks = [
        Task.objects.create(task_name="echo", status="success", created_at=at, finished_at=at)
        for _ in range(7)
    ]
    purged = purge(Selection(older_than=timedelta(days=30)), batch_size=2)
    assert purged.total == 7
    assert purged.batches == 4
    assert purged.complete
    assert not any(left(*tasks))


def test_batches_pass_over_kept_rows():
    tasks = [ended(days=40 + n) for n in range(6)]
    nexts = [waiting("new", chain_previous=tasks[n]) for n in (1, 2, 4)]
    purged = purge(Selection(older_than=timedelta(days=30)), batch_size=2)
    assert purged.deleted == Counter({("success", "echo"): 3})
    assert left(*tasks) == [False, True, True, False, True, False]
    assert all(left(*nexts))


def test_a_purge_stops_between_batches_when_asked():
    tasks = [ended(days=40 + n) for n in range(5)]
    asked: list[int] = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 2

    purged = purge(Selection(), batch_size=2, stop=stop)
    assert purged.total == 4
    assert not purged.complete
    assert left(*tasks).count(True) == 1


def test_two_purges_at_once_share_the_work():
    """Two purges (two beats, or a beat and qtasks_purge) delete each row once between
    them. A row that one holds is passed over by the other, so a later pass may
    find some left: none is deleted twice, and none is left behind for ever."""
    tasks: list[Task] = []
    for n in range(120):
        # Chains and retries across batches, pointing to rows that ended before
        # (as they do): each purge sets to NULL links held by rows the other may hold.
        links = {"chain_previous": tasks[n // 2]} if n % 3 == 1 else {}
        if n % 5 == 2:
            links["retry_of"] = tasks[n - 1]
        tasks.append(ended(days=40 - n / 1000, **links))
    results: list[Any] = []

    def run() -> None:
        try:
            results.append(purge(Selection(), batch_size=7))
        except Exception as exc:  # pragma: no cover (reported by the assertion)
            results.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(not isinstance(result, Exception) for result in results), results
    results.append(purge(Selection(), batch_size=7))
    assert sum(result.total for result in results) == 120
    assert not any(left(*tasks))


# Bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--status", "process"],
            "argument --status: 'process': a task in 'process' has not ended, and is never "
            "deleted; the statuses a task ends in are success, error, cancel",
        ),
        (
            ["--status", "success,new"],
            "argument --status: 'new': a task in 'new' has not ended",
        ),
        (["--status", "retry"], "argument --status: 'retry': a task in 'retry' has not ended"),
        (
            ["--status", "done"],
            "argument --status: 'done' is no status; the statuses a task ends in are "
            "success, error, cancel",
        ),
        (["--status", ","], "argument --status: must name statuses among success, error, cancel"),
        (
            ["--older-than", "30 days"],
            "argument --older-than: must be a duration such as 30d, 12h, 90m, 45s or 3600 "
            "(seconds), not '30 days'",
        ),
        (["--older-than=-1d"], "argument --older-than: must be a duration"),
        (["--older-than", "1y"], "argument --older-than: must be a duration"),
        (["--older-than", "99999999999d"], "argument --older-than: must be a duration"),
        (["--task", " "], "argument --task: must name a task"),
        (
            ["--older-than", "1d", "--batch-size", "0"],
            "argument --batch-size: must be a whole number of at least 1, not '0'",
        ),
        (
            [],
            "Say which tasks to delete: --older-than (e.g. 30d), --status or --task. "
            "--older-than 0 deletes every task that ended.",
        ),
        (["--dry-run"], "Say which tasks to delete"),
    ],
)
def test_bad_arguments_are_command_errors(args, message):
    task = ended()
    with pytest.raises(CommandError) as raised:
        call_command("qtasks_purge", *args, stdout=io.StringIO())
    assert message in str(raised.value)
    assert left(task) == [True]


def test_the_command_exits_non_zero_on_bad_input():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "testproject")]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "django", "qtasks_purge", "--status", "process"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "'process': a task in 'process' has not ended" in done.stderr


def test_a_selection_of_statuses_that_have_not_ended_is_refused():
    with pytest.raises(ValueError, match="Only tasks that ended are deleted"):
        Selection(statuses=("success", "process"))


# RETENTION, applied by the beat ---------------------------------------------------------


def retention(value: Any, **more: Any) -> Any:
    from django.conf import settings

    return override_settings(QTASKS={**settings.QTASKS, "RETENTION": value, **more})


def test_retention_keeps_each_status_its_own_time():
    kept = [ended("success", days=5), ended("error", days=20), ended("cancel", days=400)]
    gone = [ended("success", days=8), ended("error", days=31)]
    setting = {"success": 7 * DAY, "error": timedelta(days=30), "cancel": None}
    with retention(setting):
        purged = Retention().run_pass()
    assert purged.deleted == Counter({("success", "echo"): 1, ("error", "echo"): 1})
    assert left(*gone, *kept) == [False, False, True, True, True]


def test_retention_keeps_everything_by_default():
    tasks = [ended(status, days=4000) for status in ("success", "error", "cancel")]
    assert Retention().run_pass().total == 0
    with retention({}):
        assert not Retention().enabled()
        assert Retention().run_pass().total == 0
    assert all(left(*tasks))


def test_retention_never_deletes_what_has_not_ended_or_what_it_points_to():
    pointed_at = ended("success", days=30)
    alive = [waiting(status, chain_previous=pointed_at) for status in ("new", "process", "retry")]
    with retention({"success": 0, "error": 0, "cancel": 0}):
        assert Retention().run_pass().total == 0
    assert all(left(pointed_at, *alive))


def test_retention_selections_group_statuses_kept_as_long():
    selections = retention_selections({"cancel": DAY, "success": DAY, "error": 2 * DAY})
    assert selections == [
        Selection(statuses=("success", "cancel"), older_than=timedelta(days=1)),
        Selection(statuses=("error",), older_than=timedelta(days=2)),
    ]


def test_a_beat_without_retention_starts_no_thread():
    beat = Beat()
    beat.start()
    assert beat.retention.thread is None
    beat.close()


def test_a_beat_runs_retention_passes_on_a_thread_and_stops_them():
    gone, kept = ended(days=8), ended(days=1)
    with retention({"success": 7 * DAY}, RETENTION_INTERVAL=3600):
        beat = Beat()
        beat.start()
        thread = beat.retention.thread
        assert thread is not None
        assert thread.name == "qtasks-retention"
        wait_until(lambda: left(gone) == [False], timeout=30, message="the first pass")
        beat.close()
        assert not thread.is_alive()
    assert left(kept) == [True]


@pytest.mark.e2e
def test_a_beat_process_applies_retention(start_worker):
    gone = [ended("success", days=8), ended("cancel", days=2)]
    kept = [ended("success", days=1), ended("error", days=400), waiting("new")]
    extra = json.loads(os.environ.get("QTASKS_TEST_SETTINGS", "{}"))
    setting = {"success": 7 * DAY, "cancel": DAY, "error": None}
    env = {
        "QTASKS_TEST_SETTINGS": json.dumps(
            {**extra, "RETENTION": setting, "RETENTION_INTERVAL": 0.2}
        )
    }
    beat = start_worker(command="qtasks_beat", ready="Beat started", env=env)
    wait_until(lambda: not any(left(*gone)), timeout=30, message="the pass")
    later = ended("cancel", days=3)
    wait_until(lambda: left(later) == [False], timeout=30, message="a later pass")
    assert all(left(*kept))
    beat.wait_for_log("Retention: deleted ")
    beat.signal()
    assert beat.wait() == 0
    assert "Beat stopped" in beat.log


@pytest.mark.e2e
def test_a_worker_with_beat_applies_retention_and_stops(start_worker):
    gone = ended("error", days=2)
    extra = json.loads(os.environ.get("QTASKS_TEST_SETTINGS", "{}"))
    env = {"QTASKS_TEST_SETTINGS": json.dumps({**extra, "RETENTION": {"error": DAY}})}
    worker = start_worker("--beat", env=env)
    wait_until(lambda: left(gone) == [False], timeout=30, message="the pass")
    worker.signal()
    assert worker.wait() == 0


# The setting's checks (E001) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"success": 0},
        {"success": 7 * DAY, "error": 30.5 * DAY, "cancel": None},
        {"cancel": timedelta(days=3)},
    ],
)
def test_valid_retention_settings_pass(value):
    with override_settings(QTASKS={"RETENTION": value, "RETENTION_INTERVAL": 60}):
        assert check_settings() == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            [("success", 1)],
            "QTASKS['RETENTION'] must be dict (how long the beat keeps tasks that ended, by "
            "status: {'success': seconds, 'error': ..., 'cancel': ...}; None or missing: for "
            "ever), not list [('success', 1)].",
        ),
        (
            {"process": 60},
            "QTASKS['RETENTION']['process']: a task in 'process' has not ended, and is never "
            "deleted; its keys are the statuses a task ends in, 'success', 'error', 'cancel'.",
        ),
        (
            {"sucess": 60},
            "QTASKS['RETENTION']['sucess']: 'sucess' is no status (did you mean 'success'?); "
            "its keys are the statuses a task ends in, 'success', 'error', 'cancel'.",
        ),
        (
            {"SUCCESS": 60},
            "QTASKS['RETENTION']['SUCCESS']: 'SUCCESS' is no status; its keys are the "
            "statuses a task ends in, 'success', 'error', 'cancel'.",
        ),
        (
            {"error": "30d"},
            "QTASKS['RETENTION']['error'] must be the seconds a task that ended in 'error' is "
            "kept (int or float, 0 or more), a timedelta, or None (kept for ever), "
            "not str '30d'.",
        ),
        (
            {"error": -1},
            "QTASKS['RETENTION']['error'] must be the seconds a task that ended in 'error' is "
            "kept (int or float, 0 or more), a timedelta, or None (kept for ever), not int -1.",
        ),
        (
            {"cancel": True},
            "QTASKS['RETENTION']['cancel'] must be the seconds a task that ended in 'cancel' "
            "is kept (int or float, 0 or more), a timedelta, or None (kept for ever), "
            "not bool True.",
        ),
        (
            {"cancel": 1e12},
            "QTASKS['RETENTION']['cancel'] is more than 100 years (1000000000000.0); None "
            "keeps tasks that ended in 'cancel' for ever.",
        ),
        (
            {"success": 1},
            None,  # with RETENTION_INTERVAL 0, below
        ),
    ],
)
def test_bad_retention_settings_are_e001(value, message):
    more = {"RETENTION_INTERVAL": 0} if message is None else {}
    with override_settings(QTASKS={"RETENTION": value, **more}):
        errors = check_settings()
    assert [error.id for error in errors] == ["django_qtasks.E001"]
    assert errors[0].level == checks.ERROR
    if message is None:
        message = (
            "QTASKS['RETENTION_INTERVAL'] must be int or float, more than 0 (seconds between "
            "a beat's passes deleting what RETENTION keeps no longer), not 0."
        )
    assert errors[0].msg == message


def test_every_bad_retention_entry_is_reported():
    value = {"success": "7d", "new": 1, "error": -5, "cancel": None}
    with override_settings(QTASKS={"RETENTION": value}):
        errors = check_settings()
    assert [error.msg.split(" ")[0].rstrip(":") for error in errors] == [
        "QTASKS['RETENTION']['success']",
        "QTASKS['RETENTION']['new']",
        "QTASKS['RETENTION']['error']",
    ]


def test_the_purge_command_refuses_a_broken_setting():
    from django.core.exceptions import ImproperlyConfigured

    with (
        override_settings(QTASKS={"RETENTION": {"process": 1}}),
        pytest.raises(ImproperlyConfigured, match=r"QTASKS\['RETENTION'\]\['process'\]"),
    ):
        call_command("qtasks_purge", "--older-than", "1d")


def test_task_status_values_match_the_retention_statuses():
    from django_qtasks.retention import ENDED, NOT_ENDED

    assert sorted(ENDED + NOT_ENDED) == sorted(TaskStatus.values)
