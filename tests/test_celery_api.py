"""Celery's names on task handles: ``delay`` and ``apply_async`` write the row
that ``add_task`` would, and Celery options without a meaning here are refused
before anything is written (docs/migrating-from-celery.md)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from django_qtasks import SyncTask, app
from django_qtasks.exceptions import TaskArgumentsError
from django_qtasks.models import Task, TaskStatus
from tests.conftest import wait_status
from tests.testapp import tasks, tasks_qtcore

pytestmark = pytest.mark.django_db


@pytest.fixture
def routed() -> Iterator[SyncTask]:
    """A task with parameters named like add_task's options, removed afterwards."""

    @app.task(name="celery_routed", queue="routes", priority=2)
    def celery_routed(item: int, queue: str = "", priority: int = 0) -> list[Any]:
        return [item, queue, priority]

    yield celery_routed
    app.unregister("celery_routed")


def stored(record: Task) -> Task:
    return Task.objects.get(pk=record.uuid)


async def awaited(pending: Any) -> Any:
    return await pending


# delay ---------------------------------------------------------------------------


def test_delay_writes_the_row_add_task_would():
    record = stored(tasks.echo.delay({"a": 1}))
    assert (record.task_name, record.status) == ("echo", TaskStatus.NEW)
    assert (record.args, record.kwargs) == ([{"a": 1}], {})
    assert record.run_after is None


def test_delay_keywords_are_the_tasks_own_also_named_like_options(routed):
    record = stored(routed.delay(7, queue="fast", priority=-5))
    assert (record.args, record.kwargs) == ([7], {"queue": "fast", "priority": -5})
    # The decorator's options, untouched by the task's keywords.
    assert (record.queue, record.priority) == ("routes", 2)


def test_delay_refuses_arguments_that_are_not_json():
    with pytest.raises(TaskArgumentsError, match=r"Arguments of task 'echo' must be JSON"):
        tasks.echo.delay({1, 2})
    assert not Task.objects.exists()


# apply_async ---------------------------------------------------------------------


def test_apply_async_maps_its_options_to_the_row(routed):
    before = timezone.now()
    record = stored(routed.apply_async((1,), {"queue": "kw"}, countdown=30, queue="q", priority=-3))
    after = timezone.now()
    assert (record.args, record.kwargs) == ([1], {"queue": "kw"})
    assert (record.queue, record.priority) == ("q", -3)
    assert before + timedelta(seconds=30) <= record.run_after <= after + timedelta(seconds=30)


def test_apply_async_without_options_uses_the_decorators(routed):
    record = stored(routed.apply_async([4]))
    assert (record.args, record.kwargs) == ([4], {})
    assert (record.queue, record.priority, record.run_after) == ("routes", 2, None)
    assert stored(tasks.decoded.apply_async()).args == []


def test_apply_async_takes_an_eta_and_a_timedelta_countdown():
    eta = timezone.now() + timedelta(hours=1)
    assert stored(tasks.echo.apply_async((1,), eta=eta)).run_after == eta
    before = timezone.now()
    record = stored(tasks.echo.apply_async((2,), countdown=timedelta(minutes=5)))
    assert record.run_after >= before + timedelta(minutes=5)


def test_apply_async_ignores_the_options_that_change_nothing_here():
    record = tasks.echo.apply_async(
        (1,),
        retry=True,
        retry_policy={"max_retries": 3},
        serializer="json",
        compression="zlib",
        ignore_result=True,
        add_to_parent=False,
    )
    assert stored(record).args == [1]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"expires": 60}, r"expires= is not supported here: there is no expiry; cancel"),
        ({"task_id": "abc"}, r"task_id= is not supported here: the task's uuid is made"),
        ({"link": None}, r"link= is not supported here: chain the tasks instead: chain\("),
        ({"link_error": None}, r"link_error= is not supported here: handle failures"),
        ({"time_limit": 5}, r"time_limit= is not supported here: set max_time= on"),
        ({"soft_time_limit": 5}, r"soft_time_limit= .* max_time= on the task's decorator"),
        ({"routing_key": "x"}, r"routing_key= is not supported here: route with queue="),
        ({"timeout": 10}, r"timeout= is not supported here: .* add_task\(\.\.\., timeout="),
        ({"colour": "red"}, r"colour= is not supported here: apply_async takes args, kwargs"),
        ({"countdown": 5, "eta": timezone.now()}, r"give countdown or eta, not both"),
        ({"countdown": -1}, r"echo.apply_async\(\), countdown: delay must be finite and >= 0"),
        ({"countdown": "5"}, r"countdown: delay must be a number of seconds, not '5'"),
        ({"eta": datetime(2030, 1, 1)}, r"eta must be timezone-aware, not naive"),
        ({"args": "abc"}, r"echo.apply_async\(\): args must be a list or tuple, not 'abc'"),
        ({"args": (1,), "kwargs": [("a", 1)]}, r"kwargs must be a dict, not \[\('a', 1\)\]"),
    ],
)
def test_apply_async_refuses_what_it_cannot_honour_and_writes_nothing(options, message):
    with pytest.raises(TypeError, match=message):
        tasks.echo.apply_async(**options)
    assert not Task.objects.exists()


def test_apply_async_options_come_after_args_and_kwargs():
    with pytest.raises(TypeError):
        tasks.echo.apply_async((1,), {}, "a-task-id")
    assert not Task.objects.exists()


# Async handles: as their add_task ------------------------------------------------


def test_async_task_delay_from_sync_code_in_the_default_app_writes_at_once():
    record = tasks.async_echo.delay("now")
    assert isinstance(record, Task)
    assert stored(record).args == ["now"]


def test_async_task_delay_and_apply_async_are_awaitable_in_an_event_loop():
    async def caller() -> list[Task]:
        pending = [
            tasks.async_echo.delay("in a loop"),
            tasks.async_echo.apply_async(("too",), priority=6),
        ]
        assert all(inspect.isawaitable(each) for each in pending)
        return [await each for each in pending]

    first, second = async_to_sync(caller)()
    assert stored(first).args == ["in a loop"]
    assert (stored(second).args, stored(second).priority) == (["too"], 6)


def test_the_async_apps_delay_and_apply_async_are_coroutines_from_sync_code_too():
    handle = tasks_qtcore.qt_sync_in_async_app
    pending = handle.delay(3)
    assert inspect.iscoroutine(pending)
    assert stored(async_to_sync(awaited)(pending)).args == [3]
    pending = handle.apply_async([4], queue="later", countdown=60)
    assert inspect.iscoroutine(pending)
    record = stored(async_to_sync(awaited)(pending))
    assert (record.args, record.queue) == ([4], "later")
    assert record.run_after is not None


def test_an_async_handles_refusal_is_raised_at_the_call_and_writes_nothing():
    with pytest.raises(TypeError, match=r"expires= is not supported here"):
        tasks_qtcore.qt_sync_in_async_app.apply_async((1,), expires=10)
    assert not Task.objects.exists()


# Run by a worker -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_delay_and_apply_async_tasks_run(worker):
    by_delay = wait_status(tasks.echo.delay("celery"))
    by_apply = wait_status(tasks.echo.apply_async(kwargs={"value": [1, 2]}, priority=1))
    assert (by_delay.status, by_delay.returning) == (TaskStatus.SUCCESS, "celery")
    assert (by_apply.status, by_apply.returning) == (TaskStatus.SUCCESS, [1, 2])
