"""``qtasks_worker --processes N``: a supervisor that starts, watches and replaces workers.

Each child is a whole worker (``Worker``: an asyncio loop and its threads),
forked from the supervisor, which loaded Django and the tasks once: a child
starts in a fraction of a second and shares the supervisor's memory pages.
The supervisor runs no task and has no thread. It watches its children
through signals and pipes, so it knows at once when one dies, and goes to
the database only then (to fail over that child's tasks), with
``--autoscale`` to read the queues' depth, and with ``--metrics-port`` to
answer a scrape, one at a time, from the same loop (``worker.observer``).
Its connections are closed before each fork: a child never shares one.

Children are in a process group of their own: a terminal's Ctrl-C reaches
the supervisor alone, which stops them in order. Each holds the read end of
a pipe whose write end only the supervisor holds (the lifeline): if the
supervisor dies, even by SIGKILL, its children see the pipe close and stop.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connections

from django_qtasks.beat import Beat
from django_qtasks.brokers import broker_class_for
from django_qtasks.conf import qtasks_settings
from django_qtasks.notify import get_notifier
from django_qtasks.tracer import flush_spans
from django_qtasks.worker.autoscale import Autoscaler
from django_qtasks.worker.failover import FailOver
from django_qtasks.worker.observer import PoolMetrics, WorkerObserver
from django_qtasks.worker.reload import CodeWatch, exec_again, new_code_error
from django_qtasks.worker.worker import READY, RETIRING, Worker

logger = logging.getLogger("django_qtasks.worker")

#: Children that die before taking tasks, one after the other, before the
#: supervisor gives up (an import error, a database it cannot reach).
START_FAILURES_ALLOWED = 3
#: Seconds between two looks at the queues (``--autoscale``) and at the files (``--reload``).
LOOK_INTERVAL = 1.0

#: Builds the worker of a child from its id and a function that sends its
#: supervisor a message (``READY``, ``RETIRING``).
WorkerFactory = Callable[[str, Callable[[bytes], object]], Worker]

#: The supervisor's signals; their handlers only note them (``take_signals`` acts).
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD)


@dataclass
class Child:
    number: int
    pid: int
    #: The worker's id ("" for the beat's process).
    worker_id: str
    #: Read end of the pipe on which the child says it is ready (None once closed).
    ready_fd: int | None
    ready: bool = False
    retiring: bool = False
    #: Started by the supervisor's image before a restart: replaced one by one.
    old: bool = False

    @property
    def name(self) -> str:
        return self.worker_id or "beat"


class Supervisor:
    def __init__(
        self,
        *,
        supervisor_id: str,
        make_worker: WorkerFactory,
        processes: int,
        queues: list[str],
        concurrency: int,
        autoscale: tuple[int, int] | None = None,
        beat: bool = False,
        reload: bool = False,
        adopted: dict[str, Any] | None = None,
        observer: WorkerObserver | None = None,
        metrics: PoolMetrics | None = None,
    ) -> None:
        self.supervisor_id = supervisor_id
        self.make_worker = make_worker
        self.queues = queues
        self.concurrency = concurrency
        #: Children to keep (not counting those that retire or the beat).
        self.target = autoscale[1] if autoscale else processes
        self.autoscaler = (
            Autoscaler(
                most=autoscale[0],
                least=autoscale[1],
                concurrency=concurrency,
                queues=queues,
                idle_for=float(qtasks_settings.AUTOSCALE_IDLE),
            )
            if autoscale
            else None
        )
        self.beat = beat
        self.code_watch = CodeWatch() if reload else None
        self.children: dict[int, Child] = {}
        self.spawned = 0
        self.start_failures = 0
        self.signals: list[int] = []
        self.stops_asked = 0
        self.exit_code = 0
        self.next_look = 0.0
        self.failover = FailOver(
            supervisor_id,
            get_notifier(),
            broker_class_for(qtasks_settings.BROKER_URL).needs_outbox,
            observer=observer,
        )
        #: ``--metrics-port`` or ``METRICS_DIR``: the pool's metrics (served from this loop).
        self.metrics = metrics
        self.wake_read, self.wake_write = os.pipe()
        self.lifeline_read, self.lifeline_write = os.pipe()
        if adopted:
            self.adopt(adopted)

    # The loop -----------------------------------------------------------------

    def run(self) -> int:
        """Run the pool until stopped; the exit code (1: children kept dying at start-up)."""
        os.set_blocking(self.wake_write, False)
        os.set_blocking(self.wake_read, False)
        signal.set_wakeup_fd(self.wake_write, warn_on_full_buffer=False)
        for signum in SIGNALS:
            signal.signal(signum, self.note_signal)
        logger.info(
            "Supervisor %s started (pid %s): %s processes of concurrency %s on queues %s%s",
            self.supervisor_id,
            os.getpid(),
            self.target if self.autoscaler is None else f"{self.target} to {self.autoscaler.most}",
            self.concurrency,
            ",".join(self.queues),
            ", with the beat" if self.beat else "",
        )
        try:
            while True:
                self.take_signals()
                self.reap()
                if not self.stops_asked:
                    self.look_around()
                    self.keep_up()
                elif not self.children:
                    break
                self.wait(LOOK_INTERVAL)
        finally:
            signal.set_wakeup_fd(-1)
            for signum in SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
        logger.info("Supervisor %s stopped", self.supervisor_id)
        return self.exit_code

    def note_signal(self, signum: int, frame: Any) -> None:
        self.signals.append(signum)

    def wait(self, timeout: float) -> None:
        """Until a signal, a child's message, or ``timeout`` seconds."""
        ready_fds = {
            child.ready_fd: child for child in self.children.values() if child.ready_fd is not None
        }
        scrape = self.metrics.fileno() if self.metrics is not None else None
        scrapes = [scrape] if scrape is not None else []
        with contextlib.suppress(InterruptedError):
            readable, _, _ = select.select([self.wake_read, *ready_fds, *scrapes], [], [], timeout)
            for fd in readable:
                if fd == self.wake_read:
                    with contextlib.suppress(BlockingIOError):
                        os.read(fd, 512)
                    continue
                if fd in scrapes:
                    self.serve_scrape()
                    continue
                child = ready_fds[fd]
                said = os.read(fd, 64)
                if not said:  # it exited (SIGCHLD reaps it)
                    os.close(fd)
                    child.ready_fd = None
                if READY in said:
                    child.ready = True
                    self.start_failures = 0
                if RETIRING in said and not child.retiring:
                    # Recycled (--max-tasks-per-child, --max-memory-per-child):
                    # its replacement starts now, while its last tasks end.
                    child.retiring = True

    def serve_scrape(self) -> None:
        assert self.metrics is not None
        try:
            self.metrics.serve()
        except Exception:
            logger.exception("Supervisor %s could not serve its metrics", self.supervisor_id)

    def take_signals(self) -> None:
        signals, self.signals = self.signals, []
        for signum in signals:
            if signum in (signal.SIGINT, signal.SIGTERM):
                self.stop(signal.Signals(signum).name)
            elif signum == signal.SIGHUP and not self.stops_asked:
                logger.warning("Received SIGHUP: restarting the children one by one on new code")
                self.restart()

    def stop(self, why: str) -> None:
        """First time: every child stops warmly; second time: now."""
        self.stops_asked += 1
        if self.stops_asked == 1:
            logger.warning(
                "Supervisor %s: %s; its %s children take no new tasks and stop. "
                "Send it again to stop them now.",
                self.supervisor_id,
                why,
                len(self.children),
            )
        elif self.stops_asked == 2:
            logger.warning("Supervisor %s: %s again; children stop now.", self.supervisor_id, why)
        else:
            return
        for child in self.children.values():
            self.send(child, signal.SIGTERM)

    def look_around(self) -> None:
        """The periodic looks: the queues' depth (``--autoscale``) and the files (``--reload``)."""
        now = time.monotonic()
        if now < self.next_look:
            return
        self.next_look = now + LOOK_INTERVAL
        if self.autoscaler is not None:
            self.autoscale(self.autoscaler, now)
        if self.code_watch is not None:
            changed = self.code_watch.changed()
            if changed:
                logger.warning(
                    "%s changed: restarting the children on the new code",
                    ", ".join(str(path) for path in changed[:3])
                    + (f" and {len(changed) - 3} more" if len(changed) > 3 else ""),
                )
                self.restart()

    def keep_up(self) -> None:
        """Start and retire children until the pool has ``target`` of them, then the beat."""
        active = [child for child in self.children.values() if not child.retiring]
        workers = [child for child in active if child.worker_id]
        starting = [child for child in workers if not child.ready]
        old = [child for child in workers if child.old]
        if old:
            # A restart: one new child at a time, and an old one retires
            # only once its replacement takes tasks (no gap in service).
            if not starting:
                if len(workers) > self.target:
                    self.retire(old[0], "replaced by a child on the new code")
                else:
                    self.spawn()
        else:
            for _ in range(self.target - len(workers)):
                self.spawn()
            if len(workers) > self.target and not starting:
                newest = max(workers, key=lambda child: child.number)
                self.retire(newest, "the queues need fewer processes (--autoscale)")
        if self.beat:
            beats = [child for child in active if not child.worker_id]
            if not any(not child.old for child in beats):
                self.spawn(beat=True)
            for child in beats:
                if child.old:
                    self.retire(child, "replaced by a beat on the new code")

    # Children -----------------------------------------------------------------

    def spawn(self, *, beat: bool = False) -> None:
        if self.stops_asked:
            return  # (giving up meanwhile)
        self.spawned += 1
        number = self.spawned
        worker_id = "" if beat else f"{self.supervisor_id}/{number}"
        ready_read, ready_write = os.pipe()
        # Nothing shared with the child: no open connection, no buffered output.
        connections.close_all()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        try:
            pid = os.fork()
        except OSError:
            logger.exception("Supervisor %s could not start a child", self.supervisor_id)
            os.close(ready_read)
            os.close(ready_write)
            self.start_failures += 1
            self.give_up_if_failing("fork() failed")
            return
        if pid == 0:
            code = 1
            try:
                os.close(ready_read)
                self.become_child()
                if beat:
                    code = run_beat()
                else:
                    self.make_worker(worker_id, functools.partial(os.write, ready_write)).run()
                    code = 0
            except BaseException:
                logger.exception("Child %s of supervisor %s failed", number, self.supervisor_id)
            finally:
                flush_spans()
                logging.shutdown()
                os._exit(code)
        os.close(ready_write)
        child = Child(number, pid, worker_id, ready_read, ready=beat)
        self.children[pid] = child
        logger.info("Child %s started: pid %s", child.name, pid)

    def become_child(self) -> None:
        """In a new child: drop the supervisor's signals and pipes, watch the lifeline."""
        signal.set_wakeup_fd(-1)
        for signum in SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        os.setpgid(0, 0)
        for fd in (self.wake_read, self.wake_write, self.lifeline_write):
            os.close(fd)
        for other in self.children.values():
            if other.ready_fd is not None:
                os.close(other.ready_fd)
        if self.metrics is not None:
            self.metrics.detach()
        threading.Thread(
            target=watch_lifeline, args=(self.lifeline_read,), name="qtasks-lifeline", daemon=True
        ).start()

    def reap(self) -> None:
        for pid, child in list(self.children.items()):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done:
                del self.children[pid]
                if child.ready_fd is not None:
                    os.close(child.ready_fd)
                self.child_exited(child, os.waitstatus_to_exitcode(status))

    def child_exited(self, child: Child, code: int) -> None:
        if self.metrics is not None:
            self.metrics.process_exited(child.pid)
        if code == 0 or (self.stops_asked and code == -signal.SIGTERM):
            # (A child stopped before it had its signal handlers dies of SIGTERM.)
            logger.info("Child %s (pid %s) exited", child.name, child.pid)
            cause = f"worker process {child.pid} ended while running this task"
        else:
            how = f"signal {-code}" if code < 0 else f"exit code {code}"
            cause = f"worker process {child.pid} died: {how}"
            logger.error("Child %s (pid %s) died: %s", child.name, child.pid, how)
            if not child.ready:
                self.start_failures += 1
        if child.worker_id:
            # At once, not after HEARTBEAT_TIMEOUT: this process is known to be gone.
            try:
                self.failover.process_died(child.worker_id, cause)
            except Exception:
                logger.exception(
                    "Could not fail over the tasks of %s; the other workers will, once its "
                    "heartbeat is out of date",
                    child.name,
                )
                connections.close_all()
        self.give_up_if_failing(cause)

    def give_up_if_failing(self, last: str) -> None:
        """Stop the pool once children keep failing before they take tasks."""
        if self.start_failures >= START_FAILURES_ALLOWED and not self.stops_asked:
            logger.critical(
                "Supervisor %s: %s children in a row failed before taking tasks (the last: "
                "%s); see the errors above. Giving up.",
                self.supervisor_id,
                self.start_failures,
                last,
            )
            self.exit_code = 1
            self.stop("its children keep failing at start-up")

    def retire(self, child: Child, reason: str) -> None:
        """Have ``child`` take no new tasks, end those it runs, and exit."""
        logger.info("Child %s (pid %s) retires: %s", child.name, child.pid, reason)
        child.retiring = True
        # A beat has no tasks to end: SIGTERM. A worker's SIGUSR2 waits for them.
        self.send(child, signal.SIGUSR2 if child.worker_id else signal.SIGTERM)

    def send(self, child: Child, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # gone: reap() will see it
            os.kill(child.pid, signum)

    # Autoscale and restarts -----------------------------------------------------

    def autoscale(self, autoscaler: Autoscaler, now: float) -> None:
        children = self.children.values()
        current = sum(1 for child in children if child.worker_id and not child.retiring)
        try:
            load = autoscaler.load()
        except Exception:
            logger.exception("Could not read the depth of the queues; the pool keeps its size")
            connections.close_all()  # a broken connection is opened again next time
            return
        wanted = autoscaler.wanted(current, now, load)
        if wanted != self.target:
            logger.info(
                "Autoscale: %s tasks due or running: %s processes (was %s)",
                load,
                wanted,
                self.target,
            )
            self.target = wanted

    def restart(self) -> None:
        """Load the new code in this process (``exec``), then replace the children one by one."""
        error = new_code_error()
        if error is not None:
            logger.error(
                "Supervisor %s: the new code does not load; the children keep running the "
                "code they have.\n%s",
                self.supervisor_id,
                error,
            )
            return
        connections.close_all()
        os.set_inheritable(self.lifeline_read, True)
        os.set_inheritable(self.lifeline_write, True)
        signal.set_wakeup_fd(-1)
        logging.shutdown()
        try:
            exec_again(self.state())
        except OSError:
            logger.exception("Supervisor %s could not restart itself", self.supervisor_id)
            signal.set_wakeup_fd(self.wake_write, warn_on_full_buffer=False)

    def state(self) -> dict[str, Any]:
        """What the image that replaces this one needs to take over the pool (``adopt``)."""
        return {
            "supervisor_id": self.supervisor_id,
            "spawned": self.spawned,
            "target": self.target,
            "lifeline": [self.lifeline_read, self.lifeline_write],
            "children": [
                [child.number, child.pid, child.worker_id, child.retiring]
                for child in self.children.values()
            ],
            "metrics": self.metrics.state() if self.metrics is not None else None,
        }

    def adopt(self, state: dict[str, Any]) -> None:
        """Take over the pool of the image this process replaced (``restart``)."""
        os.close(self.lifeline_read)
        os.close(self.lifeline_write)
        self.lifeline_read, self.lifeline_write = (int(fd) for fd in state["lifeline"])
        os.set_inheritable(self.lifeline_read, False)
        os.set_inheritable(self.lifeline_write, False)
        self.spawned = int(state["spawned"])
        self.target = int(state["target"])
        for number, pid, worker_id, retiring in state["children"]:
            self.children[pid] = Child(
                number, pid, worker_id, None, ready=True, retiring=retiring, old=True
            )
        logger.info(
            "Supervisor %s restarted on the new code; replacing its %s children one by one",
            self.supervisor_id,
            len(self.children),
        )


def watch_lifeline(fd: int) -> None:
    """In a child: stop warmly once the supervisor is gone (its end of the pipe closed)."""
    with contextlib.suppress(OSError):
        while os.read(fd, 1):
            pass
    logger.error("The supervisor of process %s is gone: stopping", os.getpid())
    os.kill(os.getpid(), signal.SIGTERM)


def run_beat() -> int:
    """A pool's beat process: enqueue periodic tasks until SIGTERM."""
    beat = Beat()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: beat.stop())
    beat.run()
    return 0
