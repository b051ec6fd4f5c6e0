"""Run one claimed task and say how it ended.

The pipeline is: middlewares_before -> the function (a generator's items go
through generate_handler) -> middlewares_after -> decode -> a JSON check. A
sync task runs the whole pipeline in a worker thread, an async task on the
event loop. Pass ``executor=`` to the decorator to use a subclass.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import functools
import inspect
import json
import logging
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import close_old_connections
from django.utils import timezone

from django_qtasks import signals
from django_qtasks.awaitables import aresolve, resolve
from django_qtasks.conf import qtasks_settings
from django_qtasks.context import RunState
from django_qtasks.exceptions import ResultError, TaskCancel, TaskInterrupted, TaskTimeout
from django_qtasks.executors import task_exec_schema, task_priority_schema
from django_qtasks.models import Task, TaskStatus
from django_qtasks.plugins import TaskPluginTriggerError
from django_qtasks.plugins.depends import ainject, inject
from django_qtasks.plugins.pydantic import build_models, dump_model
from django_qtasks.task import BaseTask
from django_qtasks.tracer import active_tracer
from django_qtasks.validation import (
    is_storable,
    kept_cancel_reason,
    kept_traceback,
    storable_text,
    unstorable,
)

logger = logging.getLogger("django_qtasks.worker")

RunInThread = Callable[..., "asyncio.Future[Any]"]


class ThreadStuck(Exception):
    """A sync task's thread went on running after the worker stopped it."""


@dataclass
class Outcome:
    status: TaskStatus
    returning: Any = None
    traceback: str = ""
    cancel_reason: str = ""
    run_after: datetime | None = None
    #: The worker stopped the run (``RunState.interrupted``): not the task's outcome.
    interrupted: bool = False
    #: What the task raised, for the lifecycle signals (not stored).
    exception: BaseException | None = None
    #: Seconds of wall-clock and of CPU time of the attempt (None: it did not run).
    wall_time: float | None = None
    cpu_time: float | None = None

    def __post_init__(self) -> None:
        # Messages keep what they say, with characters that a database
        # refuses escaped: the run's real outcome is stored, not a failed write.
        self.traceback = kept_traceback(self.traceback)
        self.cancel_reason = kept_cancel_reason(self.cancel_reason)

    def unwritable(self, why: str) -> None:
        """Turn this outcome into an error: the database refused to store it (``why``)."""
        self.status = TaskStatus.ERROR
        self.returning = None
        self.traceback = storable_text(
            f"The outcome of this run could not be stored ({why}); the task ends in error "
            "and is not retried."
        )
        self.cancel_reason = ""
        self.run_after = None
        self.exception = None

    @property
    def summary(self) -> str:
        if self.traceback:
            return self.traceback.strip().splitlines()[-1]
        return self.cancel_reason


