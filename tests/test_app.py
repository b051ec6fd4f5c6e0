"""The client side, without a worker: registry, handles, enqueueing, lookups, cancel.

Tasks defined here are registered on the real ``django_qtasks.app`` through the
``registry`` fixture, which restores the registry afterwards.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connections, transaction
from django.test import override_settings

from django_qtasks import AsyncTask, QTasksApp, SyncTask, app, shared_task, task
from django_qtasks.exceptions import (
    DuplicateTask,
    QTasksError,
    TaskArgumentsError,
    TaskCancel,
    UnknownTask,
    WaitTimeout,
)
from django_qtasks.models import Task, TaskStatus
from tests.conftest import ROOT
from tests.testapp import tasks

THIS_FILE = __file__


@pytest.fixture
def registry() -> Iterator[QTasksApp]:
    """The real app; tasks registered during the test are removed afterwards."""
    before = dict(app.tasks)
    yield app
    for name in set(app.tasks) - set(before):
        app.unregister(name)
    for name, handle in before.items():
        if app.tasks.get(name) is not handle:
            app.unregister(name)
            app.register(handle)


def location(func: object) -> str:
    """``file:line`` of a function's definition, as a user reads it in a traceback."""
    code = func.__code__  # type: ignore[attr-defined]
    return f"{code.co_filename}:{code.co_firstlineno}"


# --- Registration --------------------------------------------------------------


def test_decorator_forms_register_on_the_app():
    assert app.tasks["echo"] is tasks.echo  # @task
    assert app.tasks["record_order"] is tasks.record_order  # @app.task(echo=True)
    assert app.tasks["renamed.shared"] is tasks.shared  # @shared_task(name=...)
    assert "shared" not in app.tasks
    assert task == app.task  # one registry
    assert shared_task == app.task


def test_handle_class_follows_the_function_kind():
    assert type(tasks.echo) is SyncTask  # def
    assert type(tasks.sync_gen) is SyncTask  # generator
    assert type(tasks.async_echo) is AsyncTask  # async def
    assert type(tasks.async_gen) is AsyncTask  # async generator
    assert repr(tasks.echo) == "<SyncTask 'echo'>"
    assert repr(tasks.async_gen) == "<AsyncTask 'async_gen'>"


def test_handle_func_is_the_plain_function():
    assert tasks.echo.func({"a": [1]}) == {"a": [1]}
    assert tasks.shared.func(21) == 42
    assert tasks.record_order.func(tasks.record_order, "label") == "label"  # echo: self first
    assert asyncio.run(tasks.async_echo.func("hi")) == "hi"
    assert list(tasks.sync_gen.func(3)) == [0, 1, 2]  # the raw generator, no generate_handler
    assert tasks.echo.__name__ == "echo"
    assert tasks.sync_busy.__doc__.startswith("Ignores cancel requests")


def test_calling_an_echo_handle_passes_the_handle_as_self():
    report = tasks.options_report.func(tasks.options_report)
    assert report == {
        "task_name": "options_report",
        "priority": 3,
        "tags": ["a", "b"],
        "description": "Shows its options",
        "extra": {"color": "blue"},
        "echo": True,
        "queue": None,
        "middlewares": 0,
    }


def test_self_has_the_documented_attributes():
    from demo.tasks import test_echo_ctx

    handle = test_echo_ctx
    assert handle.task_name == "test_echo_ctx"
    assert handle.priority == 1
    assert handle.echo is True
    assert handle.max_time is None
    assert handle.retry == 3
    assert handle.retry_on_exc == [KeyError]
    assert handle.decode is json.dumps
    assert handle.tags == ["test"]
    assert handle.description is None
    assert handle.extra == {"test": "test"}
    assert handle.executor is None
    assert handle.middlewares_before == []
    assert handle.middlewares_after == []
    assert handle.middlewares == []
    assert callable(handle.add_task)
    assert handle.ctx.task_name == "test_echo_ctx"

    mw = tasks.with_middlewares
    assert mw.middlewares_before == [tasks.add_one_before]
    assert mw.middlewares_after == [tasks.double_after]
    assert mw.middlewares == [tasks.add_one_before, tasks.double_after]
    assert tasks.async_too_slow.max_time == 0.5
    assert tasks.sync_gen.generate_handler(2) == 20
    assert tasks.sync_gen.ctx.generate_handler(2) == 20
    # The description defaults to the first line of the docstring.
    assert (
        tasks.sync_busy.description
        == "Ignores cancel requests: never calls ctx.sleep (pure Python loop)."
    )


