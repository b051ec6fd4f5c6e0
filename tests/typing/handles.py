"""What type checkers check of task handles: ``make lint`` runs mypy and pyright here.

Nothing here runs. The calls without a comment must type-check. Each wrong
call carries an ignore comment for each checker, with the code of the error
it must raise there: mypy (``warn_unused_ignores``) and pyright
(``reportUnnecessaryTypeIgnoreComment``, ``enableTypeIgnoreComments`` off, so
that each checker reads only its own comments) fail when a call they should
refuse is accepted. ``assert_type`` fails in both when a type is not the one
given. What is and is not checked: docs/enqueueing.md, "Type checking".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

from django.utils import timezone
from typing_extensions import assert_type

from django_qtasks import AsyncTask, SyncTask, app, chain, shared_task, task
from django_qtasks.asyncio import app as async_app
from django_qtasks.models import Task
from django_qtasks.routers import AsyncRouter, SyncRouter
from django_qtasks.task_cls import BaseTaskCls

# Decorators: the handle's class follows the function, typed after it -------


@app.task(priority=1, queue="math")
def add(a: int, b: int) -> int:
    return a + b


@task
def notify(user_id: int, channel: str = "email") -> str:
    return f"notified {user_id} by {channel}"


@shared_task
async def fetch(url: str, *, retries: int = 0) -> bytes:
    return url.encode()


@app.task("named", retry=2, custom="extra")
def named(text: str) -> None:
    pass


@app.task(echo=True, tags=["t"])
def echo_sync(self: SyncTask, text: str) -> str:
    # ``self`` annotated without parameters: its calls are not checked, so a
    # nested task of another name passes its own arguments.
    self.add_task(1, 2, 3, task_name="other")
    assert_type(self.add_task(1, timeout=5), Task | None)
    return text


@app.task("echoed", echo=True)
async def echo_async(self: AsyncTask, n: int) -> int:
    await self.ctx.sleep(1)
    return n


@task
def anything(*args: int, **kwargs: str) -> None:
    pass


@task
def numbers(n: int) -> Iterator[int]:
    yield from range(n)


@task
async def anumbers(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


# The handles' types; mypy's assert_type would compare parameter names too.
_add: SyncTask[[int, int], int] = add
_notify: SyncTask[[int, str], str] = notify
_named: SyncTask[[str], None] = named
_echo_sync: SyncTask[[str], str] = echo_sync
_echo_async: AsyncTask[[int], int] = echo_async
_numbers: SyncTask[[int], Iterator[int]] = numbers
_anumbers: AsyncTask[[int], AsyncIterator[int]] = anumbers
_not_async: AsyncTask[[int, int], int] = add  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
_not_str: SyncTask[[str, str], int] = add  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]


@app.task(echo=True)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType]
def no_self() -> None:  # echo=True: the function must take self first
    pass


# add_task: the task's arguments, checked when no option is given ----------

assert_type(add.add_task(1, 2), Task)
assert_type(add.add_task(1, b=2), Task)
assert_type(notify.add_task(42, channel="sms"), Task)
assert_type(echo_sync.add_task("hello"), Task)

add.add_task("x", "y", "z")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]
add.add_task(1)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]
add.add_task(1, c=2)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]
notify.add_task(42, chanel="sms")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]
echo_sync.add_task(object(), "hello")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]
named.add_task()  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]

# add_task's options: each checked; with one, the task's arguments are not --

assert_type(add.add_task(1, 2, priority=-1, queue="q"), Task)
assert_type(add.add_task(1, 2, delay=10), Task)
assert_type(add.add_task(1, 2, delay=timedelta(minutes=5)), Task)
assert_type(add.add_task(1, 2, eta=timezone.now()), Task)
assert_type(add.add_task(1, 2, task_name="other"), Task)
assert_type(add.add_task(1, 2, timeout=10), Task | None)
assert_type(add.add_task(1, 2, timeout=None, priority=1), Task | None)
assert_type(app.add_task("add", 1, 2), Task | None)
assert_type(anything.add_task(1, 2, note="x"), Task)
assert_type(anything.add_task(1, 2, timeout=5), Task | None)  # an option, not one of **kwargs
anything.add_task(note=1)  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]

add.add_task(1, 2, priority="high")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
add.add_task(1, 2, delay="soon")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
add.add_task(1, 2, eta=5)  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
add.add_task(1, 2, timeout="10")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
add.add_task(1, 2, queue=["a"])  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]

add.add_task("x", priority=1)  # not flagged: PEP 612 has no room for options beside P

# aadd_task, and AsyncTask handles --------------------------------------------


async def from_async_code() -> None:
    assert_type(await add.aadd_task(1, 2), Task)
    assert_type(await add.aadd_task(1, 2, timeout=5), Task | None)
    assert_type(await fetch.aadd_task("https://example.com", retries=2), Task)
    assert_type(await fetch.aadd_task("u", queue="web"), Task)
    await fetch.aadd_task(1)  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    await add.aadd_task(1, 2, priority="x")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]

    # An AsyncTask's add_task returns the Task from sync code and an
    # awaitable in a coroutine: Any, with the arguments checked all the same.
    assert_type(fetch.add_task("u"), Any)
    assert_type(echo_async.add_task(5, priority=1), Any)
    fetch.add_task("u", retry=3)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]
    echo_async.add_task("five")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]


# The async app: every handle is an AsyncTask ----------------------------------


@async_app.task("greet")
def greet(name: str) -> str:
    return f"hello {name}"


@async_app.task(echo=True)
async def agreet(self: AsyncTask, name: str) -> str:
    return name


_greet: AsyncTask[[str], str] = greet
_agreet: AsyncTask[[str], str] = agreet
greet.add_task(1, 2)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]
assert_type(async_app.task(echo=bool(1))(greet.func), Any)  # echo not a literal: untyped

# Routers ---------------------------------------------------------------------

router = SyncRouter()
arouter = AsyncRouter()


@router.task(description="a router task")
def routed(n: int) -> int:
    return n


@router.task
async def routed_async(n: int) -> int:
    return n


@arouter.task(echo=True)
def arouted(self: AsyncTask, n: int) -> int:
    return n


_routed: SyncTask[[int], int] = routed
_routed_async: AsyncTask[[int], int] = routed_async
_arouted: AsyncTask[[int], int] = arouted
routed.add_task("x")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]

# Pre-built tasks, chain steps ------------------------------------------------

assert_type(add(1, 2), BaseTaskCls)
assert_type(add(1, 2, timeout=10), BaseTaskCls)
add("x", "y")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
add(1, 2, priority="x")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]

# Steps are not checked: a chain step gets the previous result as its last argument.
chain(add.s(1, 2), add.s(10), notify)

# Celery's names --------------------------------------------------------------

assert_type(add.delay(1, 2), Task)
assert_type(notify.delay(1, channel="sms"), Task)
assert_type(fetch.delay("u"), Any)
add.delay("x", "y")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
add.delay(1, 2, priority=1)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]

assert_type(add.apply_async((1, 2)), Task)
assert_type(add.apply_async([1], {"b": 2}, countdown=10, queue="q", priority=1), Task)
assert_type(add.apply_async((1, 2), countdown=timedelta(seconds=3), eta=None), Task)
add.apply_async((1, 2), countdown="10")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
add.apply_async((1, 2), 10)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
