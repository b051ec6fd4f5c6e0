"""OpenTelemetry tracing (django_qtasks.tracing), read back with the SDK's exporters.

In immediate mode the spans are ended in this process, into an in-memory
exporter; with a real worker process, the worker writes the spans it ends to
a file (tests/testapp/tasks_tracing.py), and the run's span must be the child
of the enqueue span of this process's trace.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from django_qtasks import app, chain
from django_qtasks.apps import plug_tracing
from django_qtasks.checks import check_settings
from django_qtasks.models import Task
from django_qtasks.testing import immediate, run_pending, with_qtasks
from django_qtasks.tracer import TRACER, active_tracer
from django_qtasks.tracing import OpenTelemetryTracer
from tests.conftest import wait_until
from tests.testapp import tasks, tasks_testing, tasks_tracing
from tests.testapp.tasks_tracing import span_summary

Span = dict[str, Any]

#: Every span this process ends while a test runs (the provider is set once per process).
EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="session")
def tracer_provider() -> TracerProvider:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    return provider


@pytest.fixture
def traced(tracer_provider: TracerProvider) -> Iterator[None]:
    """QTASKS["OPENTELEMETRY"] on for the test, its spans (only) in ``EXPORTER``."""
    EXPORTER.clear()
    with with_qtasks(OPENTELEMETRY=True):
        yield
    EXPORTER.clear()


def finished() -> list[Span]:
    return [span_summary(span) for span in EXPORTER.get_finished_spans()]


def named(spans: list[Span], name: str) -> list[Span]:
    return [span for span in spans if span["name"] == name]


def one(spans: list[Span], name: str) -> Span:
    found = named(spans, name)
    assert len(found) == 1, f"{len(found)} spans named {name!r} in {[s['name'] for s in spans]}"
    return found[0]


def carried(row: Task) -> tuple[str, str]:
    """The trace and span ids of the ``traceparent`` stored in ``row`` (its flags aside)."""
    stored = Task.objects.get(pk=row.pk).trace_context
    assert set(stored) == {"traceparent"}
    _version, trace_id, span_id, _flags = stored["traceparent"].split("-")
    return trace_id, span_id


def ids(span: Span) -> tuple[str, str]:
    return span["trace_id"], span["span_id"]


def request_span() -> Any:
    """A span of this process, as a web request's would be."""
    return trace.get_tracer("tests").start_as_current_span("request")


# --- Enabling ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_off_by_default_nothing_plugged_in_nothing_stored(tracer_provider):
    EXPORTER.clear()
    assert active_tracer() is None
    with immediate(), request_span():
        row = tasks.echo.add_task(1)
    assert row.status == "success"
    assert Task.objects.get(pk=row.pk).trace_context == {}
    assert [span["name"] for span in finished()] == ["request"]
    EXPORTER.clear()


def test_the_setting_plugs_the_tracer_in_and_out():
    assert TRACER == []
    with with_qtasks(OPENTELEMETRY=True):
        assert isinstance(active_tracer(), OpenTelemetryTracer)
        with with_qtasks(OPENTELEMETRY=False):
            assert active_tracer() is None
        assert isinstance(active_tracer(), OpenTelemetryTracer)
    assert active_tracer() is None
    # A broken QTASKS does not raise here: E001 reports it.
    with override_settings(QTASKS={"OPENTELEMETRY": "yes"}):
        assert active_tracer() is None
        assert [error.id for error in check_settings()] == ["django_qtasks.E001"]


