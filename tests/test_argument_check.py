"""Arguments checked against the task's function at enqueue (django_qtasks.signatures).

A call that could never run is refused where it is made, by every way of
enqueueing, with a TypeError that names the task and the parameter, and no
row is written. What the package gives at run time (``self``, Depends,
states, pydantic models) is not asked of the caller, and tasks whose
arguments may change before the call (middlewares_before, executor=) are
not checked.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Annotated, Any

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError
from django.test import override_settings
from pydantic import BaseModel
from rest_framework.test import APIClient

from django_qtasks import AsyncTask, SyncTask, app
from django_qtasks.asyncio import app as async_app
from django_qtasks.chains import Step, chain
from django_qtasks.exceptions import TaskArgumentsError, TaskSignatureError, UnknownTask
from django_qtasks.models import Schedule, Task
from django_qtasks.plugins import Depends, SyncState
from django_qtasks.signatures import call_shape
from django_qtasks.worker.executor import TaskExecutor
from tests.api_helpers import TASKS, client_for, snapshot

pytestmark = pytest.mark.django_db


# The functions: registered by the ``checked`` fixture ----------------------------------------


def add(a: int, b: int) -> int:
    return a + b


async def aadd(a: int, b: int) -> int:
    return a + b


def greet(self: SyncTask, name: str, *, polite: bool = False) -> str:
    return f"Good day, {name}" if polite else f"Hi {name}"


async def agreet(self: AsyncTask, name: str) -> str:
    return f"Hi {name}"


@contextlib.contextmanager
def opened() -> Iterator[int]:
    yield 123


class Counter(SyncState):
    pass


def with_dependencies(
    n: int,
    dep: Annotated[int, Depends(opened)],
    counter: Counter,
    other: int = Depends(opened),
) -> int:
    return n + dep + other


def anything(*args: Any, **kwargs: Any) -> int:
    return len(args) + len(kwargs)


def positional_only(a: int, /, b: int) -> int:
    return a - b


def add_one(task: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return [*args, 1], kwargs


def needs_middleware(value: int) -> int:
    return value


class Stamping(TaskExecutor):
    pass


def with_executor(value: int) -> int:
    return value


class Item(BaseModel):
    name: str
    value: int


def with_model(item: Item) -> int:
    return item.value


def unchecked(value: int) -> int:
    return value


@pytest.fixture
def checked() -> Iterator[SimpleNamespace]:
    """The functions above as tasks of the real app, named ``check.<function>``."""
    before = dict(app.tasks)
    options: dict[Any, dict[str, Any]] = {
        greet: {"echo": True},
        agreet: {"echo": True},
        needs_middleware: {"middlewares_before": [add_one]},
        with_executor: {"executor": Stamping},
    }
    functions = [
        add,
        aadd,
        greet,
        agreet,
        with_dependencies,
        anything,
        positional_only,
        needs_middleware,
        with_executor,
        with_model,
        unchecked,
    ]
    handles = {
        func.__name__: app.task(name=f"check.{func.__name__}", **options.get(func, {}))(func)
        for func in functions
    }
    handles["unchecked"].check_arguments = False
    yield SimpleNamespace(**handles)
    for name in set(app.tasks) - set(before):
        app.unregister(name)


# Every way of enqueueing refuses a wrong call, and writes nothing ----------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "field", "reason"),
    [
        ((1,), {}, "args", "missing an argument for parameter 'b'"),
        ((), {}, "args", "missing an argument for parameters 'a' and 'b'"),
        ((), {"a": 1}, "kwargs", "missing an argument for parameter 'b'"),
        ((1, 2, 3), {}, "args", "too many positional arguments: it takes 2 (a, b), 3 were given"),
        ((1, 2), {"c": 3}, "kwargs", "unexpected keyword argument 'c'"),
        ((1,), {"bb": 2}, "kwargs", "unexpected keyword argument 'bb' (did you mean 'b'?)"),
        ((1, 2), {"a": 3}, "kwargs", "'a' is given twice, by position and by keyword"),
    ],
)
def test_a_wrong_call_is_a_type_error_that_names_the_parameter(
    checked, args, kwargs, field, reason
):
    with pytest.raises(TaskSignatureError) as raised:
        checked.add.add_task(*args, **kwargs)
    assert str(raised.value) == f"Arguments of task 'check.add' do not fit add(a, b): {reason}."
    assert isinstance(raised.value, TypeError)
    assert isinstance(raised.value, TaskArgumentsError)
    assert raised.value.field == field
    assert not Task.objects.exists()


def test_every_door_refuses_it(checked):
    missing = r"do not fit add\(a, b\): missing an argument for parameter 'b'"
    with pytest.raises(TaskSignatureError, match=missing):
        app.add_task("check.add", 1)
    with pytest.raises(TaskSignatureError, match=missing):
        async_to_sync(app.aadd_task)("check.add", 1)
    with pytest.raises(TaskSignatureError, match=missing):
        async_to_sync(checked.add.aadd_task)(1)
    with pytest.raises(TaskSignatureError, match=missing):
        checked.add(1).add_task()  # a pre-built task, as in QTasks
    with pytest.raises(TaskSignatureError, match=r"check\.aadd.*parameter 'b'"):
        async_to_sync(async_app.add_task)("check.aadd", 1)
    with pytest.raises(TaskSignatureError, match=r"unexpected keyword argument 'x'"):
        checked.add.add_task(1, 2, task_name="check.aadd", x=3)  # a nested task, by name
    assert not Task.objects.exists()


def test_add_tasks_writes_nothing_when_one_step_is_wrong(checked):
    with pytest.raises(TaskSignatureError, match=r"check\.add.*too many positional"):
        app.add_tasks([checked.add.s(1, 2), checked.anything.s(1), checked.add.s(1, 2, 3)])
    with pytest.raises(TaskSignatureError, match=r"check\.add.*parameters 'a' and 'b'"):
        app.add_tasks([checked.add.s(1, 2), checked.add])  # a bare task: no arguments
    with pytest.raises(TaskSignatureError, match=r"check\.add.*parameter 'b'"):
        async_to_sync(app.aadd_tasks)([checked.add.s(1)])
    assert not Task.objects.exists()


def test_a_right_call_is_written_as_before(checked):
    record = checked.add.add_task(1, b=2, priority=3)
    assert (record.args, record.kwargs, record.priority) == ([1], {"b": 2}, 3)
    assert Task.objects.get(pk=record.pk).kwargs == {"b": 2}
    assert len(app.add_tasks([checked.add.s(1, 2), checked.add.s(a=1, b=2)])) == 2
    assert Task.objects.count() == 3


# What the package gives is not asked of the caller -------------------------------------------


def test_self_of_an_echo_task_is_not_an_argument(checked):
    assert checked.greet.add_task("Ann").args == ["Ann"]
    assert checked.greet.add_task(name="Ann", polite=True).kwargs == {"name": "Ann", "polite": True}
    assert checked.agreet.add_task("Bob").args == ["Bob"]  # sync code: enqueued at once
    with pytest.raises(TaskSignatureError) as raised:
        checked.greet.add_task()
    assert str(raised.value) == (
        "Arguments of task 'check.greet' do not fit greet(name, *, polite=False): "
        "missing an argument for parameter 'name'."
    )
    with pytest.raises(TaskSignatureError, match=r"it takes 1 \(name\), 2 were given"):
        checked.greet.add_task("Ann", True)


def test_depends_and_states_are_given_by_the_worker(checked):
    assert checked.with_dependencies.add_task(1).args == [1]
    assert checked.with_dependencies.add_task(1, dep=5, counter=None).kwargs == {
        "dep": 5,
        "counter": None,
    }
    with pytest.raises(TaskSignatureError, match=r"missing an argument for parameter 'n'"):
        checked.with_dependencies.add_task()


def test_star_args_and_star_kwargs_take_anything(checked):
    assert checked.anything.add_task(1, 2, 3, x=1, y=2).kwargs == {"x": 1, "y": 2}
    assert checked.anything.add_task().args == []


def test_positional_only_parameters(checked):
    assert checked.positional_only.add_task(1, b=2).kwargs == {"b": 2}
    with pytest.raises(TaskSignatureError) as raised:
        checked.positional_only.add_task(a=1, b=2)
    assert "'a' is positional-only: give it in args, not by keyword" in str(raised.value)
    assert raised.value.field == "kwargs"


def test_a_pydantic_model_takes_its_fields_as_the_worker_does(checked):
    assert checked.with_model.add_task("Test", value=42).kwargs == {"value": 42}
    assert checked.with_model.add_task({"name": "Test", "value": 42}).args
    assert checked.with_model.add_task(item={"name": "Test", "value": 42}).kwargs
    with pytest.raises(TaskSignatureError, match=r"unexpected keyword argument 'colour'"):
        checked.with_model.add_task(item={"name": "Test", "value": 42}, colour="red")


def test_tasks_whose_arguments_may_change_are_not_checked(checked):
    # middlewares_before may add, drop or rename arguments; an executor may do anything.
    assert checked.needs_middleware.add_task().args == []
    assert checked.with_executor.add_task(1, 2, 3).args == [1, 2, 3]
    assert checked.needs_middleware.call_shape is None
    assert checked.with_executor.call_shape is None


def test_a_task_can_opt_out(checked):
    assert checked.unchecked.add_task("one", "too many", extra=1).args == ["one", "too many"]


def test_the_shape_is_made_at_the_first_check_not_at_import(checked):
    assert "call_shape" not in vars(checked.add)
    checked.add.add_task(1, 2)
    shape = vars(checked.add)["call_shape"]
    assert shape is not None
    assert shape.shown == "add(a, b)"
    checked.add.add_task(3, 4)
    assert vars(checked.add)["call_shape"] is shape


# The same answer as Python's own binding -----------------------------------------------------


def sample_a(a, b=2, *args, c, d=4, **kwargs): ...  # type: ignore[no-untyped-def]
def sample_b(a, /, b, *, c=3): ...  # type: ignore[no-untyped-def]
def sample_c(): ...  # type: ignore[no-untyped-def]
def sample_d(a, b=1, /, c=2): ...  # type: ignore[no-untyped-def]


CALLS = [
    ((), {}),
    ((1,), {}),
    ((1, 2), {}),
    ((1, 2, 3), {}),
    ((1, 2, 3, 4, 5), {}),
    ((), {"a": 1}),
    ((), {"a": 1, "c": 3}),
    ((1,), {"c": 3}),
    ((1,), {"a": 1, "c": 3}),
    ((1,), {"b": 2, "c": 3}),
    ((1, 2), {"c": 3, "e": 5}),
    ((1,), {"d": 4}),
    ((1, 2), {"b": 2}),
    ((), {"e": 1}),
]


@pytest.mark.parametrize("func", [sample_a, sample_b, sample_c, sample_d])
def test_a_call_is_refused_exactly_when_python_would_refuse_it(func):
    shape = call_shape(func, func.__name__)
    assert shape is not None
    for args, kwargs in CALLS:
        try:
            inspect.signature(func).bind(*args, **kwargs)
            python_refuses = False
        except TypeError:
            python_refuses = True
        refused = shape.problem(args, kwargs) is not None
        assert refused == python_refuses, (func.__name__, args, kwargs)


def test_a_function_without_a_signature_is_not_checked():
    assert call_shape(max, "max") is None  # several signatures: none known
    assert call_shape(sample_c, "no_self", skip_first=True) is None  # echo=True without self


# Chains: every step but the first also receives the previous result --------------------------


def test_a_chain_is_checked_when_it_is_built(checked):
    fine = chain(checked.add.s(1, 2), checked.add.s(1), checked.anything)
    assert [step.task_name for step in fine.steps] == ["check.add", "check.add", "check.anything"]
    with pytest.raises(TaskSignatureError) as raised:
        chain(checked.add.s(1, 2), checked.add.s(1, 2))
    assert str(raised.value) == (
        "Arguments of chain step 2, task 'check.add', do not fit add(a, b) (it also receives "
        "the previous step's result, as its last positional argument): too many positional "
        "arguments: it takes 2 (a, b), 3 were given."
    )
    with pytest.raises(TaskSignatureError, match=r"chain step 1, task 'check\.add'.*'b'"):
        chain(checked.add.s(1), checked.add.s(1))
    with pytest.raises(TaskSignatureError, match=r"chain step 3, task 'check\.add'.*'b'"):
        chain(checked.add.s(1, 2), checked.anything.s(), checked.add)
    assert not Task.objects.exists()


def test_a_chain_of_a_task_registered_later_is_checked_by_add_task(checked):
    built = chain(checked.add.s(1, 2), Step("check.later", (1,)))  # unknown: left to add_task
    with pytest.raises(UnknownTask, match=r"No task named 'check\.later'"):
        built.add_task()
    app.task(name="check.later")(add)
    with pytest.raises(TaskSignatureError, match=r"chain step 2, task 'check\.later'.*3 were"):
        chain(checked.add.s(1, 2), Step("check.later", (1, 2))).add_task()
    assert not Task.objects.exists()
    first, *_ = built.add_task()
    assert first.chain_steps == [{"task_name": "check.later", "args": [1], "kwargs": {}}]


# The REST API: a 400 under the field, naming the parameter -----------------------------------


@pytest.fixture
def api(db: None) -> APIClient:
    return client_for("root", superuser=True)


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"args": [1]}, "args", "missing an argument for parameter 'b'"),
        ({"kwargs": {"a": 1}}, "kwargs", "missing an argument for parameter 'b'"),
        (
            {"args": [1, 2, 3]},
            "args",
            "too many positional arguments: it takes 2 (a, b), 3 were given",
        ),
        ({"args": [1, 2], "kwargs": {"c": 3}}, "kwargs", "unexpected keyword argument 'c'"),
    ],
)
def test_the_api_refuses_a_wrong_call_with_a_400_naming_the_parameter(
    checked, api, body, field, reason
):
    before = snapshot()
    response = api.post(TASKS, {"task_name": "check.add", **body}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        field: [f"Arguments of task 'check.add' do not fit add(a, b): {reason}."]
    }
    assert snapshot() == before


def test_the_api_enqueues_a_right_call(checked, api):
    response = api.post(TASKS, {"task_name": "check.greet", "args": ["Ann"]}, format="json")
    assert response.status_code == 201
    assert response.json()["args"] == ["Ann"]


# Schedules: refused where they are made; a stored one that no longer fits runs nothing -------


def test_a_schedule_whose_arguments_do_not_fit_is_invalid(checked):
    row = Schedule(name="sums", task_name="check.add", cron="0 * * * *", args=[1], kwargs={})
    with pytest.raises(ValidationError) as raised:
        row.full_clean()
    assert raised.value.message_dict == {
        "args": [
            "Arguments of task 'check.add' do not fit add(a, b): missing an argument for "
            "parameter 'b'."
        ]
    }
    row.args = [1, 2]
    row.full_clean()


def test_a_settings_schedule_whose_arguments_do_not_fit_is_a_check_error(checked):
    from django_qtasks.checks import check_settings

    entry = {"task": "check.greet", "interval": 60, "args": ["Ann"], "kwargs": {"rude": True}}
    with override_settings(QTASKS={"SCHEDULES": {"hello": entry}}):
        errors = check_settings()
    assert [(error.id, error.msg) for error in errors] == [
        (
            "django_qtasks.E005",
            "QTASKS['SCHEDULES']['hello']: Arguments of task 'check.greet' do not fit "
            "greet(name, *, polite=False): unexpected keyword argument 'rude'.",
        )
    ]


def test_the_beat_logs_a_stored_schedule_that_no_longer_fits_and_writes_no_task(checked, caplog):
    from django_qtasks.beat import enqueue_run

    row = Schedule.objects.create(name="old", task_name="check.add", cron="0 * * * *", args=[1])
    with caplog.at_level(logging.ERROR, logger="django_qtasks.beat"):
        assert enqueue_run(row) is None
    assert "Schedule old could not enqueue its task: Arguments of task 'check.add'" in caplog.text
    assert not Task.objects.exists()


def test_the_admin_says_why_a_schedule_could_not_run(checked, admin_client):
    from django.urls import reverse

    row = Schedule.objects.create(name="old", task_name="check.add", cron="0 * * * *", args=[1])
    response = admin_client.post(
        reverse("admin:django_qtasks_schedule_changelist"),
        {"action": "run_selected", "_selected_action": [str(row.pk)]},
        follow=True,
    )
    [message] = [str(message) for message in response.context["messages"]]
    assert message == (
        "1 schedule could not run because its arguments do not fit its task: old (check.add)."
    )
    assert not Task.objects.exists()
