"""Periodic tasks: real ``qtasks_beat`` processes (and ``qtasks_worker --beat``) with a worker."""

from __future__ import annotations

import itertools
import re
import signal
import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from django_qtasks import app
from django_qtasks.models import Schedule, Task, TaskStatus
from tests.conftest import wait_status, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

BEAT = {"command": "qtasks_beat", "ready": "Beat started"}


def schedule_due_soon(name: str, seconds: float, **fields: object) -> Schedule:
    """An interval schedule whose first run is 1.5s from now.

    Made once the beats run: they notice a new row within BEAT_INTERVAL (1s),
    then sleep until its time.
    """
    return Schedule.objects.create(
        name=name,
        task_name="echo",
        args=[name],
        interval=timedelta(seconds=seconds),
        next_run_at=timezone.now() + timedelta(seconds=1.5),
        **fields,
    )


def runs_of(schedule: Schedule) -> list[Task]:
    return list(Task.objects.filter(schedule=schedule).order_by("created_at"))


def due_times(log: str, name: str) -> list[str]:
    return re.findall(rf"Schedule {name} \(due ([^)]+)\) enqueued task", log)


def test_an_interval_schedule_fires_on_time(worker, start_worker):
    start_worker(**BEAT)
    schedule = schedule_due_soon("every-second", 1)
    first_due = schedule.next_run_at
    wait_until(lambda: len(runs_of(schedule)) >= 3, timeout=10, message="three runs")
    for number, task in enumerate(runs_of(schedule)[:3]):
        due = first_due + timedelta(seconds=number)
        late = (task.created_at - due).total_seconds()
        assert 0 <= late < 0.5, f"run {number} enqueued {late:.3f}s after its time"
        done = wait_status(task)
        assert done.status == TaskStatus.SUCCESS
        assert done.returning == "every-second"
    schedule.refresh_from_db()
    assert schedule.run_count >= 3
    assert schedule.last_task in runs_of(schedule)


def test_a_cron_schedule_fires_at_its_time_then_plans_the_next_minute(worker, start_worker):
    start_worker(**BEAT)
    schedule = Schedule.objects.create(
        name="each-minute",
        task_name="echo",
        args=[1],
        cron="* * * * *",
        next_run_at=timezone.now() + timedelta(seconds=1.5),
    )
    due = schedule.next_run_at
    wait_until(lambda: runs_of(schedule), timeout=10, message="the cron run")
    # At its time, not before; and not at the next minute (a busy machine may
    # make it a few seconds late).
    assert 0 <= (runs_of(schedule)[0].created_at - due).total_seconds() < 30
    schedule.refresh_from_db()
    following = schedule.next_run_at
    assert following.second == 0
    assert following.microsecond == 0
    assert timedelta(0) < following - due <= timedelta(minutes=1)


def test_two_beats_enqueue_each_run_exactly_once(worker, start_worker):
    beats = [start_worker(**BEAT), start_worker(**BEAT)]
    schedule = schedule_due_soon("twice-a-second", 0.5)
    time.sleep(4.5)
    for beat in beats:
        beat.signal(signal.SIGTERM)
    stopped_at = timezone.now()
    for beat in beats:
        assert beat.wait() == 0
    enqueued = [due for beat in beats for due in due_times(beat.log, "twice-a-second")]
    runs = runs_of(schedule)
    assert len(enqueued) == len(set(enqueued)), "a run was enqueued by both beats"
    assert len(runs) == len(enqueued)
    # Every run is on the half-second phase of the first due time. A beat
    # that a loaded machine made late collapses the runs it missed into one,
    # as designed, so the count is only bounded: most slots are fired.
    first_due = schedule.next_run_at
    for due in enqueued:
        offset = (datetime.fromisoformat(due) - first_due).total_seconds()
        assert offset / 0.5 == pytest.approx(round(offset / 0.5), abs=0.002), due
    slots = (stopped_at - first_due).total_seconds() / 0.5 + 1
    assert slots / 2 <= len(runs) <= slots + 1
    # One run a slot: due times at least a slot apart (when each was created
    # depends on how late the beat was).
    offsets = sorted((datetime.fromisoformat(due) - first_due).total_seconds() for due in enqueued)
    assert all(b - a >= 0.5 - 0.002 for a, b in itertools.pairwise(offsets)), offsets


