"""Delayed tasks and chains, run by a real worker (on every broker: see make test-brokers)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from django_qtasks import app, chain
from django_qtasks.chains import Step
from django_qtasks.exceptions import QTasksError, TaskArgumentsError, UnknownTask, WaitTimeout
from django_qtasks.models import Task, TaskStatus
from tests.conftest import wait_status
from tests.testapp import tasks

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


# Delays -----------------------------------------------------------------------


def test_delay_holds_the_task_back_that_many_seconds(worker):
    before = timezone.now()
    queued = tasks.echo.add_task("later", delay=1.5)
    after = timezone.now()
    assert queued.run_after is not None
    assert before + timedelta(seconds=1.5) <= queued.run_after <= after + timedelta(seconds=1.5)
    done = wait_status(queued)
    assert done.status == TaskStatus.SUCCESS
    waited = (done.started_at - done.created_at).total_seconds()
    # Not before its time. (How soon after depends on the machine: the outbox
    # sweep and polls run every 0.2 s, and wait_status gives up after 20 s.)
    assert waited >= 1.5


def test_eta_is_an_aware_datetime_and_is_honoured(worker):
    eta = timezone.now() + timedelta(seconds=1)
    done = wait_status(app.add_task("echo", "at eta", eta=eta))
    assert done.run_after == eta
    assert eta <= done.started_at  # and within wait_status' 20 s


def test_a_past_eta_runs_at_once(worker):
    done = wait_status(tasks.echo.add_task(1, eta=timezone.now() - timedelta(hours=1)))
    assert done.status == TaskStatus.SUCCESS  # within wait_status' 20 s, not an hour late
    assert done.started_at >= done.created_at


def test_async_add_task_takes_a_delay(worker):
    before = timezone.now()
    record = async_to_sync(tasks.async_echo.aadd_task)("async later", delay=0.5)
    after = timezone.now()
    assert record.run_after is not None
    assert before + timedelta(seconds=0.5) <= record.run_after <= after + timedelta(seconds=0.5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"eta": datetime(2030, 1, 1, 12)}, r"eta must be timezone-aware, not naive"),
        ({"eta": "2030-01-01"}, r"eta must be a datetime, not '2030-01-01'"),
        ({"delay": -1}, r"delay must be finite and >= 0, not -1"),
        ({"delay": float("inf")}, r"delay must be finite and >= 0"),
        ({"delay": "5"}, r"delay must be a number of seconds, not '5'"),
        ({"delay": 1, "eta": timezone.now()}, r"give delay or eta, not both"),
    ],
)
def test_bad_delay_or_eta_is_refused_and_writes_nothing(options, message):
    with pytest.raises(TypeError, match=rf"add_task of 'echo': {message}"):
        tasks.echo.add_task(1, **options)
    assert not Task.objects.exists()


def test_a_timedelta_delay_is_accepted():
    before = timezone.now()
    record = tasks.echo.add_task(1, delay=timedelta(minutes=5))
    after = timezone.now()
    assert before + timedelta(minutes=5) <= record.run_after <= after + timedelta(minutes=5)


# Chains -----------------------------------------------------------------------


def test_each_step_receives_the_previous_result_as_its_last_argument(worker):
    steps = chain(tasks.echo.s([1]), tasks.push.s(2), tasks.push.s(3)).add_task(timeout=20)
    assert [step.task_name for step in steps] == ["echo", "push", "push"]
    assert [step.status for step in steps] == [TaskStatus.SUCCESS] * 3
    assert [step.args for step in steps] == [[[1]], [2, [1]], [3, [1, 2]]]
    assert steps[-1].returning == [1, 2, 3]
    # Linked step to step, so the admin can show the chain.
    assert steps[0].chain_previous_id is None
    assert [step.chain_previous_id for step in steps[1:]] == [steps[0].uuid, steps[1].uuid]
    assert steps[0].chain_steps == [
        {"task_name": "push", "args": [2], "kwargs": {}},
        {"task_name": "push", "args": [3], "kwargs": {}},
    ]
    assert steps[-1].chain_steps == []


def test_without_timeout_add_task_returns_the_first_step_at_once(worker):
    first, *rest = chain(tasks.echo.s(5), tasks.echo_child.s()).add_task()
    assert rest == []
    assert first.status == TaskStatus.NEW
    wait_status(first)
    following = Task.objects.get(chain_previous=first)
    assert wait_status(following).args == [5]


def test_a_failing_step_stops_the_chain_and_keeps_what_did_not_run(worker):
    steps = chain(
        tasks.echo.s(1), tasks.fails_with.s("boom"), tasks.push.s(3), tasks.push.s(4)
    ).add_task(timeout=20)
    assert [step.status for step in steps] == [TaskStatus.SUCCESS, TaskStatus.ERROR]
    failed = steps[-1]
    assert failed.args == ["boom", 1]
    assert "ValueError: boom" in failed.traceback
    assert [step["args"] for step in failed.chain_steps] == [[3], [4]]
    assert not Task.objects.filter(chain_previous=failed).exists()
    assert Task.objects.count() == 2


def test_retrying_a_failed_step_goes_on_with_the_rest_of_the_chain(worker):
    steps = chain(tasks.echo.s(1), tasks.fails_with.s("x"), tasks.push.s(3)).add_task(timeout=20)
    again = steps[-1].retry()
    assert again is not None
    assert again.chain_previous_id == steps[0].uuid
    assert again.chain_steps == steps[-1].chain_steps


def test_a_chain_from_async_code(worker):
    steps = async_to_sync(chain(tasks.async_echo.s([0]), tasks.push.s(1)).aadd_task)(timeout=20)
    assert steps[-1].returning == [0, 1]


def test_a_bare_task_is_a_step_without_arguments(worker):
    steps = chain(tasks.decoded, tasks.echo).add_task(timeout=20)
    # decoded's decode=json.dumps stores the value its JSON text encodes.
    assert [step.returning for step in steps] == [{"a": 1}, {"a": 1}]


def test_waiting_for_a_chain_can_time_out(worker):
    with pytest.raises(WaitTimeout, match=r"did not end within 0\.3s; it goes on \(step 1"):
        chain(tasks.sync_sleeper.s(2), tasks.push.s(1)).add_task(timeout=0.3)


def test_an_unknown_step_is_refused_before_anything_is_written():
    with pytest.raises(UnknownTask, match="No task named 'nope'"):
        chain(tasks.echo.s(1), Step("nope")).add_task()
    assert not Task.objects.exists()


def test_arguments_that_are_not_json_are_refused_at_the_step():
    with pytest.raises(TaskArgumentsError, match=r"task 'push' must be JSON \(args\[0\]\)"):
        chain(tasks.echo.s(1), tasks.push.s(object())).add_task()
    assert not Task.objects.exists()


def test_a_chain_needs_steps():
    with pytest.raises(QTasksError, match="A chain needs a step at least"):
        chain()
    with pytest.raises(TypeError, match=r"Chain steps are tasks or task\.s"):
        chain(tasks.echo.s(1), "echo")  # type: ignore[arg-type]
    assert repr(chain(tasks.echo.s(1), tasks.push.s(2))) == "chain(echo, push)"