def test_ctx_outside_a_worker():
    ctx = tasks.sync_ctx_report.ctx
    assert ctx.task_uuid is None
    assert ctx.task_name == "sync_ctx_report"
    config = ctx.get_config()
    assert config["GREETING"] == "hello"  # tests/settings.py
    assert config["DEFAULT_QUEUE"] == "default"  # a default
    with pytest.raises(TaskCancel) as raised:
        ctx.cancel("not now")
    assert raised.value.reason == "not now"
    with pytest.raises(
        QTasksError, match=r"ctx\.get_metadata\(\) only works while the task runs in a worker"
    ):
        ctx.get_metadata()

    actx = tasks.ctx_report.ctx
    assert actx.get_config()["GREETING"] == "hello"
    with pytest.raises(TaskCancel):
        actx.cancel()
    with pytest.raises(
        QTasksError, match=r"ctx\.get_metadata\(\) only works while the task runs in a worker"
    ):
        asyncio.run(actx.get_metadata())
    # As in QTasks: an unknown component is None; another app attribute is that attribute.
    assert actx.get_component("nope") is None
    assert actx.get_component("tasks")["ctx_report"] is tasks.ctx_report
    assert actx.get_component("app") is app


def test_duplicate_name_names_both_locations(registry):
    def first():
        pass

    def second():
        pass

    registry.task(name="tests.dup")(first)
    with pytest.raises(DuplicateTask) as raised:
        registry.task(name="tests.dup")(second)
    message = str(raised.value)
    assert "'tests.dup'" in message
    assert location(first) in message
    assert location(second) in message
    # Nothing lost: the first registration stands.
    assert registry.tasks["tests.dup"].func is first


def test_duplicate_of_an_installed_task_keeps_the_original(registry):
    with pytest.raises(DuplicateTask) as raised:

        @registry.task
        def echo(value):  # same name as tests.testapp.tasks.echo
            return value

    message = str(raised.value)
    assert location(tasks.echo.func) in message
    assert f"{THIS_FILE}:" in message
    assert "@app.task(name=...)" in message
    assert registry.tasks["echo"] is tasks.echo


def test_registering_the_same_function_again_is_not_a_duplicate(registry):
    def same():
        return 1

    registry.task(name="tests.same")(same)
    handle = registry.task(name="tests.same")(same)
    assert registry.tasks["tests.same"] is handle


MAX_TIME_MUST = "max_time must be a positive, finite number of seconds"


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"priority": "high"}, TypeError, "priority must be an int, not 'high'"),
        ({"priority": True}, TypeError, "priority must be an int, not True"),
        ({"retry": -1}, TypeError, "retry must be an int >= 0, not -1"),
        ({"retry": 1.5}, TypeError, "retry must be an int >= 0, not 1.5"),
        (
            {"retry_on_exc": [KeyError, "ValueError"]},
            TypeError,
            "retry_on_exc must list exception classes, not 'ValueError'",
        ),
        (
            {"retry_on_exc": [int]},
            TypeError,
            "retry_on_exc must list exception classes, not <class 'int'>",
        ),
        ({"decode": "json.dumps"}, TypeError, "decode must be callable, not 'json.dumps'"),
        ({"generate_handler": 3}, TypeError, "generate_handler must be callable, not 3"),
        ({"middlewares_before": [None]}, TypeError, "middlewares must be callables, not None"),
        ({"tags": ["ok", 1]}, TypeError, "tags must be strings"),
        ({"max_time": 0}, TypeError, f"{MAX_TIME_MUST}, not 0"),
        ({"max_time": -2.5}, TypeError, f"{MAX_TIME_MUST}, not -2.5"),
        ({"max_time": "1"}, TypeError, f"{MAX_TIME_MUST}, not '1'"),
        # As the django.tasks backend's OPTIONS refuse them.
        ({"max_time": True}, TypeError, f"{MAX_TIME_MUST}, not True"),
        ({"max_time": float("inf")}, TypeError, f"{MAX_TIME_MUST}, not inf"),
        ({"max_time": float("nan")}, TypeError, f"{MAX_TIME_MUST}, not nan"),
        ({"retry": True}, TypeError, "retry must be an int >= 0, not True"),
        ({"color": object()}, TaskArgumentsError, "extra option color=<object object at"),
        ({"ratio": float("nan")}, TaskArgumentsError, "extra option ratio=nan must be JSON"),
    ],
)
def test_invalid_decorator_options_fail_at_decoration(registry, options, error, message):
    def bad_options_task():
        pass

    with pytest.raises(error) as raised:
        registry.task(**options)(bad_options_task)
    text = str(raised.value)
    assert message in text
    assert text.startswith(f"task 'bad_options_task' ({location(bad_options_task)}): ")
    assert "bad_options_task" not in registry.tasks


