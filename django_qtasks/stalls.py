"""Say so when a worker's thread stays in one call too long, with its stack.

A worker does its database work in one thread and receives messages in
another; its loop runs on a third. If one of them blocks (a lock that is never
released, a socket that never answers), the worker goes on heartbeating and
does nothing else, without a word in its log. Code that must not stall runs
under ``watching("what it does")``; a ``StallWatch`` thread logs a warning
with that thread's stack once it has been in the call for ``limit`` seconds,
and says when it returns. It watches the event loop too, by asking it to run
a callback.

The registry is this module's: ``watching`` costs a dict write and a delete,
whether or not a ``StallWatch`` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass

logger = logging.getLogger("django_qtasks.worker")


@dataclass
class Call:
    what: str
    since: float
    reported: bool = False


_calls: dict[int, Call] = {}
_lock = threading.Lock()


@contextlib.contextmanager
def watching(what: str) -> Iterator[None]:
    """Run the block as a call that a ``StallWatch`` reports if it lasts too long."""
    ident = threading.get_ident()
    call = Call(what, time.monotonic())
    with _lock:
        outer = _calls.get(ident)
        _calls[ident] = call
    try:
        yield
    finally:
        with _lock:
            if outer is None:
                _calls.pop(ident, None)
            else:
                _calls[ident] = outer
        if call.reported:
            logger.warning("%s returned after %.0fs", what, time.monotonic() - call.since)


def stack_of(ident: int | None) -> str:
    frame = sys._current_frames().get(ident) if ident is not None else None
    return "".join(traceback.format_stack(frame)) if frame is not None else "(thread gone)\n"


class StallWatch(threading.Thread):
    """Checks the calls under ``watching``, and the event loop ``loop``, every few seconds."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: float) -> None:
        super().__init__(name="qtasks-stalls", daemon=True)
        self.loop = loop
        self.loop_thread = threading.get_ident()  # made on the loop's thread
        self.limit = limit
        self.stopping = threading.Event()
        #: When the loop last ran our callback (written by the loop's thread).
        self.loop_seen = time.monotonic()
        self.loop_reported = False

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        while not self.stopping.wait(self.limit / 6):
            now = time.monotonic()
            with _lock:
                stalled = [
                    (ident, call)
                    for ident, call in _calls.items()
                    if not call.reported and now - call.since > self.limit
                ]
                for _, call in stalled:
                    call.reported = True
            for ident, call in stalled:
                logger.warning(
                    "%s has not returned for %.0fs; its thread is at:\n%s",
                    call.what,
                    now - call.since,
                    stack_of(ident),
                )
            self.check_loop(now)

    def check_loop(self, now: float) -> None:
        if now - self.loop_seen > self.limit and not self.loop_reported:
            self.loop_reported = True
            logger.warning(
                "The worker's event loop has run nothing for %.0fs; it is at:\n%s",
                now - self.loop_seen,
                stack_of(self.loop_thread),
            )
        with contextlib.suppress(RuntimeError):  # the loop closed: the worker is gone
            self.loop.call_soon_threadsafe(self.loop_ran)

    def loop_ran(self) -> None:
        if self.loop_reported:
            logger.warning(
                "The worker's event loop runs again after %.0fs",
                time.monotonic() - self.loop_seen,
            )
            self.loop_reported = False
        self.loop_seen = time.monotonic()