@pytest.fixture
def without_opentelemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as if opentelemetry were not installed, for the imports to come."""
    for name in list(sys.modules):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.delitem(sys.modules, "django_qtasks.tracing")


def test_on_without_opentelemetry_is_e007_and_changes_nothing(without_opentelemetry):
    with with_qtasks(OPENTELEMETRY=True):
        errors = check_settings()
        assert active_tracer() is None
    assert [error.id for error in errors] == ["django_qtasks.E007"]
    assert errors[0].msg == (
        "QTASKS['OPENTELEMETRY'] is True, and OpenTelemetry cannot be imported "
        "(ModuleNotFoundError: import of opentelemetry halted; None in sys.modules): tasks "
        "would be enqueued and run without spans."
    )
    assert errors[0].hint.startswith("pip install 'django-qtasks[opentelemetry]'")
    plug_tracing()
    assert active_tracer() is None


def test_on_with_opentelemetry_passes_the_checks(tracer_provider):
    with with_qtasks(OPENTELEMETRY=True):
        assert check_settings() == []


# --- Immediate mode: the run in this process ----------------------------------------------------


@pytest.mark.django_db
def test_the_run_is_a_child_of_the_enqueue_span_in_the_callers_trace(traced, qtasks_immediate):
    User.objects.create(username="ann")
    with request_span():
        row = tasks_testing.count_users.add_task("ann")
    spans = finished()
    request = one(spans, "request")
    send = one(spans, "send count_users")
    process = one(spans, "process count_users")
    assert {span["trace_id"] for span in spans} == {request["trace_id"]}
    assert (send["kind"], send["parent_id"]) == ("PRODUCER", request["span_id"])
    assert (process["kind"], process["parent_id"]) == ("CONSUMER", send["span_id"])
    assert process["links"] == [send["span_id"]]  # the creation context, as the conventions ask
    assert carried(row) == ids(send)

    assert send["attributes"] == {
        "messaging.system": "django_qtasks",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": row.queue,
        "messaging.message.id": str(row.uuid),
        "qtasks.task_name": "count_users",
        "qtasks.priority": 0,
    }
    attributes = process["attributes"]
    assert attributes.pop("qtasks.wait_time") >= 0
    assert attributes == {
        "messaging.system": "django_qtasks",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": row.queue,
        "messaging.message.id": str(row.uuid),
        "messaging.client.id": row.worker,
        "qtasks.task_name": "count_users",
        "qtasks.priority": 0,
        "qtasks.attempt": 1,
        "qtasks.max_attempts": 1,
        "qtasks.status": "success",
    }
    assert (process["status"], process["events"]) == ("UNSET", [])


@pytest.mark.django_db
def test_a_task_enqueued_outside_any_span_starts_a_trace(traced, qtasks_immediate):
    tasks.echo.add_task(1)
    spans = finished()
    send, process = one(spans, "send echo"), one(spans, "process echo")
    assert send["parent_id"] is None
    assert process["parent_id"] == send["span_id"]
    assert process["trace_id"] == send["trace_id"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("handle", "work"),
    [(tasks_tracing.traced_sync, "sync work"), (tasks_tracing.traced_async, "async work")],
)
def test_the_run_span_is_current_in_the_tasks_code_and_its_subtasks(
    traced, qtasks_immediate, handle, work
):
    row = handle.add_task("default")
    assert row.status == "success"
    spans = finished()
    process = one(spans, f"process {handle.task_name}")
    inner = one(spans, work)
    send_leaf, leaf = one(spans, "send traced_leaf"), one(spans, "process traced_leaf")
    assert inner["parent_id"] == process["span_id"]
    assert send_leaf["parent_id"] == inner["span_id"]
    assert leaf["parent_id"] == send_leaf["span_id"]
    assert {span["trace_id"] for span in spans} == {process["trace_id"]}


@pytest.mark.django_db
def test_a_failure_records_its_exception_and_sets_the_status_error(traced, qtasks_immediate):
    row = tasks.retry_wrong_exc.add_task()
    assert row.status == "error"
    process = one(finished(), "process retry_wrong_exc")
    assert (process["status"], process["description"]) == ("ERROR", "ValueError: not retried")
    assert process["attributes"]["qtasks.status"] == "error"
    assert process["attributes"]["error.type"] == "ValueError"
    [event] = process["events"]
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "ValueError"
    assert event["attributes"]["exception.message"] == "not retried"


@pytest.mark.django_db
def test_each_attempt_is_a_span_of_its_own_under_the_same_enqueue_span(traced, qtasks_immediate):
    row = tasks_testing.fails_until_user.add_task("ivy")
    assert (row.status, row.attempts) == ("success", 2)
    spans = finished()
    send = one(spans, "send fails_until_user")
    first, second = named(spans, "process fails_until_user")
    assert first["parent_id"] == second["parent_id"] == send["span_id"]
    assert first["span_id"] != second["span_id"]
    assert [first["attributes"]["qtasks.attempt"], second["attributes"]["qtasks.attempt"]] == [1, 2]
    assert first["attributes"]["qtasks.status"] == "retry"
    assert first["status"] == "ERROR"
    assert first["attributes"]["error.type"] == "LookupError"
    assert [event["name"] for event in first["events"]] == ["exception"]
    assert second["attributes"]["qtasks.status"] == "success"
    assert (second["status"], second["events"]) == ("UNSET", [])


@pytest.mark.django_db
def test_a_cancel_is_marked_and_is_no_error(traced, qtasks_immediate):
    row = tasks_testing.cancels_itself.add_task()
    assert row.status == "cancel"
    process = one(finished(), "process cancels_itself")
    assert process["attributes"]["qtasks.status"] == "cancel"
    assert process["attributes"]["qtasks.cancel_reason"] == "not today"
    assert process["status"] == "UNSET"


@pytest.mark.django_db
def test_add_tasks_makes_a_create_span_per_row_and_one_send_span(traced, qtasks_immediate):
    with request_span():
        rows = app.add_tasks([tasks.echo.s(1), tasks.echo.s(2)])
    spans = finished()
    request = one(spans, "request")
    creates = named(spans, "create echo")
    send = one(spans, "send echo")
    processes = named(spans, "process echo")
    assert [span["kind"] for span in creates] == ["PRODUCER", "PRODUCER"]
    assert all(span["parent_id"] == request["span_id"] for span in [*creates, send])
    assert send["kind"] == "CLIENT"
    assert send["links"] == [span["span_id"] for span in creates]
    assert send["attributes"]["messaging.batch.message_count"] == 2
    assert [carried(row) for row in rows] == [ids(span) for span in creates]
    assert sorted(span["parent_id"] for span in processes) == sorted(
        span["span_id"] for span in creates
    )


@pytest.mark.django_db
def test_a_chains_next_step_joins_the_chains_trace(traced, qtasks_immediate):
    with request_span():
        chain(tasks.push.s(1, []), tasks.push.s(2)).add_task()
    spans = finished()
    request = one(spans, "request")
    first_send, second_send = named(spans, "send push")
    assert first_send["parent_id"] == request["span_id"]
    assert second_send["parent_id"] == first_send["span_id"]
    assert {span["trace_id"] for span in spans} == {request["trace_id"]}
    assert sorted(span["parent_id"] for span in named(spans, "process push")) == sorted(
        [first_send["span_id"], second_send["span_id"]]
    )


@pytest.mark.django_db
def test_baggage_of_the_enqueueing_code_is_current_in_the_task(traced):
    token = otel_context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        with request_span():
            row = tasks_tracing.reads_baggage.add_task("tenant")
    finally:
        otel_context.detach(token)
    assert Task.objects.get(pk=row.pk).trace_context["baggage"] == "tenant=acme"
    assert baggage.get_baggage("tenant") is None
    [ran] = run_pending()  # here, where no baggage is set: the row's is
    assert (ran.status, ran.returning) == ("success", "acme")


@pytest.mark.django_db
def test_a_hand_written_trace_context_that_is_no_context_starts_a_trace(traced, qtasks_immediate):
    record = Task.new("echo", [1], {})
    record.trace_context = {"traceparent": 42, "other": "not a context"}
    app.deliver([record])
    record.refresh_from_db()
    assert record.status == "success"
    process = one(finished(), "process echo")
    assert process["parent_id"] == one(finished(), "send echo")["span_id"]


# --- A real worker process ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_workers_run_is_the_child_of_this_processs_enqueue_span(
    traced, start_worker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    spans_file = tmp_path / "spans.jsonl"
    queue = f"tracing-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("QTASKS_TEST_SETTINGS", json.dumps({"OPENTELEMETRY": True}))
    start_worker("--queues", queue, env={"QTASKS_TEST_SPANS_FILE": str(spans_file)})
    with request_span():
        sync_row = tasks_tracing.traced_sync.add_task(queue, queue=queue)
        async_row = tasks_tracing.traced_async.add_task(queue, queue=queue)
        retried = tasks_testing.fails_until_user.add_task("joe", queue=queue)
        failed = tasks.retry_wrong_exc.add_task(queue=queue)

    def worker_spans() -> list[Span]:
        if not spans_file.exists():
            return []
        return [json.loads(line) for line in spans_file.read_text().splitlines()]

    def ended() -> bool:
        names = [span["name"] for span in worker_spans()]
        return (
            names.count("process traced_leaf") == 2
            and names.count("process fails_until_user") == 2
            and "process retry_wrong_exc" in names
        )

    wait_until(ended, 90, lambda: f"the worker's spans (has {worker_spans()})")
    ours, theirs = finished(), worker_spans()
    request = one(ours, "request")
    assert {span["trace_id"] for span in [*ours, *theirs]} == {request["trace_id"]}
    sends = {
        span["attributes"]["messaging.message.id"]: span
        for span in ours
        if span["name"].startswith("send ")
    }
    for row in (sync_row, async_row, retried, failed):
        assert sends[str(row.uuid)]["parent_id"] == request["span_id"]

    sync_run = one(theirs, "process traced_sync")
    assert sync_run["kind"] == "CONSUMER"
    assert sync_run["parent_id"] == sends[str(sync_row.uuid)]["span_id"]
    assert sync_run["attributes"]["messaging.destination.name"] == queue
    assert sync_run["attributes"]["messaging.client.id"] == Task.objects.get(pk=sync_row.pk).worker
    assert sync_run["attributes"]["qtasks.status"] == "success"
    assert one(theirs, "sync work")["parent_id"] == sync_run["span_id"]

    async_run = one(theirs, "process traced_async")
    assert async_run["parent_id"] == sends[str(async_row.uuid)]["span_id"]
    assert one(theirs, "async work")["parent_id"] == async_run["span_id"]

    # Tasks enqueued by a run: their enqueue span under the span of the task's own code.
    for work in ("sync work", "async work"):
        send_leaf = next(
            span
            for span in named(theirs, "send traced_leaf")
            if span["parent_id"] == one(theirs, work)["span_id"]
        )
        leaf = next(
            span
            for span in named(theirs, "process traced_leaf")
            if span["parent_id"] == send_leaf["span_id"]
        )
        assert leaf["attributes"]["qtasks.status"] == "success"

    first, second = sorted(
        named(theirs, "process fails_until_user"), key=lambda s: s["attributes"]["qtasks.attempt"]
    )
    assert first["parent_id"] == second["parent_id"] == sends[str(retried.uuid)]["span_id"]
    assert (first["status"], first["attributes"]["qtasks.status"]) == ("ERROR", "retry")
    assert (second["status"], second["attributes"]["qtasks.status"]) == ("UNSET", "success")

    failure = one(theirs, "process retry_wrong_exc")
    assert failure["parent_id"] == sends[str(failed.uuid)]["span_id"]
    assert (failure["status"], failure["attributes"]["error.type"]) == ("ERROR", "ValueError")
    assert [event["attributes"]["exception.type"] for event in failure["events"]] == ["ValueError"]


@pytest.mark.django_db(transaction=True)
def test_a_pool_childs_spans_are_exported_when_it_leaves(
    traced, start_worker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A child leaves with os._exit, which skips the SDK's flush at exit: it flushes first."""
    spans_file = tmp_path / "spans.jsonl"
    queue = f"tracing-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("QTASKS_TEST_SETTINGS", json.dumps({"OPENTELEMETRY": True}))
    worker = start_worker(
        "--queues",
        queue,
        "--processes",
        "2",
        env={"QTASKS_TEST_SPANS_FILE": str(spans_file), "QTASKS_TEST_SPANS_HELD": "1"},
    )
    row = tasks.echo.add_task(1, queue=queue)
    wait_until(lambda: Task.objects.get(pk=row.pk).status == "success", 60)
    assert not spans_file.exists()  # held by the child's batch processor
    worker.signal()
    assert worker.wait(60) == 0
    spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    run = one(spans, "process echo")
    assert run["parent_id"] == one(finished(), "send echo")["span_id"]