def test_extra_keywords_and_name_option(registry):
    @registry.task(name="tests.extra", queue="low", color="blue", limits={"n": [1, 2]})
    def with_extra(self):
        return self.extra

    assert registry.tasks["tests.extra"] is with_extra
    assert with_extra.task_name == "tests.extra"
    assert with_extra.queue == "low"
    assert with_extra.extra == {"color": "blue", "limits": {"n": [1, 2]}}


def test_import_and_decorate_before_django_setup():
    script = textwrap.dedent(
        """
        import django_qtasks
        from django_qtasks import app, task, shared_task, AsyncTask, SyncTask

        @task
        def add(a, b):
            return a + b

        @app.task(echo=True, priority=2, tags=["t"], color="red")
        async def hello(self, name):
            return f"hello {name} from {self.task_name}"

        @shared_task(name="other")
        def other():
            return "other"

        def clash():
            pass

        import asyncio
        from django.conf import settings
        assert type(add) is SyncTask and type(hello) is AsyncTask
        assert add.func(1, 2) == 3
        assert asyncio.run(hello.func(hello, "you")) == "hello you from hello"
        assert add(1, 2).args == (1, 2)  # a pre-built task; nothing runs or is written
        assert hello.extra == {"color": "red"} and hello.priority == 2
        assert sorted(app.tasks) == ["add", "hello", "other"]
        try:
            app.task(name="add")(clash)
        except django_qtasks.exceptions.DuplicateTask as exc:
            print(exc)
        assert not settings.configured
        print("ok")
        """
    )
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "ok"
    # Without a source file, the locations still tell the two functions apart.
    assert "already registered at <string>:5; the second one is at <string>:17" in lines[0]


# --- Enqueueing ------------------------------------------------------------------


@pytest.mark.django_db
def test_handle_add_task_stores_the_decorator_options():
    record = tasks.options_report.add_task()
    assert isinstance(record, Task)
    assert record.status == TaskStatus.NEW
    stored = Task.objects.get(pk=record.uuid)
    assert stored.status == TaskStatus.NEW
    assert stored.task_name == "options_report"
    assert stored.priority == 3
    assert stored.tags == ["a", "b"]
    assert stored.extra == {"color": "blue"}
    assert stored.queue == "default"
    assert stored.max_attempts == 1
    assert stored.attempts == 0
    assert stored.args == []
    assert stored.kwargs == {}
    assert stored.started_at is None
    assert stored.finished_at is None


@pytest.mark.django_db
def test_add_task_sends_the_models_save_signals_and_returns_a_saved_record():
    from django.db.models.signals import post_save, pre_save

    seen: list[tuple[str, object, bool | None]] = []

    def before(sender: type, instance: Task, **kwargs: object) -> None:
        seen.append(("pre_save", instance.pk, None))

    def after(sender: type, instance: Task, created: bool, **kwargs: object) -> None:
        # The row exists when post_save runs, as with Model.save().
        seen.append(("post_save", Task.objects.filter(pk=instance.pk).exists(), created))

    pre_save.connect(before, sender=Task)
    post_save.connect(after, sender=Task)
    try:
        record = tasks.echo.add_task(1)
    finally:
        pre_save.disconnect(before, sender=Task)
        post_save.disconnect(after, sender=Task)
    assert seen == [("pre_save", record.pk, None), ("post_save", True, True)]
    assert record._state.adding is False
    stored = Task.objects.get(pk=record.pk)
    assert stored.updated_at == record.updated_at
    assert stored.created_at == record.created_at
    # A saved record, so a later save() updates it instead of inserting again.
    record.priority = 7
    record.save()
    assert Task.objects.get(pk=record.pk).priority == 7