class ThreadGuard:
    """Lets the worker raise an exception inside a sync task's thread.

    Used only when a task ignores a cancel for the grace period or passes its
    max_time: the exception lands at the thread's next Python instruction.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread_id: int | None = None

    def enter(self) -> None:
        with self._lock:
            self._thread_id = threading.get_ident()

    def leave(self) -> None:
        with self._lock:
            self._thread_id = None

    def interrupt(self, exc_type: type[BaseException]) -> bool:
        with self._lock:
            if self._thread_id is None:
                return False
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self._thread_id), ctypes.py_object(exc_type)
            )
            return True


class TaskExecutor:
    #: False when the pipeline applies ``decode`` itself (QTasks-shaped executors).
    applies_decode = True
    #: Whether ``thread_main`` closes its thread's stale connections: a worker's
    #: pool thread does; immediate mode runs sync tasks in the caller's thread,
    #: whose connection (a test's transaction) is not the executor's to close.
    closes_connections = True
    # Set for QTasks-shaped middlewares, which read and change them.
    _args: list[Any]
    _kwargs: dict[str, Any]
    _result: Any

    def __init__(
        self, handle: BaseTask, record: Task, run: RunState, run_in_thread: RunInThread
    ) -> None:
        self.handle = handle
        self.record = record
        self.run = run
        self.run_in_thread = run_in_thread
        self.task = handle.for_run(run)
        self.guard = ThreadGuard()
        #: CPU seconds the task's code used: its thread's (sync), or the loop
        #: thread's during its steps (async; calls it hands to other threads
        #: are not counted).
        self.cpu_time = 0.0
        #: Whether this run has a span (``django_qtasks.tracer``), which its threads carry.
        self.traced = False

    async def execute(self) -> Outcome:
        """Run the task; a CancelledError escapes only when the worker shuts down.

        ``ThreadStuck`` escapes when the run was interrupted and its thread
        did not stop. With tracing on, the attempt has its span, current
        from ``task_started`` to the outcome.
        """
        tracer = active_tracer()
        if tracer is None:
            return await self.run_attempt()
        with tracer.running(self.record) as span:
            self.traced = True
            outcome = await self.run_attempt()
            span.ended(outcome)
        return outcome

    def in_context(self, function: Callable[[], Any]) -> Callable[[], Any]:
        """``function``, to run in a thread in a copy of this coroutine's context when the
        run is traced (``run_in_thread`` does not carry it): the run's span is current there.
        """
        if not self.traced:
            return function
        return functools.partial(contextvars.copy_context().run, function)

    async def run_attempt(self) -> Outcome:
        await self.send_started()
        started = time.monotonic()
        outcome = await self.run_pipeline()
        outcome.wall_time = time.monotonic() - started
        outcome.cpu_time = self.cpu_time
        return outcome

    async def run_pipeline(self) -> Outcome:
        try:
            try:
                if self.runs_on_loop():
                    value = await self.with_deadline(CpuTimed(self.pipeline_async(), self.add_cpu))
                else:
                    value = await self.in_thread(self.cpu_timed(self.pipeline_sync))
            except TaskPluginTriggerError as exc:
                value = await self.plugin_error_result(exc)
            return Outcome(TaskStatus.SUCCESS, returning=self.store(value))
        except TaskCancel as exc:
            return Outcome(TaskStatus.CANCEL, cancel_reason=self.cancel_reason(exc))
        except TaskInterrupted:
            return self.interrupted()
        except asyncio.CancelledError:
            if self.run.cancel_reason is None:
                if self.run.interrupted is not None:
                    return self.interrupted()
                raise
            return Outcome(TaskStatus.CANCEL, cancel_reason=self.run.cancel_reason)
        except ResultError as exc:
            return Outcome(TaskStatus.ERROR, traceback=traceback.format_exc(), exception=exc)
        except ThreadStuck:
            raise
        except Exception as exc:
            return self.failure(exc)

    async def plugin_error_result(self, exc: TaskPluginTriggerError) -> Any:
        """The result a plugin gives for ``ctx.plugin_error()``; re-raises when none does."""
        answer = await self.handle.app.plugins.atrigger(
            "task_executor_run_task_trigger_error",
            task_executor=self,
            task_func=self.handle,
            task_broker=self.record,
            e=exc,
        )
        if answer is None or "result" not in answer:
            raise exc
        return answer["result"]

    def add_cpu(self, seconds: float) -> None:
        self.cpu_time += seconds

    def cpu_timed(self, function: Callable[[], Any]) -> Callable[[], Any]:
        """``function``, counting the CPU time of the thread it runs in (``cpu_time``)."""

        def timed() -> Any:
            start = time.thread_time()
            try:
                return function()
            finally:
                self.add_cpu(time.thread_time() - start)

        return timed

    def runs_on_loop(self) -> bool:
        """Whether the pipeline runs on the event loop (else in a worker thread)."""
        return self.handle.is_async

    def interrupted(self) -> Outcome:
        return Outcome(TaskStatus.ERROR, traceback=self.run.interrupted or "", interrupted=True)

    async def outcome_saved(self, outcome: Outcome) -> None:
        """Called after the worker has stored ``outcome`` (or given up); a hook for subclasses.

        Not called when the run goes back to the queue (worker shutdown). The
        django.tasks backend sends ``task_finished`` from here, so that its
        receivers read the stored result.
        """

    # Lifecycle signals (django_qtasks.signals), sent where the ORM may be used ----

    async def send_started(self) -> None:
        started = signals.task_started
        if started.has_listeners(self.handle):
            send = functools.partial(signals.send, started, self.handle, task=self.record)
            await self.run_in_thread(self.thread_main, self.in_context(send))

    async def send_ended(self, outcome: Outcome) -> None:
        """After the worker wrote ``outcome``: the signals of how this attempt ended."""
        signal, details = ENDING_SIGNALS[outcome.status], outcome_details(outcome)
        final = outcome.status != TaskStatus.RETRY
        if not signal.has_listeners(self.handle) and not (
            final and signals.task_finished.has_listeners(self.handle)
        ):
            return
        record = self.record
        record.status, record.returning = outcome.status, outcome.returning
        record.traceback, record.finished_at = outcome.traceback, timezone.now()
        if outcome.status == TaskStatus.CANCEL:
            record.cancel_reason = outcome.cancel_reason

        def send_all() -> None:
            signals.send(signal, self.handle, task=record, **details)
            if final:
                signals.send(signals.task_finished, self.handle, task=record)

        await self.run_in_thread(self.thread_main, send_all)

    def cancel_reason(self, exc: TaskCancel) -> str:
        # An external cancel's reason was recorded by whoever asked for it.
        return self.run.cancel_reason if self.run.cancel_reason is not None else exc.reason

    # The pipeline -----------------------------------------------------------

    def pipeline_sync(self) -> Any:
        args, kwargs = self.before(resolve)
        with contextlib.ExitStack() as stack:  # the task's Depends, left when it ends
            kwargs = inject(self.handle.func, self.handle.echo, args, kwargs, stack)
            call_args = (self.task, *args) if self.handle.echo else tuple(args)
            value = self.handle.func(*call_args, **kwargs)
            if inspect.isgenerator(value):
                items = []
                for item in value:
                    items.append(resolve(self.handle_item(item)))
                    self.run.set_progress(list(items))
                    self.run.raise_if_stopped()
                value = items
        return self.after(value, resolve)

    async def pipeline_async(self) -> Any:
        args, kwargs = await self.abefore()
        async with contextlib.AsyncExitStack() as stack:  # the task's Depends
            kwargs = await ainject(self.handle.func, self.handle.echo, args, kwargs, stack)
            call_args = (self.task, *args) if self.handle.echo else tuple(args)
            value = self.handle.func(*call_args, **kwargs)
            if inspect.isasyncgen(value):
                items = []
                async for item in value:
                    items.append(await aresolve(self.handle_item(item)))
                    self.run.set_progress(list(items))
                value = items
            else:
                value = await value
        for middleware in self.handle.middlewares_after:
            value = await self.amiddleware_after(middleware, value)
        return value

    def handle_item(self, item: Any) -> Any:
        handler = self.handle.generate_handler
        return handler(item) if handler is not None else item

    def before(self, resolver: Callable[[Any], Any]) -> tuple[list[Any], dict[str, Any]]:
        args, kwargs = list(self.record.args), dict(self.record.kwargs)
        for middleware in self.handle.middlewares_before:
            if isinstance(middleware, type):  # QTasks' TaskMiddleware: built with the executor
                self._args, self._kwargs = args, kwargs
                used = resolver(middleware(self)()) or self
                args, kwargs = list(used._args), dict(used._kwargs)
                continue
            changed = resolver(middleware(self.task, args, kwargs))
            if changed is not None:
                args, kwargs = list(changed[0]), dict(changed[1])
        return build_models(self.handle.func, self.handle.echo, args, kwargs)

    async def abefore(self) -> tuple[list[Any], dict[str, Any]]:
        args, kwargs = list(self.record.args), dict(self.record.kwargs)
        for middleware in self.handle.middlewares_before:
            if isinstance(middleware, type):  # QTasks' TaskMiddleware: built with the executor
                self._args, self._kwargs = args, kwargs
                used = await aresolve(middleware(self)()) or self
                args, kwargs = list(used._args), dict(used._kwargs)
                continue
            changed = await aresolve(middleware(self.task, args, kwargs))
            if changed is not None:
                args, kwargs = list(changed[0]), dict(changed[1])
        return build_models(self.handle.func, self.handle.echo, args, kwargs)

    def after(self, value: Any, resolver: Callable[[Any], Any]) -> Any:
        for middleware in self.handle.middlewares_after:
            if isinstance(middleware, type):
                self._result = value
                value = (resolver(middleware(self)()) or self)._result
            else:
                value = resolver(middleware(self.task, value))
        return value

    async def amiddleware_after(self, middleware: Any, value: Any) -> Any:
        if isinstance(middleware, type):
            self._result = value
            return (await aresolve(middleware(self)()) or self)._result
        return await aresolve(middleware(self.task, value))

    # What QTasks' middlewares read from the executor they are built with.

    @property
    def task_func(self) -> Any:
        return task_exec_schema(self.handle, self.task)

    @property
    def task_broker(self) -> Any:
        return task_priority_schema(self.record)

    def store(self, value: Any) -> Any:
        """Apply ``decode`` and make sure the result can be stored as JSON.

        A decode that gives JSON text (``decode=json.dumps``) stores the value
        that text encodes: QTasks reads results back with ``json.loads``.
        """
        value = dump_model(value)
        if self.handle.decode is not None:
            if self.applies_decode:
                try:
                    value = self.handle.decode(value)
                except Exception as exc:
                    raise ResultError(
                        f"decode={self.handle.decode!r} failed on the task's result: {exc!r}"
                    ) from exc
            value = parsed_json_text(value)
        try:
            text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise ResultError(
                f"The task's result is not JSON ({exc}); return plain values or pass decode= "
                "to turn the result into JSON."
            ) from exc
        problem = unstorable(value, "result", text)
        if problem:
            # Not a failure of the task's code: running it again would give
            # the same value, so it ends here, unretried (as a result that is not JSON).
            raise ResultError(
                f"The result cannot be stored: it contains {problem}. No database stores NUL "
                "characters and lone surrogates alike; escape or remove them, or pass decode= "
                "to turn the result into storable JSON."
            )
        size = len(text.encode())
        if size > qtasks_settings.RESULT_MAX_BYTES:
            raise ResultError(
                f"The task's result is {size} bytes of JSON, over the limit of "
                f"{qtasks_settings.RESULT_MAX_BYTES} bytes (QTASKS['RESULT_MAX_BYTES']); store "
                "large data elsewhere (a file, a model) and return a reference to it."
            )
        return value

    # Time limits and stops -----------------------------------------------------

    async def with_deadline(self, coro: Awaitable[Any]) -> Any:
        max_time = self.handle.max_time
        if max_time is None:
            return await coro
        inner = asyncio.ensure_future(coro)
        try:
            done, _ = await asyncio.wait({inner}, timeout=max_time)
        except asyncio.CancelledError:
            inner.cancel()
            await asyncio.wait({inner})
            raise
        if inner in done:
            return inner.result()
        self.run.request_timeout(max_time)
        inner.cancel()
        await asyncio.wait({inner})
        raise TaskTimeout(f"Task exceeded its max_time of {max_time:g}s")

    async def in_thread(self, function: Callable[[], Any]) -> Any:
        future = self.run_in_thread(self.thread_main, self.in_context(function))
        # A stopped run's future ends with the TaskCancel (or TaskTimeout) the
        # thread was interrupted with, after nobody awaits it any more: retrieve
        # it, or asyncio prints "Future exception was never retrieved".
        future.add_done_callback(retrieve_exception)
        try:
            done, _ = await asyncio.wait({future}, timeout=self.handle.max_time)
        except asyncio.CancelledError:
            if self.run.cancel_reason is not None:
                await self.stop_thread(future, qtasks_settings.CANCEL_GRACE)
                raise TaskCancel(self.run.cancel_reason) from None
            if self.run.interrupted is None:
                raise
            # Stopped by the worker (shutdown, or taken over): its row is
            # released only once its thread has stopped, never while it runs.
            if not await self.stop_thread(future, qtasks_settings.CANCEL_GRACE):
                raise ThreadStuck(self.record.uuid) from None
            # What it ended with counts (a body that completed is not run again).
            return future.result()
        if future in done:
            return future.result()
        assert self.handle.max_time is not None
        self.run.request_timeout(self.handle.max_time)
        await self.stop_thread(future, grace=0)
        raise TaskTimeout(f"Task exceeded its max_time of {self.handle.max_time:g}s")

    def thread_main(self, function: Callable[[], Any]) -> Any:
        if self.closes_connections:
            close_old_connections()
        self.guard.enter()
        try:
            return function()
        finally:
            self.guard.leave()
            if self.closes_connections:
                close_old_connections()

    async def stop_thread(self, future: asyncio.Future[Any], grace: float) -> bool:
        """Give the thread ``grace`` seconds to notice ``run.stop``, then interrupt it.

        Whether it stopped.
        """
        done, _ = await asyncio.wait({future}, timeout=grace)
        if done:
            return True
        error = type(self.run.stop_error) if self.run.stop_error else TaskCancel
        self.guard.interrupt(error)
        done, _ = await asyncio.wait({future}, timeout=1.0)
        self.run.thread_left = not done
        if not done and self.run.interrupted is None:
            logger.warning(
                "Task %s is still running in its thread after being stopped (blocked in a "
                "call that cannot be interrupted); its record is closed, its thread is left.",
                self.record.uuid,
                extra={"task_uuid": str(self.record.uuid)},
            )
        return bool(done)

    # Failure -------------------------------------------------------------------

    def failure(self, exc: Exception) -> Outcome:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        retry_on = tuple(self.handle.retry_on_exc)
        if self.record.attempts < self.record.max_attempts and (
            not retry_on or isinstance(exc, retry_on)
        ):
            return Outcome(
                TaskStatus.RETRY, traceback=text, run_after=self.retry_at(), exception=exc
            )
        return Outcome(TaskStatus.ERROR, traceback=text, exception=exc)

    def retry_at(self) -> datetime:
        base = float(qtasks_settings.RETRY_BACKOFF)
        longest = float(qtasks_settings.RETRY_BACKOFF_MAX)
        delay = min(base * 2 ** (self.record.attempts - 1), longest)
        return timezone.now() + timedelta(seconds=delay)


#: The signal sent when an attempt ends with each status.
ENDING_SIGNALS = {
    TaskStatus.SUCCESS: signals.task_succeeded,
    TaskStatus.RETRY: signals.task_retried,
    TaskStatus.ERROR: signals.task_failed,
    TaskStatus.CANCEL: signals.task_cancelled,
}


def outcome_details(outcome: Outcome) -> dict[str, Any]:
    """The keyword arguments of an ending's signal, besides ``task``."""
    if outcome.status == TaskStatus.SUCCESS:
        return {"result": outcome.returning}
    if outcome.status == TaskStatus.RETRY:
        return {"exception": outcome.exception}
    if outcome.status == TaskStatus.ERROR:
        return {"exception": outcome.exception, "traceback": outcome.traceback}
    return {"reason": outcome.cancel_reason}