@pytest.mark.django_db(transaction=True)
def test_an_attempt_the_worker_stops_at_shutdown_is_marked_interrupted(
    traced, start_worker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    spans_file = tmp_path / "spans.jsonl"
    queue = f"tracing-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("QTASKS_TEST_SETTINGS", json.dumps({"OPENTELEMETRY": True}))
    worker = start_worker(
        "--queues",
        queue,
        "--shutdown-timeout",
        "0.5",
        env={"QTASKS_TEST_SPANS_FILE": str(spans_file)},
    )
    never = tmp_path / "never"  # they run until they are stopped
    rows = [
        tasks.wait_for_file.add_task(str(never), queue=queue),
        tasks.async_wait_for_file.add_task(str(never), queue=queue),
    ]

    def running(row: Task) -> bool:  # its code has started: it logged
        logs = Task.objects.get(pk=row.pk).logs
        return any(line["message"] == f"waiting for {never}" for line in logs)

    wait_until(lambda: all(running(row) for row in rows), 60)
    worker.signal()
    assert worker.wait(60) == 0
    spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    for row in rows:
        run = one(spans, f"process {row.task_name}")
        assert run["attributes"]["qtasks.status"] == "interrupted"
        assert run["status"] == "UNSET"
        assert Task.objects.get(pk=row.pk).status == "new"  # back in the queue
