"""``qtasks_worker --metrics-port``: a worker's metrics, recorded and served over HTTP.

``WorkerMetrics.start`` sets up a worker (or a pool's supervisor, before it
forks): the run's directory (``metrics.files``), the recorder the worker is
handed (``metrics.recorder``), and with a port, the HTTP endpoint. A lone
worker serves it from a thread of its own; a pool's supervisor, which has no
thread, from its loop (``worker.pool``), one scrape at a time. A scrape
merges the files of every process of the run and reads the database's
figures (``metrics.gauges``).
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import MetricsHandler
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from django_qtasks.exceptions import QTasksError
from django_qtasks.metrics.files import RunDirectory, record_in
from django_qtasks.metrics.gauges import DatabaseGauges
from django_qtasks.metrics.recorder import MetricsRecorder

logger = logging.getLogger("django_qtasks.metrics")

#: Seconds a scrape's connection may take to send its request and read the answer.
SCRAPE_TIMEOUT = 5.0


class MetricsUnavailable(QTasksError):
    """The metrics cannot be set up: a directory that cannot be made, a port in use."""


class ScrapeServer(socketserver.TCPServer):
    """One scrape at a time, from a thread's loop or a supervisor's ``select``."""

    allow_reuse_address = True


def scrape_server(directory: RunDirectory, addr: str, port: int) -> ScrapeServer:
    """Listen on ``addr:port`` (OSError if it cannot) for the run's metrics."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory.path)
    registry.register(DatabaseGauges(close_connections=True))
    handler = type(
        "ScrapeHandler", (MetricsHandler,), {"registry": registry, "timeout": SCRAPE_TIMEOUT}
    )
    family = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM)[0][0]
    server_class = type("ScrapeServer", (ScrapeServer,), {"address_family": family})
    server = server_class((addr, port), handler)
    # Never blocks on accept(): a connection dropped between select() and
    # accept() is an error it ignores, not a wait.
    server.socket.setblocking(False)
    return server


class WorkerMetrics:
    """The metrics of a worker (or a pool): its directory, its recorder, its endpoint."""

    def __init__(
        self, directory: RunDirectory, recorder: MetricsRecorder, server: ScrapeServer | None
    ) -> None:
        self.directory = directory
        self.recorder = recorder
        self.server = server
        self._thread: threading.Thread | None = None

    @classmethod
    def start(
        cls,
        *,
        worker_id: str,
        root: str | None,
        port: int | None,
        addr: str,
        adopted: dict[str, Any] | None = None,
    ) -> WorkerMetrics:
        """Set up this process, before it makes a worker or forks: files, and the endpoint.

        ``root``: ``QTASKS["METRICS_DIR"]``; ``adopted``: the run of the image
        this process replaced (a pool's restart). Raises MetricsUnavailable,
        saying why, when the directory cannot be made or the port listened on.
        """
        if adopted:
            directory = RunDirectory.adopt(adopted)
        else:
            try:
                directory = RunDirectory.create(worker_id, root)
            except OSError as exc:
                where = "a temporary directory" if root is None else f"QTASKS['METRICS_DIR'] {root}"
                raise MetricsUnavailable(f"Cannot keep metrics in {where}: {exc}") from exc
        record_in(directory.path)
        server = None
        if port is not None:
            try:
                server = scrape_server(directory, addr, port)
            except OSError as exc:
                if not adopted:
                    directory.remove()
                raise MetricsUnavailable(
                    f"--metrics-port: cannot listen on {addr} port {port}: {exc}"
                ) from exc
            host, bound = server.socket.getsockname()[:2]
            logger.info(
                "Metrics served at http://%s:%s/metrics",
                f"[{host}]" if ":" in host else host,
                bound,
            )
        logger.info("Metrics of this worker's processes kept in %s", directory.path)
        return cls(directory, MetricsRecorder(), server)

    def serve_in_thread(self) -> None:
        """A lone worker: answer scrapes from a thread until ``stop``."""
        if self.server is not None:
            self._thread = threading.Thread(
                target=self.server.serve_forever, name="qtasks-metrics", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """The worker (or the pool) stopped: close the endpoint, remove the files."""
        if self.server is not None:
            if self._thread is not None:
                self.server.shutdown()
                self._thread = None
            self.server.server_close()
        self.directory.remove()

    # What a pool's supervisor asks (``worker.observer.PoolMetrics``) --- -----------------

    def fileno(self) -> int | None:
        return self.server.fileno() if self.server is not None else None

    def serve(self) -> None:
        if self.server is not None:
            self.server.handle_request()

    def detach(self) -> None:
        if self.server is not None:
            self.server.socket.close()

    def process_exited(self, pid: int) -> None:
        # Its counters stay (they are summed, those of the dead included);
        # only its "live" gauges, if any, must go (prometheus_client's docs).
        mark_process_dead(pid, self.directory.path)

    def state(self) -> dict[str, Any]:
        return self.directory.state()