def test_a_restarted_beat_fires_missed_runs_once_and_keeps_its_phase(worker, start_worker):
    beat = start_worker(**BEAT)
    schedule = schedule_due_soon("survivor", 1)
    first_due = schedule.next_run_at
    wait_until(lambda: len(runs_of(schedule)) == 2, timeout=10, message="two runs")
    beat.process.kill()  # no goodbye: as if the machine went down
    beat.wait()
    enqueued_by_killed = len(runs_of(schedule))
    time.sleep(3.5)  # runs are missed meanwhile
    restarted_at = timezone.now()
    restarted = start_worker(**BEAT)
    wait_until(
        lambda: len(due_times(restarted.log, "survivor")) >= 2,
        timeout=30,
        message="the catch-up run and one more",
    )
    restarted.signal(signal.SIGTERM)  # so that its log and the rows agree
    assert restarted.wait() == 0
    # Judged by the times the runs were due, which the beats log, not by when
    # their rows were written (that depends on how fast the machine is).
    before = [datetime.fromisoformat(due) for due in due_times(beat.log, "survivor")]
    after = [datetime.fromisoformat(due) for due in due_times(restarted.log, "survivor")]
    offsets = [(due - first_due).total_seconds() for due in before + after]
    # Each due time fired once, on the schedule's phase.
    assert offsets == sorted(set(offsets)), offsets
    assert all(offset == pytest.approx(round(offset), abs=0.001) for offset in offsets)
    # The runs missed while no beat ran made one run, not one each.
    assert len([due for due in after if due < restarted_at]) <= 1, after
    # Killed between a run's commit and its log line, a beat leaves one run
    # that its log does not show; the restarted beat, stopped cleanly, logged
    # each of its own.
    assert enqueued_by_killed - len(before) in (0, 1), (enqueued_by_killed, before)
    assert len(runs_of(schedule)) == enqueued_by_killed + len(after)


def test_a_worker_with_beat_runs_periodic_tasks(transactional_db, start_worker):
    worker = start_worker("--beat")
    worker.wait_for_log("Beat started")
    schedule = schedule_due_soon("in-worker", 60)
    wait_until(lambda: runs_of(schedule), timeout=10, message="the run")
    assert wait_status(runs_of(schedule)[0]).status == TaskStatus.SUCCESS


def test_the_beat_stops_on_sigterm(transactional_db, start_worker):
    beat = start_worker(**BEAT)
    beat.signal(signal.SIGTERM)
    assert beat.wait() == 0
    assert "Beat stopped" in beat.log


# The beat's decisions, one look at a time (in this process) ---------------------


def tick(at: datetime) -> float:
    from django_qtasks.beat import Beat

    return Beat().tick(at)


def test_a_one_off_schedule_runs_once_then_disables():
    now = timezone.now()
    once = Schedule.objects.create(
        name="once",
        task_name="echo",
        args=[1],
        interval=timedelta(minutes=1),
        one_off=True,
        next_run_at=now,
    )
    tick(now)
    tick(now + timedelta(minutes=5))
    once.refresh_from_db()
    assert (once.enabled, once.next_run_at, once.run_count) == (False, None, 1)
    assert len(runs_of(once)) == 1


def test_an_expired_schedule_enqueues_nothing_and_disables():
    now = timezone.now()
    gone = Schedule.objects.create(
        name="gone",
        task_name="echo",
        cron="* * * * *",
        next_run_at=now - timedelta(minutes=1),
        expires_at=now - timedelta(seconds=1),
    )
    tick(now)
    gone.refresh_from_db()
    assert (gone.enabled, gone.next_run_at, gone.run_count) == (False, None, 0)
    assert runs_of(gone) == []


def test_the_last_run_before_expiry_disables_the_schedule():
    now = timezone.now()
    last = Schedule.objects.create(
        name="last",
        task_name="echo",
        args=[1],
        interval=timedelta(hours=1),
        next_run_at=now,
        expires_at=now + timedelta(minutes=30),
    )
    tick(now)
    last.refresh_from_db()
    assert (last.enabled, last.next_run_at, last.run_count) == (False, None, 1)