class CpuTimed:
    """Awaits a coroutine, telling ``add`` the CPU time its steps take on this thread."""

    def __init__(self, coroutine: Awaitable[Any], add: Callable[[float], None]) -> None:
        self.coroutine = coroutine
        self.add = add

    def __await__(self) -> Generator[Any, Any, Any]:
        steps = self.coroutine.__await__()
        send: Callable[[Any], Any] = steps.send
        value: Any = None
        while True:
            start = time.thread_time()
            try:
                signal = send(value)
            except StopIteration as stop:
                return stop.value
            finally:
                self.add(time.thread_time() - start)
            try:
                value = yield signal
                send = steps.send
            except BaseException as exc:  # thrown in (a cancel): the coroutine's to handle
                value, send = exc, steps.throw


def retrieve_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class QTasksExecutorRun(TaskExecutor):
    """Runs a QTasks-shaped ``executor=`` class (``django_qtasks.executors``) in a run.

    The class is built inside the run, so that a constructor that raises
    fails the task with its own traceback; its ``execute()`` replaces the
    pipeline, and this keeps max_time, cancel, retry and storing.
    """

    applies_decode = False

    def __init__(
        self,
        handle: BaseTask,
        record: Task,
        run: RunState,
        run_in_thread: RunInThread,
        executor_class: type[Any],
    ) -> None:
        super().__init__(handle, record, run, run_in_thread)
        self.executor_class = executor_class

    def runs_on_loop(self) -> bool:
        return inspect.iscoroutinefunction(self.executor_class.execute)

    def build(self) -> Any:
        # With keywords, as QTasks' workers build it: a constructor that takes
        # ``**kwargs`` or keyword-only parameters works here as it does there.
        return self.executor_class(
            task_func=self.task_func,
            task_broker=self.task_broker,
            log=logging.getLogger("django_qtasks.executor"),
            plugins=dict(self.handle.app.plugins.by_trigger),
        )

    def pipeline_sync(self) -> Any:
        return resolve(self.build().execute())

    async def pipeline_async(self) -> Any:
        return await aresolve(self.build().execute())


def executor_for(
    handle: BaseTask, record: Task, run: RunState, run_in_thread: RunInThread
) -> TaskExecutor:
    """The executor of one run: ours (or a subclass), or a QTasks-shaped class run by
    ``QTasksExecutorRun``."""
    executor_class = handle.executor or TaskExecutor
    if isinstance(executor_class, type) and issubclass(executor_class, TaskExecutor):
        return executor_class(handle, record, run, run_in_thread)
    return QTasksExecutorRun(handle, record, run, run_in_thread, executor_class)


def parsed_json_text(value: Any) -> Any:
    """The value that ``value`` encodes when it is JSON text, else ``value``.

    Text whose value no database stores (``json.dumps("a\\x00b")`` escapes the
    NUL) is kept as text: that is what such a decode is for.
    """
    if isinstance(value, (str, bytes)):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return parsed if is_storable(parsed) else value
    return value