@pytest.mark.django_db
def test_retry_and_queue_options_are_stored():
    from demo.tasks import test_echo_ctx

    assert Task.objects.get(pk=test_echo_ctx.add_task().pk).max_attempts == 4  # retry=3
    assert Task.objects.get(pk=tasks.on_other_queue.add_task().pk).queue == "other"


@pytest.mark.django_db
def test_per_call_priority_and_queue_override():
    record = tasks.options_report.add_task(priority=-5, queue="urgent")
    stored = Task.objects.get(pk=record.uuid)
    assert (stored.priority, stored.queue) == (-5, "urgent")
    # priority=0 is a value, not "unset".
    assert Task.objects.get(pk=tasks.options_report.add_task(priority=0).pk).priority == 0


@pytest.mark.django_db
def test_default_queue_comes_from_settings():
    with override_settings(QTASKS={"DEFAULT_QUEUE": "low"}):
        assert Task.objects.get(pk=tasks.echo.add_task(1).pk).queue == "low"
    assert Task.objects.get(pk=tasks.echo.add_task(1).pk).queue == "default"


@pytest.mark.django_db
def test_app_add_task_by_name_stores_args_and_kwargs():
    record = app.add_task("renamed.shared", 5, priority=2, note={"k": [1, None]})
    assert isinstance(record, Task)
    stored = Task.objects.get(pk=record.uuid)
    assert stored.task_name == "renamed.shared"
    assert stored.status == TaskStatus.NEW
    assert stored.args == [5]
    assert stored.kwargs == {"note": {"k": [1, None]}}
    assert stored.priority == 2
    assert app.get(record.uuid) == stored
    assert app.get(str(record.uuid)) == stored


@pytest.mark.django_db
def test_handle_add_task_by_task_name_enqueues_the_other_task():
    record = tasks.echo.add_task(7, task_name="echo_child")
    assert Task.objects.get(pk=record.uuid).task_name == "echo_child"


@pytest.mark.django_db
def test_aadd_task_on_app_and_handle():
    by_name = async_to_sync(app.aadd_task)("echo", "x", priority=4, queue="q1")
    by_handle = async_to_sync(tasks.async_echo.aadd_task)("y")
    for record in (by_name, by_handle):
        assert isinstance(record, Task)
        assert record.status == TaskStatus.NEW
    assert Task.objects.get(pk=by_name.uuid).args == ["x"]
    assert (by_name.priority, by_name.queue) == (4, "q1")
    assert Task.objects.get(pk=by_handle.uuid).task_name == "async_echo"


@pytest.mark.django_db
def test_async_task_add_task_from_sync_code_returns_a_task():
    record = tasks.async_echo.add_task("sync caller")
    assert isinstance(record, Task)
    assert Task.objects.get(pk=record.uuid).args == ["sync caller"]


@pytest.mark.django_db
def test_async_task_add_task_inside_an_event_loop_is_awaitable():
    async def caller() -> Task:
        pending = tasks.async_echo.add_task("async caller", priority=9)
        assert inspect.isawaitable(pending)
        return await pending

    record = async_to_sync(caller)()
    assert isinstance(record, Task)
    stored = Task.objects.get(pk=record.uuid)
    assert (stored.args, stored.priority, stored.status) == (["async caller"], 9, "new")


@pytest.mark.django_db
def test_rolled_back_transaction_leaves_no_task():
    before = Task.objects.count()
    try:
        with transaction.atomic():
            record = tasks.echo.add_task("doomed")
            assert Task.objects.filter(pk=record.uuid).exists()  # visible to the caller
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert Task.objects.count() == before
    assert app.get(record.uuid) is None