def test_a_new_schedule_without_next_run_gets_one_and_the_pause_follows_it():
    now = timezone.now()
    fresh = Schedule.objects.create(name="fresh", task_name="echo", interval=timedelta(seconds=2))
    Schedule.objects.exclude(pk=fresh.pk).delete()
    pause = tick(now)
    fresh.refresh_from_db()
    assert fresh.next_run_at == now + timedelta(seconds=2)
    assert 0 < pause <= 1.0  # BEAT_INTERVAL caps it
    assert runs_of(fresh) == []


def test_a_schedule_of_an_unknown_task_is_skipped_with_an_error(caplog):
    now = timezone.now()
    orphan = Schedule.objects.create(
        name="orphan", task_name="vanished", interval=timedelta(minutes=1), next_run_at=now
    )
    with caplog.at_level("ERROR", logger="django_qtasks.beat"):
        tick(now)
    assert "Schedule orphan could not enqueue its task: No task named 'vanished'" in caplog.text
    orphan.refresh_from_db()
    assert orphan.next_run_at == now + timedelta(minutes=1)  # moved on, not stuck
    assert not Task.objects.exists()


def test_a_disabled_schedule_never_fires():
    now = timezone.now()
    off = Schedule.objects.create(
        name="off", task_name="echo", cron="* * * * *", enabled=False, next_run_at=now
    )
    tick(now)
    assert runs_of(off) == []


def test_intervals_skip_missed_runs_and_keep_their_phase():
    schedule = Schedule(interval=timedelta(minutes=10))
    base = datetime(2026, 1, 1, 12, 0, tzinfo=dt_timezone.utc)
    after_outage = base + timedelta(minutes=47)
    assert schedule.next_run_after(after_outage, previous=base) == base + timedelta(minutes=50)
    assert schedule.next_run_after(base, previous=base) == base + timedelta(minutes=10)
    assert schedule.next_run_after(base) == base + timedelta(minutes=10)


@override_settings(TIME_ZONE="Europe/Paris")
def test_cron_runs_in_the_project_time_zone_across_daylight_saving():
    schedule = Schedule(cron="0 9 * * *")
    winter = datetime(2026, 1, 15, 12, 0, tzinfo=dt_timezone.utc)
    summer = datetime(2026, 7, 15, 12, 0, tzinfo=dt_timezone.utc)
    assert schedule.next_run_after(winter) == datetime(2026, 1, 16, 8, 0, tzinfo=dt_timezone.utc)
    assert schedule.next_run_after(summer) == datetime(2026, 7, 16, 7, 0, tzinfo=dt_timezone.utc)


# Schedules declared in code and settings ----------------------------------------


def test_code_and_settings_schedules_become_rows_when_the_beat_starts():
    from django_qtasks.beat import sync_declared_schedules

    declared = {"report": {"task": "echo", "cron": "30 2 * * *", "args": ["nightly"]}}
    with override_settings(QTASKS={"SCHEDULES": declared}):
        sync_declared_schedules()
    rows = {row.name: row for row in Schedule.objects.all()}
    assert rows["hourly"].source == "code"
    assert rows["hourly"].interval == timedelta(hours=1)
    assert rows["minute_report"].cron == "* * * * *"
    assert rows["report"].source == "settings"
    assert (rows["report"].task_name, rows["report"].args) == ("echo", ["nightly"])
    assert rows["report"].next_run_at.time().isoformat() == "02:30:00"

    # Switched off in the admin, and the code changes its arguments: the
    # switch stays, the arguments follow the code, the timing is unchanged.
    Schedule.objects.filter(name="report").update(enabled=False)
    planned = rows["hourly"].next_run_at
    declared["report"]["args"] = ["changed"]
    with override_settings(QTASKS={"SCHEDULES": declared}):
        sync_declared_schedules()
    report = Schedule.objects.get(name="report")
    assert (report.enabled, report.args) == (False, ["changed"])
    assert Schedule.objects.get(name="hourly").next_run_at == planned

    # No longer declared: removed. Rows made in the admin stay.
    Schedule.objects.create(name="mine", task_name="echo", cron="0 0 * * *")
    sync_declared_schedules()
    assert set(Schedule.objects.values_list("name", flat=True)) == {
        "hourly",
        "minute_report",
        "mine",
    }


