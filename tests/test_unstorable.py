"""Values that a database refuses: NUL characters and lone surrogates.

PostgreSQL refuses NUL in text and JSON, every database a lone surrogate in
text, PostgreSQL and MariaDB in JSON too; SQLite and MariaDB store NUL. A
task behaves the same on all three: such a result ends the task in error at
once, unretried, with a message that names the character and where it is;
messages (tracebacks, log lines, cancel reasons) keep what they say, with
the character escaped; arguments are refused at add_task. Real workers run
every task here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection

from django_qtasks import app
from django_qtasks.app import is_storable, storable_text, unstorable
from django_qtasks.chains import chain
from django_qtasks.exceptions import TaskArgumentsError
from django_qtasks.models import Task, TaskStatus
from tests.conftest import run_worker, wait_status
from tests.testapp import tasks, tasks_unstorable

pytestmark = pytest.mark.django_db(transaction=True)

NUL = 0
SURROGATE = 0xD800


# The shared check ---------------------------------------------------------------


def test_unstorable_names_the_character_and_where_it_is():
    assert unstorable({"a": [1, "x\x00"]}, "kwargs") == "U+0000 at character 1 of kwargs['a'][1]"
    assert unstorable(["ok", "\ud800"], "args") == "U+D800 at character 0 of args[1]"
    assert unstorable({"k\x00": 1}, "kwargs") == "U+0000 at character 1 of a key of kwargs"
    assert unstorable({"text": "caf\u00e9 \U0001f600", "n": 1.5}) is None
    # An escaped backslash before "u0000" is no NUL.
    assert unstorable("\\u0000", dumped='"\\\\u0000"') is None
    assert not is_storable(["\x00"])
    assert not is_storable(float("nan"))
    assert is_storable(["ok"])


def test_storable_text_escapes_what_a_database_refuses():
    assert storable_text("a\x00b\ud800c") == "a\\u0000b\\ud800c"
    assert storable_text("plain") == "plain"


def test_is_storable_counts_the_bytes_of_the_json_against_a_limit():
    assert is_storable(["a" * 10], max_bytes=16)  # ["aaaaaaaaaa"]: 14 bytes
    assert not is_storable(["a" * 20], max_bytes=16)
    assert not is_storable(["\u00e9" * 10], max_bytes=16)  # 10 characters, 24 bytes
    assert is_storable(["\u00e9" * 10])


# Enqueueing -------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["a\x00b", "\ud800"])
def test_add_task_refuses_unstorable_arguments_and_writes_nothing(bad):
    with pytest.raises(TaskArgumentsError) as args_error:
        tasks.echo.add_task(bad)
    with pytest.raises(TypeError) as kwargs_error:
        app.add_task("push", value=1, items=[{"name": bad}])
    with pytest.raises(TaskArgumentsError) as many_error:
        app.add_tasks([tasks.echo.s("fine"), tasks.echo.s(bad)])
    with pytest.raises(TaskArgumentsError):
        chain(tasks.echo.s("fine"), tasks.push.s(bad)).add_task()
    code = f"U+{ord(bad[-2] if bad.startswith('a') else bad):04X}"
    assert f"args contains {code} at character" in str(args_error.value)
    assert "of args[0]" in str(args_error.value)
    assert "'echo'" in str(args_error.value)
    assert "of kwargs['items'][0]['name']" in str(kwargs_error.value)
    assert code in str(many_error.value)
    assert Task.objects.count() == 0


# Results ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "name"), [(NUL, "U+0000 at character 1"), (SURROGATE, "U+D800 at character 1")]
)
def test_unstorable_result_ends_in_error_at_once_with_a_clear_message(worker, code, name):
    task = wait_status(tasks_unstorable.unstorable_result.add_task(code))
    assert task.status == TaskStatus.ERROR
    assert f"The result cannot be stored: it contains {name} of result." in task.traceback
    assert task.returning is None
    assert task.attempts == 1


def test_unstorable_item_deep_in_an_async_result_is_named(worker):
    task = wait_status(tasks_unstorable.async_unstorable_result.add_task(NUL))
    assert task.status == TaskStatus.ERROR
    assert "it contains U+0000 at character 4 of result['items'][1]" in task.traceback


def test_unstorable_result_is_not_retried(worker):
    task = wait_status(tasks_unstorable.unstorable_with_retry.add_task(SURROGATE))
    assert task.status == TaskStatus.ERROR
    assert "U+D800 at character 0 of result" in task.traceback
    assert task.attempts == 1
    assert [entry["status"] for entry in task.attempt_log] == [TaskStatus.ERROR]


def test_generator_yielding_an_unstorable_item_ends_in_error(worker):
    task = wait_status(tasks_unstorable.yields_unstorable.add_task(NUL))
    assert task.status == TaskStatus.ERROR
    assert "U+0000 at character 0 of result[1]" in task.traceback


def test_decode_that_escapes_the_character_stores_the_result(worker):
    task = wait_status(tasks_unstorable.unstorable_decoded.add_task(NUL))
    assert task.status == TaskStatus.SUCCESS
    assert task.returning == '"a\\u0000b"'


# Messages keep what they say ------------------------------------------------------


@pytest.mark.parametrize("code", [NUL, SURROGATE])
def test_log_line_with_an_unstorable_character_is_kept_escaped(worker, code):
    task = wait_status(tasks_unstorable.logs_unstorable.add_task(code))
    assert task.status == TaskStatus.SUCCESS
    assert task.returning == "done"
    assert f"before\\u{code:04x}after" in [line["message"] for line in task.logs]


def test_exception_message_with_nul_keeps_the_real_error(worker):
    task = wait_status(tasks_unstorable.raises_unstorable.add_task(NUL))
    assert task.status == TaskStatus.ERROR
    assert "ValueError: bad\\u0000value" in task.traceback
    # ValueError is not in retry_on_exc: the one attempt, ended as the code did.
    assert task.attempts == 1
    assert task.attempt_log[0]["error"] == "ValueError: bad\\u0000value"


def test_cancel_reason_with_a_surrogate_is_kept_escaped(worker):
    task = wait_status(tasks_unstorable.cancels_unstorable.add_task(SURROGATE))
    assert task.status == TaskStatus.CANCEL
    assert task.cancel_reason == "why\\ud800not"


def test_cancel_from_outside_with_a_nul_in_its_reason_is_kept_escaped():
    queued = tasks.echo.add_task("never", queue=f"nobody-{uuid.uuid4().hex[:8]}")
    assert queued.cancel("typed\x00by a user", by="admin\ud800")
    queued.refresh_from_db()
    assert queued.status == TaskStatus.CANCEL
    assert (queued.cancel_reason, queued.canceled_by) == ("typed\\u0000by a user", "admin\\ud800")


# A row the database refuses, among others that end with it ----------------------


@contextmanager
def database_refuses(value: str) -> Iterator[None]:
    """Make the database itself refuse a result ``value``, as it may for reasons of its own."""
    table = connection.ops.quote_name(Task._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                f'CREATE TRIGGER qtasks_test_refuse BEFORE UPDATE OF "returning" ON {table} '
                f'WHEN NEW."returning" = \'"{value}"\' '
                "BEGIN SELECT RAISE(ABORT, 'value refused'); END"
            )
            undo = "DROP TRIGGER qtasks_test_refuse"
        else:
            quoted = connection.ops.quote_name("returning")
            literal = f"'\"{value}\"'" + ("::jsonb" if connection.vendor == "postgresql" else "")
            cursor.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT qtasks_test_refuse "
                f"CHECK ({quoted} IS NULL OR {quoted} <> {literal})"
            )
            undo = f"ALTER TABLE {table} DROP CONSTRAINT qtasks_test_refuse"
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(undo)


@pytest.mark.e2e
def test_a_refused_row_fails_alone_and_the_others_end_in_success():
    queue = f"refuse-{uuid.uuid4().hex[:8]}"
    # They all return at the same moment, so that their results are written
    # together (whether they are does not change what must be seen).
    at = time.time() + 3
    with database_refuses("poison"):
        good = [
            tasks_unstorable.returns_at.add_task(f"good-{n}", at, queue=queue) for n in range(5)
        ]
        bad = tasks_unstorable.returns_at.add_task("poison", at, queue=queue)
        result = run_worker("--burst", "--queues", queue, "--concurrency", "8", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for n, task in enumerate(good):
        task.refresh_from_db()
        assert (task.status, task.returning, task.attempts) == (
            TaskStatus.SUCCESS,
            f"good-{n}",
            1,
        )
    bad.refresh_from_db()
    assert bad.status == TaskStatus.ERROR
    assert bad.attempts == 1
    assert "The outcome of this run could not be stored" in bad.traceback
    assert bad.finished_at is not None
    # The burst worker left nothing in process.
    assert not Task.objects.filter(queue=queue, status=TaskStatus.PROCESS).exists()
