"""OS signals for the worker: the first SIGINT/SIGTERM stops it warmly (no new
work, running tasks get the shutdown timeout), the second stops it now;
SIGUSR2 retires it (no new work, running tasks end with no timeout: how a
``--processes`` pool recycles a child); SIGUSR1 logs its state and every
thread's stack."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django_qtasks.worker.worker import Worker

logger = logging.getLogger("django_qtasks.worker")


def install_signal_handlers(loop: asyncio.AbstractEventLoop, worker: Worker) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    received = 0

    def on_signal(signum: int) -> None:
        nonlocal received
        received += 1
        name = signal.Signals(signum).name
        if received == 1:
            logger.warning(
                "Received %s: taking no new tasks; running tasks have %ss to end. "
                "Send it again to stop now.",
                name,
                worker.shutdown_timeout,
            )
            worker.stop()
        else:
            logger.warning(
                "Received %s again: stopping now; running tasks go back to the queue.", name
            )
            worker.stop(force=True)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    loop.add_signal_handler(signal.SIGUSR1, worker.report_state)
    loop.add_signal_handler(signal.SIGUSR2, worker.retire, "it received SIGUSR2")


def remove_signal_handlers(loop: asyncio.AbstractEventLoop) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
        loop.remove_signal_handler(signum)