def test_a_retimed_declaration_gets_a_new_next_run():
    from django_qtasks.beat import sync_declared_schedules

    with override_settings(
        QTASKS={"SCHEDULES": {"s": {"task": "echo", "interval": 3600, "args": [1]}}}
    ):
        sync_declared_schedules()
    with override_settings(
        QTASKS={"SCHEDULES": {"s": {"task": "echo", "interval": 60, "args": [1]}}}
    ):
        sync_declared_schedules()
    row = Schedule.objects.get(name="s")
    assert row.interval == timedelta(seconds=60)
    assert row.next_run_at - timezone.now() < timedelta(seconds=61)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("61 * * * *", r"Invalid cron expression '61 \* \* \* \*': Bad minute\. Use five fields"),
        ("* * *", r"Invalid cron expression '\* \* \*': Wrong number of fields"),
        (0, r"the interval must be positive, not 0"),
        (timedelta(seconds=-1), r"the interval must be positive"),
        ([5], r"a schedule is a cron expression such as '\*/5 \* \* \* \*', a timedelta or "),
    ],
)
def test_a_bad_schedule_in_the_decorator_fails_at_import_with_its_location(schedule, message):
    from django_qtasks.exceptions import InvalidSchedule

    with pytest.raises(InvalidSchedule, match=rf"task 'bad' \(.*test_beat\.py:\d+\): {message}"):

        @app.task(schedule=schedule)
        def bad() -> None: ...

    assert "bad" not in app.tasks


def test_bad_settings_schedules_are_system_check_errors():
    from django_qtasks.checks import check_settings

    schedules = {
        "nightly": {"task": "echo", "cron": "0 25 * * *", "args": [1]},
        "both": {"task": "echo", "cron": "* * * * *", "interval": 5, "args": [1]},
        "ghost": {"task": "nope", "interval": 5, "colour": "red"},
        "args": {"task": "echo", "interval": 5, "args": {"a": 1}},
        "arity": {"task": "echo", "interval": 5, "kwargs": {"valeu": 2}},
        "hourly": {"task": "echo", "interval": 5, "args": [1]},
    }
    with override_settings(QTASKS={"SCHEDULES": schedules}):
        messages = [(error.id, error.msg) for error in check_settings()]
    assert {check_id for check_id, _ in messages} == {"django_qtasks.E005"}
    texts = [text for _, text in messages]
    assert texts[0] == (
        "QTASKS['SCHEDULES']['nightly']: Invalid cron expression '0 25 * * *': Bad hour. Use "
        "five fields: minute hour day-of-month month day-of-week, e.g. '*/5 * * * *' (every five "
        "minutes) or '0 9 * * MON-FRI' (9:00 on weekdays)."
    )
    assert texts[1] == "QTASKS['SCHEDULES']['both'] needs exactly one of 'cron' and 'interval'."
    assert texts[2].startswith("QTASKS['SCHEDULES']['ghost'] has unknown keys ['colour']")
    assert texts[3].startswith("QTASKS['SCHEDULES']['ghost']['task'] = 'nope' is not a registered")
    assert texts[4] == "QTASKS['SCHEDULES']['args']['args'] must be a JSON list, not {'a': 1}."
    assert texts[5] == (
        "QTASKS['SCHEDULES']['arity']: Arguments of task 'echo' do not fit echo(value): "
        "unexpected keyword argument 'valeu' (did you mean 'value'?)."
    )
    assert texts[6].startswith(
        "QTASKS['SCHEDULES']['hourly']: the task 'hourly' already declares a schedule"
    )
    assert len(texts) == 7


def test_the_beat_command_refuses_a_broken_setting():
    from django.core.exceptions import ImproperlyConfigured

    with (
        override_settings(QTASKS={"BEAT_INTERVAL": "soon"}),
        pytest.raises(
            ImproperlyConfigured, match=r"QTASKS\['BEAT_INTERVAL'\] must be int or float"
        ),
    ):
        call_command("qtasks_beat")


def test_a_schedule_with_no_run_left_is_disabled_when_planned():
    now = timezone.now()
    stale = Schedule.objects.create(
        name="stale", task_name="echo", cron="* * * * *", expires_at=now - timedelta(days=1)
    )
    tick(now)
    stale.refresh_from_db()
    assert (stale.enabled, stale.next_run_at) == (False, None)
