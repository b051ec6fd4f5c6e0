"""OpenTelemetry traces of tasks: a span where a task is enqueued, a child span for each attempt.

On with ``QTASKS["OPENTELEMETRY"] = True`` and opentelemetry-api installed
(``pip install 'django-qtasks[opentelemetry]'``); the app config's ``ready()``
plugs ``OpenTelemetryTracer`` into ``django_qtasks.tracer.TRACER``. Spans go
to the global tracer provider, which the project sets up (the SDK, an
exporter) in its web processes and its workers alike.

- Enqueueing: a PRODUCER span ``send <task_name>`` around the row's insert,
  whose context (W3C ``traceparent``, ``tracestate``, ``baggage``) is stored
  in ``Task.trace_context``. ``add_tasks`` of several rows: a PRODUCER span
  ``create <task_name>`` per row (its context stored in that row), and a
  CLIENT span ``send <task_name>`` (``send`` when the rows' tasks differ)
  around the insert, linked to each of them.
- Each attempt: a CONSUMER span ``process <task_name>``, child of the stored
  context (and linked to it), current while the task runs: on the event
  loop for an async task, in its thread for a sync one. Spans that the
  task's code makes nest under it, and tasks it enqueues carry it.

Attributes follow OpenTelemetry's messaging conventions (``messaging.*``),
with ours under ``qtasks.*`` (as the Sentry tags of ``django_qtasks.sentry``).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from django_qtasks.statuses import TaskStatus

if TYPE_CHECKING:
    from django_qtasks.models import Task
    from django_qtasks.worker.executor import Outcome

#: ``messaging.system``, and the instrumentation scope's name.
SYSTEM = "django_qtasks"

#: ``qtasks.status`` of an attempt that the worker stopped (shutdown, take-over):
#: the task goes back to the queue, this attempt has no outcome of its own.
INTERRUPTED = "interrupted"

FAILED = (TaskStatus.ERROR, TaskStatus.RETRY)

#: The longest a process that leaves waits for its spans to be exported.
FLUSH_TIMEOUT_MILLIS = 5000


def package_version() -> str | None:
    try:
        return importlib.metadata.version("django-qtasks")
    except importlib.metadata.PackageNotFoundError:
        return None


class OpenTelemetryTracer:
    """The spans of enqueueing and runs (``django_qtasks.tracer.Tracer``)."""

    def __init__(self) -> None:
        # A proxy until the project sets a tracer provider, then that provider's.
        self.tracer = trace.get_tracer(SYSTEM, package_version())

    @contextmanager
    def sending(self, records: Sequence[Task]) -> Iterator[None]:
        """Spans around the insert of ``records``; each row gets its creation context."""
        if len(records) == 1:
            (record,) = records
            with (
                self.tracer.start_as_current_span(
                    f"send {record.task_name}",
                    context=parent_of(record),
                    kind=SpanKind.PRODUCER,
                    attributes=message_attributes(record, "send"),
                ) as span,
                failures_typed(span),
            ):
                record.trace_context = current_carrier()
                yield
            return
        links = []
        for record in records:
            with self.tracer.start_as_current_span(
                f"create {record.task_name}",
                context=parent_of(record),
                kind=SpanKind.PRODUCER,
                attributes=message_attributes(record, "create"),
            ) as span:
                record.trace_context = current_carrier()
            links.append(Link(span.get_span_context()))
        names = {record.task_name for record in records}
        queues = {record.queue for record in records}
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.batch.message_count": len(records),
        }
        if len(queues) == 1:
            attributes["messaging.destination.name"] = queues.pop()
        if len(names) == 1:
            attributes["qtasks.task_name"] = next(iter(names))
        with (
            self.tracer.start_as_current_span(
                f"send {names.pop()}" if len(names) == 1 else "send",
                kind=SpanKind.CLIENT,
                links=links,
                attributes=attributes,
            ) as span,
            failures_typed(span),
        ):
            yield

    def running(self, record: Task) -> RunTrace:
        return RunTrace(self.tracer, record)

    def flush(self) -> None:
        # The SDK's provider has force_flush; the API's own (no SDK) holds nothing.
        force_flush = getattr(trace.get_tracer_provider(), "force_flush", None)
        if force_flush is not None:
            force_flush(FLUSH_TIMEOUT_MILLIS)


class RunTrace:
    """The span of one attempt, current between ``__enter__`` and ``__exit__``.

    Entered and left by the coroutine that runs the attempt (the executor
    carries its context into a sync task's thread).
    """

    def __init__(self, tracer: trace.Tracer, record: Task) -> None:
        self.tracer = tracer
        self.record = record

    def __enter__(self) -> RunTrace:
        record = self.record
        # The stored context, baggage included; none: a trace of its own.
        parent = propagate.extract(stored_carrier(record))
        created = trace.get_current_span(parent).get_span_context()
        self.span: Span = self.tracer.start_span(
            f"process {record.task_name}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=run_attributes(record),
            links=[Link(created)] if created.is_valid else None,
        )
        self.token = otel_context.attach(trace.set_span_in_context(self.span, parent))
        return self

    def ended(self, outcome: Outcome) -> None:
        span = self.span
        if outcome.interrupted:
            span.set_attribute("qtasks.status", INTERRUPTED)
            return
        span.set_attribute("qtasks.status", str(outcome.status))
        if outcome.status in FAILED:
            exception = outcome.exception
            span.set_attribute(
                "error.type", type_name(type(exception)) if exception is not None else "_OTHER"
            )
            if exception is not None:
                span.record_exception(exception)
            span.set_status(Status(StatusCode.ERROR, outcome.summary))
        elif outcome.status == TaskStatus.CANCEL:
            span.set_attribute("qtasks.cancel_reason", outcome.cancel_reason)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if exc is not None:
                # The worker stopped the run before it had an outcome (shutdown).
                self.span.set_attribute("qtasks.status", INTERRUPTED)
        finally:
            otel_context.detach(self.token)
            self.span.end()


@contextmanager
def failures_typed(span: Span) -> Iterator[None]:
    """``error.type`` on ``span`` for an exception that leaves the block (the span records it)."""
    try:
        yield
    except BaseException as exc:
        span.set_attribute("error.type", type_name(type(exc)))
        raise


def parent_of(record: Task) -> otel_context.Context | None:
    """The parent of a row's enqueue span: the context the row already carries (a
    chain's next step carries its chain's), else the current one (None)."""
    carrier = stored_carrier(record)
    if not carrier:
        return None
    stored = propagate.extract(carrier)
    return stored if trace.get_current_span(stored).get_span_context().is_valid else None


def stored_carrier(record: Task) -> dict[str, str]:
    """``record.trace_context``, its text entries only (a row may be written by hand)."""
    stored = record.trace_context
    if not isinstance(stored, dict):
        return {}
    return {key: value for key, value in stored.items() if isinstance(value, str)}


def current_carrier() -> dict[str, str]:
    """The current context as W3C headers (none when there is no valid span)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def message_attributes(record: Task, operation: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": record.queue,
        "messaging.message.id": str(record.uuid),
        "qtasks.task_name": record.task_name,
        "qtasks.priority": record.priority,
    }
    if record.run_after is not None:
        attributes["qtasks.run_after"] = record.run_after.isoformat()
    if record.tags:
        attributes["qtasks.tags"] = [str(tag) for tag in record.tags]
    return attributes


def run_attributes(record: Task) -> dict[str, Any]:
    attributes = message_attributes(record, "process")
    attributes.pop("qtasks.run_after", None)
    attributes["qtasks.attempt"] = record.attempts
    attributes["qtasks.max_attempts"] = record.max_attempts
    if record.worker:
        attributes["messaging.client.id"] = record.worker
    waited = wait_time(record)
    if waited is not None:
        attributes["qtasks.wait_time"] = waited
    return attributes


def wait_time(record: Task) -> float | None:
    """Seconds this attempt waited in the queue: from when it was due (enqueued, or
    its ``delay``/``eta``/retry backoff over) to its start."""
    if record.started_at is None or record.created_at is None:
        return None
    due = max(record.created_at, record.run_after or record.created_at)
    return max(0.0, (record.started_at - due).total_seconds())


def type_name(cls: type[BaseException]) -> str:
    """``ValueError``, ``myapp.errors.FeedError``: the class as ``error.type`` names it."""
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"
