"""What a worker tells an observer of its runs: the hook of the Prometheus exporter.

``qtasks_worker --metrics-port`` (or ``QTASKS["METRICS_DIR"]``) hands the
worker, and a pool's supervisor, an observer (``django_qtasks.metrics``);
without one, the worker does nothing more per task than check that it has
none. Unlike the lifecycle signals, an observer is called where the worker
is, on its event loop or its database thread, with no thread hop: it must
be quick, safe from any thread, and never raise.
"""

from __future__ import annotations

from typing import Any, Protocol


class WorkerObserver(Protocol):
    def run_ended(self, task_name: str, status: str, seconds: float) -> None:
        """An attempt ended with ``status`` after ``seconds`` (wall clock), its row written."""

    def failed_over(self, task_name: str, retried: bool) -> None:
        """A task of a dead worker (or process) was taken over: retried, or failed."""


class PoolMetrics(Protocol):
    """A pool's metrics (``django_qtasks.metrics``), as its supervisor deals with them.

    The supervisor has no thread: it waits on the endpoint's socket beside its
    children's pipes, and answers one scrape when the socket is readable.
    """

    def fileno(self) -> int | None:
        """The endpoint's listening socket (None: no ``--metrics-port``)."""

    def serve(self) -> None:
        """Answer one scrape (the socket is readable)."""

    def detach(self) -> None:
        """In a new child: close this process's copy of the socket."""

    def process_exited(self, pid: int) -> None:
        """A child is gone: drop what only a live process may report."""

    def state(self) -> dict[str, Any]:
        """What the supervisor's next image (a restart, ``exec``) needs to go on recording."""
