"""Where tracing plugs into enqueueing and runs: the slot ``TRACER``.

It is empty unless ``QTASKS["OPENTELEMETRY"]`` is on and opentelemetry-api
is installed: then the app config's ``ready()`` puts
``django_qtasks.tracing.OpenTelemetryTracer`` in it, and takes it out again
when the setting is turned off (``override_settings``). Enqueueing
(``QTasksApp.deliver``) and the executor look at it once per call: with
tracing off, that look is all it costs them, and opentelemetry is never
imported.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from django_qtasks.models import Task
    from django_qtasks.worker.executor import Outcome

logger = logging.getLogger("django_qtasks.tracing")


class RunSpan(Protocol):
    def ended(self, outcome: Outcome) -> None:
        """The attempt ended with ``outcome`` (called before the outcome is written)."""


class Tracer(Protocol):
    def sending(self, records: Sequence[Task]) -> AbstractContextManager[object]:
        """Around the insert of new rows: sets each row's ``trace_context`` on entry."""

    def running(self, record: Task) -> AbstractContextManager[RunSpan]:
        """Around one attempt of a claimed row, its span current inside."""

    def flush(self) -> None:
        """Export the spans still held, before the process leaves (``os._exit``)."""


#: The tracer in use, if any (one at most).
TRACER: list[Tracer] = []


def active_tracer() -> Tracer | None:
    return TRACER[0] if TRACER else None


def flush_spans() -> None:
    """For a process that leaves with ``os._exit`` (a pool's child), which skips the
    exporters' own flush at exit; never raises."""
    tracer = active_tracer()
    if tracer is None:
        return
    try:
        tracer.flush()
    except Exception:
        logger.exception("Could not export the spans still held at exit")