@pytest.mark.django_db(transaction=True)
def test_task_row_is_written_in_the_callers_transaction():
    seen_from_outside: list[bool] = []

    def look(pk: uuid.UUID) -> None:
        try:
            seen_from_outside.append(Task.objects.filter(pk=pk).exists())
        finally:
            connections.close_all()

    with transaction.atomic():
        # On a queue no worker serves: a worker woken at commit would claim it at once.
        record = tasks.echo.add_task("later", queue="unserved")
        other = threading.Thread(target=look, args=(record.uuid,))
        other.start()
        other.join()
    assert seen_from_outside == [False]  # not before the caller commits
    assert Task.objects.get(pk=record.uuid).status == TaskStatus.NEW


# --- Bad input: a clear error, nothing written -------------------------------------


@pytest.mark.django_db
def test_unknown_task_name_is_refused():
    before = Task.objects.count()
    with pytest.raises(UnknownTask) as raised:
        app.add_task("no.such.task", 1)
    message = str(raised.value)
    assert "No task named 'no.such.task' is registered" in message
    assert "echo" in message  # what is registered, to spot a typo
    assert isinstance(raised.value, LookupError)

    with pytest.raises(UnknownTask, match=r"'no\.such\.async'"):
        async_to_sync(app.aadd_task)("no.such.async")
    with pytest.raises(UnknownTask, match=r"'no\.such\.child'"):
        tasks.echo.add_task(1, task_name="no.such.child")
    assert Task.objects.count() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "kwargs", "culprit"),
    [
        ((1, object()), {}, "(args[1])"),
        ((), {"ok": 1, "when": {1, 2}}, "(kwargs['when'])"),
        ((float("nan"),), {}, "(args[0])"),
        ((), {"rows": [{"d": b"bytes"}]}, "(kwargs['rows'])"),
    ],
)
def test_non_json_arguments_are_refused(args, kwargs, culprit):
    before = Task.objects.count()
    with pytest.raises(TaskArgumentsError) as raised:
        app.add_task("echo", *args, **kwargs)
    message = str(raised.value)
    assert message.startswith(f"Arguments of task 'echo' must be JSON {culprit}: ")
    assert "a primary key instead of an object" in message
    with pytest.raises(TaskArgumentsError, match=r"^Arguments of task 'async_echo'"):
        async_to_sync(tasks.async_echo.aadd_task)(*args, **kwargs)
    assert Task.objects.count() == before


@pytest.mark.django_db
@pytest.mark.parametrize("priority", ["x", 1.5, True])
def test_bad_per_call_priority_is_refused(priority):
    before = Task.objects.count()
    with pytest.raises(TypeError) as raised:
        tasks.echo.add_task(1, priority=priority)
    assert str(raised.value) == f"add_task of 'echo': priority must be an int, not {priority!r}."
    assert Task.objects.count() == before


@pytest.mark.django_db
def test_timeout_inside_atomic_is_refused():
    before = Task.objects.count()
    with transaction.atomic():
        with pytest.raises(QTasksError) as raised:
            tasks.echo.add_task(1, timeout=5)
        assert Task.objects.count() == before
    assert "add_task(timeout=...) cannot wait inside transaction.atomic()" in str(raised.value)
    assert "Wait after the block instead" in str(raised.value)


@pytest.mark.django_db
def test_broken_setting_refuses_enqueue_and_writes_nothing():
    before = Task.objects.count()
    with (
        override_settings(QTASKS={"CONCURRENCY": "10"}),
        pytest.raises(ImproperlyConfigured, match=r"QTASKS\['CONCURRENCY'\] must be int"),
    ):
        tasks.echo.add_task(1)
    with (
        override_settings(QTASKS={"BROKER_URL": "nope://x"}),
        pytest.raises(ImproperlyConfigured, match="no broker serves nope://"),
    ):
        tasks.echo.add_task(1)
    assert Task.objects.count() == before


@pytest.mark.django_db(transaction=True)
def test_an_expired_wait_returns_none_and_keeps_the_task():
    # As in QTasks: add_task(timeout=...) gives None when the task has not ended.
    assert tasks.echo.add_task("nobody", queue="tests.unserved", timeout=0.2) is None
    assert app.add_task("echo", "nobody either", queue="tests.unserved", timeout=0.2) is None
    records = Task.objects.filter(queue="tests.unserved")
    assert sorted(record.args[0] for record in records) == ["nobody", "nobody either"]
    assert {record.status for record in records} == {TaskStatus.NEW}


