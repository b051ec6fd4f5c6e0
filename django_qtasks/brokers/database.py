"""``django://``: the queue is the Task table in the project's own database.

The rows are the messages: workers claim due rows in priority order
(``TaskStore.claim_due``). On PostgreSQL one statement does it (``UPDATE ...
WHERE uuid IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING``), so workers
never wait on each other and a claim is one round trip.

Idle workers poll every ``POLL_INTERVAL``; on PostgreSQL with psycopg 3 they
also LISTEN for the NOTIFY that a trigger sends when a task becomes ready
(migration 0003), and wake at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.db import connections

from django_qtasks.brokers.base import Broker
from django_qtasks.models import Task, task_db

logger = logging.getLogger("django_qtasks.broker")

#: The channel of migration 0003's trigger; its payload is the task's queue.
CHANNEL = "django_qtasks"


class DatabaseBroker(Broker):
    schemes = ("django",)

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._listener: Listener | None = None

    def publish(self, task: Task) -> None:
        # The committed row is the message: nothing to send.
        return None

    # Worker side --------------------------------------------------------------

    def start_consuming(
        self, queues: list[str], prefetch: int, on_work: Callable[[], object]
    ) -> None:
        using = task_db()
        if connections[using].vendor != "postgresql":
            return
        from django.db.backends.postgresql.psycopg_any import (  # type: ignore[import-untyped]
            is_psycopg3,
        )

        if not is_psycopg3:
            logger.info("Polling %s: LISTEN/NOTIFY needs psycopg 3", self.safe_url)
            return
        self._listener = Listener(using, queues, on_work)
        self._listener.start()

    def stop_consuming(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None

    def close(self) -> None:
        self.stop_consuming()


class Listener(threading.Thread):
    """Holds a LISTEN connection and calls ``on_work`` when a task of our queues is ready."""

    def __init__(self, using: str, queues: list[str], on_work: Callable[[], object]) -> None:
        super().__init__(name="qtasks-listen", daemon=True)
        self.using = using
        self.queues = set(queues)
        self.on_work = on_work
        self.stopping = threading.Event()

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)

    def run(self) -> None:
        import psycopg

        wrapper = connections[self.using]
        pause = 1.0
        while not self.stopping.is_set():
            try:
                params = wrapper.get_connection_params()
                with psycopg.connect(**params, autocommit=True) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    # (Re)connected: a notification may have been missed.
                    self.on_work()
                    pause = 1.0
                    while not self.stopping.is_set():
                        for notice in connection.notifies(timeout=0.5):
                            if notice.payload in self.queues:
                                self.on_work()
            except Exception as exc:
                logger.warning(
                    "LISTEN on the database failed (%s); polling, and listening again in %.0fs",
                    exc,
                    pause,
                )
                self.stopping.wait(pause)
                pause = min(pause * 2, 30.0)
