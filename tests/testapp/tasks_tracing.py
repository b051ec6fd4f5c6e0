"""Tasks for tests/test_tracing.py, and the spans of a worker process written to a file."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from typing import Any

from django_qtasks import AsyncTask, SyncTask, app, task


@app.task(echo=True)
def traced_sync(self: SyncTask, queue: str) -> str:
    """Makes a span of its own and enqueues a task inside it, from its worker thread."""
    from opentelemetry import trace

    with trace.get_tracer("tests").start_as_current_span("sync work"):
        self.add_task("from sync", task_name="traced_leaf", queue=queue)
    return "done"


@app.task(echo=True)
async def traced_async(self: AsyncTask, queue: str) -> str:
    """The same, on the event loop."""
    from opentelemetry import trace

    with trace.get_tracer("tests").start_as_current_span("async work"):
        await self.add_task("from async", task_name="traced_leaf", queue=queue)
    return "done"


@task
def traced_leaf(label: str) -> str:
    return label


@task
def reads_baggage(key: str) -> str | None:
    from opentelemetry import baggage

    value = baggage.get_baggage(key)
    return None if value is None else str(value)


def span_summary(span: Any) -> dict[str, Any]:
    """What the tests read of a finished span (``opentelemetry.sdk.trace.ReadableSpan``)."""
    context, parent = span.context, span.parent
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_id": format(parent.span_id, "016x") if parent is not None else None,
        "attributes": {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in (span.attributes or {}).items()
        },
        "status": span.status.status_code.name,
        "description": span.status.description,
        "events": [
            {"name": event.name, "attributes": dict(event.attributes or {})}
            for event in span.events
        ],
        "links": [format(link.context.span_id, "016x") for link in span.links],
    }


# --- tests/test_tracing.py: a worker process writes the spans it ends to a file ---

if os.environ.get("QTASKS_TEST_SPANS_FILE"):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class FileExporter(SpanExporter):
        """Each span, as it ends, a JSON line of ``span_summary``."""

        lock = threading.Lock()

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            lines = "".join(json.dumps(span_summary(span)) + "\n" for span in spans)
            with self.lock, open(os.environ["QTASKS_TEST_SPANS_FILE"], "a") as stream:
                stream.write(lines)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    if os.environ.get("QTASKS_TEST_SPANS_HELD"):
        # Held until the process flushes them as it leaves (no timer fires within a test).
        held = BatchSpanProcessor(FileExporter(), schedule_delay_millis=3_600_000)
        provider.add_span_processor(held)
    else:
        provider.add_span_processor(SimpleSpanProcessor(FileExporter()))
    trace.set_tracer_provider(provider)