@pytest.mark.django_db(transaction=True)
def test_wait_timeout_names_the_task_and_keeps_it():
    # WAIT_TIMEOUT_RAISES opts in to the exception.
    with (
        override_settings(QTASKS={**settings.QTASKS, "WAIT_TIMEOUT_RAISES": True}),
        pytest.raises(WaitTimeout) as raised,
    ):
        tasks.echo.add_task("nobody", queue="tests.unserved", timeout=0.2)
    record = Task.objects.get(queue="tests.unserved")
    message = str(raised.value)
    assert message.startswith(f"Task {record.uuid} did not end within 0.2s (status 'new')")
    assert "app.get(uuid)" in message
    assert isinstance(raised.value, TimeoutError)
    assert app.get(record.uuid).status == TaskStatus.NEW
    assert record.queue == "tests.unserved"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "value",
    ["not-a-uuid", "", "123", None, 42, "00000000-0000-0000-0000-000000000000", uuid.uuid4()],
)
def test_get_unknown_or_malformed_uuid_returns_none(value):
    tasks.echo.add_task(1)  # something is there, just not this
    assert app.get(value) is None


# --- Cancel and repr ---------------------------------------------------------------


@pytest.mark.django_db
def test_cancel_a_queued_task():
    record = tasks.echo.add_task(1, priority=2)
    assert record.cancel("not needed any more", by="alice") is True
    assert record.status == TaskStatus.CANCEL
    assert record.cancel_reason == "not needed any more"
    assert record.canceled_by == "alice"
    assert record.finished_at is not None
    assert record.is_finished
    stored = app.get(record.uuid)
    assert (stored.status, stored.cancel_reason, stored.canceled_by) == (
        "cancel",
        "not needed any more",
        "alice",
    )
    # Arguments and priority are kept.
    assert (stored.args, stored.priority) == ([1], 2)


@pytest.mark.django_db
def test_cancel_a_finished_task_changes_nothing():
    record = tasks.echo.add_task(1)
    assert record.cancel("first") is True
    assert record.cancel("second", by="bob") is False
    stored = app.get(record.uuid)
    assert (stored.cancel_reason, stored.canceled_by) == ("first", "")

    other = tasks.echo.add_task(2)
    stale = Task.objects.get(pk=other.pk)
    assert other.cancel("one") is True
    assert stale.cancel("two") is False  # a stale copy sees the task has ended
    assert stale.cancel_reason == "one"


@pytest.mark.django_db
def test_acancel():
    record = tasks.echo.add_task(1)
    assert async_to_sync(record.acancel)("async reason") is True
    assert app.get(record.uuid).cancel_reason == "async reason"


@pytest.mark.django_db
def test_repr_reads_like_qtasks():
    record = tasks.echo.add_task("hi", priority=1)
    text = repr(record)
    assert text.startswith(
        f"Task(status='new', uuid={record.uuid!r}, task_name='echo', priority=1, "
    )
    assert "args=['hi'], kwargs={}, returning=None" in text
    assert "cancel_reason" not in text

    record.cancel("Test task canceled")
    text = repr(record)
    assert text.startswith(f"Task(status='cancel', uuid=UUID('{record.uuid}'), task_name='echo', ")
    assert text.endswith(", cancel_reason='Test task canceled')")
    assert str(record) == f"echo {record.uuid} (cancel)"


# --- Migrations ----------------------------------------------------------------------


@pytest.mark.django_db
def test_no_missing_migrations():
    out = io.StringIO()
    call_command("makemigrations", check=True, dry_run=True, stdout=out, stderr=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db
def test_retry_of_an_ended_task_enqueues_a_linked_copy():
    from tests.testapp.tasks import echo

    first = echo.add_task({"x": 1}, priority=4, queue="other")
    assert first.retry() is None  # still queued: nothing to retry
    first.cancel("stop")
    again = first.retry()
    assert again is not None
    assert again.pk != first.pk
    again.refresh_from_db()
    assert (again.status, again.retry_of_id, again.args, again.priority, again.queue) == (
        "new",
        first.pk,
        [{"x": 1}],
        4,
        "other",
    )
    assert list(first.retries.all()) == [again]
    first.refresh_from_db()
    assert first.status == "cancel"
