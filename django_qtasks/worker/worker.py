"""The worker: claims tasks from the broker and runs them.

Async tasks run on this process's asyncio loop, sync tasks in a thread pool;
``concurrency`` bounds both together. The worker's own database work (claims,
results, fail-over) goes through one dedicated thread, so the loop never
blocks on the database. Heartbeats have a thread and a connection of their
own (``liveness``), so that no task work can starve them. Side loops fail
over tasks of dead workers, act on cancel requests, and save generator
progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections, connections
from django.utils import timezone

from django_qtasks.beat import Beat
from django_qtasks.brokers import get_broker
from django_qtasks.brokers.base import Broker
from django_qtasks.conf import qtasks_settings
from django_qtasks.context import RunState
from django_qtasks.models import Task, TaskStatus, WorkerHeartbeat, task_db, task_store
from django_qtasks.notify import get_notifier
from django_qtasks.registry import default_app
from django_qtasks.stalls import StallWatch, stack_of
from django_qtasks.worker.cancels import CancelWatch
from django_qtasks.worker.executor import Outcome, TaskExecutor, ThreadStuck, executor_for
from django_qtasks.worker.failover import FailOver
from django_qtasks.worker.lane import DatabaseLane
from django_qtasks.worker.liveness import Heartbeat, write_heartbeat
from django_qtasks.worker.memory import rss_kib
from django_qtasks.worker.observer import WorkerObserver
from django_qtasks.worker.prefetch import PREFETCH_WINDOW, PrefetchPolicy
from django_qtasks.worker.progress import save_progress
from django_qtasks.worker.shutdown import install_signal_handlers, remove_signal_handlers
from django_qtasks.worker.slots import Running, Slots
from django_qtasks.worker.writer import Ending, ResultWriter, log_outcome

logger = logging.getLogger("django_qtasks.worker")

T = TypeVar("T")
THREAD_PREFIX = "qtasks-task"

#: What a pool's child tells its supervisor (``worker.pool``): it takes
#: tasks; it takes no more (recycled) and exits once those running end.
READY = b"r"
RETIRING = b"x"

#: Under load, an outcome waits this many seconds for those of the runs
#: under way, to be written with them: a write for several tasks, not each.
WRITE_WAIT = 0.002
#: A stop that returns running tasks gives up writing an outcome after this
#: many failed tries (before that, the worker tries until it is written).
SAVE_TRIES_WHEN_STOPPING = 3


class Worker:
    def __init__(
        self,
        *,
        queues: list[str] | None = None,
        concurrency: int | None = None,
        prefetch: int | str | None = None,
        worker_id: str | None = None,
        burst: bool = False,
        max_tasks: int | None = None,
        shutdown_timeout: float | None = None,
        broker: Broker | None = None,
        beat: bool = False,
        supervisor: str = "",
        max_memory: int | None = None,
        tell_supervisor: Callable[[bytes], object] | None = None,
        observer: WorkerObserver | None = None,
    ) -> None:
        self.app = default_app()
        self.broker = broker or get_broker()
        self.queues = queues or [qtasks_settings.DEFAULT_QUEUE]
        self.concurrency = concurrency or qtasks_settings.CONCURRENCY
        self.prefetch = PrefetchPolicy(
            self.concurrency, qtasks_settings.PREFETCH if prefetch is None else prefetch
        )
        self.slots = Slots(self.concurrency)
        self.worker_id = worker_id or (
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        )
        self.burst = burst
        self.max_tasks = max_tasks
        #: The ``--processes`` pool this worker is a child of ("": none).
        self.supervisor = supervisor
        #: Resident memory (KiB) past which it retires (``--max-memory-per-child``).
        self.max_memory = max_memory
        #: A pool's child tells its supervisor when it takes tasks, and when
        #: it takes no more (``worker.pool``).
        self.tell_supervisor = tell_supervisor
        #: Told how each run ended (``--metrics-port``); None: nobody is.
        self.observer = observer
        self.shutdown_timeout = (
            qtasks_settings.SHUTDOWN_TIMEOUT if shutdown_timeout is None else shutdown_timeout
        )
        #: Runs whose thread could not be stopped: their rows stay with this
        #: worker (its heartbeat is not removed) until the process is gone.
        self.stuck: set[uuid.UUID] = set()
        self._runners: set[asyncio.Task[None]] = set()
        self.claimed = 0
        self._stopping = False
        self._force = False
        #: Set by ``retire``: no new tasks, and those running end unhurried.
        self._retiring = False
        #: Set when the runs still under way go back to the queue (``drain``).
        self._returning = False
        #: Set to bring the claiming loop (``consume``) or ``drain`` back to look.
        self._wakeup = asyncio.Event()
        #: After a claim that came back short, the next one waits for the
        #: broker's ``on_work`` or this poll time, not for a free slot (0: none).
        self._next_poll = 0.0
        self._work_arrived = False
        self._task_pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix=THREAD_PREFIX)
        self._stopped = threading.Event()
        self._side_loops: list[asyncio.Task[None]] = []
        #: Set when outcomes wait to be written (``write_endings_loop``).
        self._endings_ready = asyncio.Event()
        self.notifier = get_notifier()
        #: Outcomes to write; the next call in the database lane writes them all.
        self.writer = ResultWriter(self.worker_id, self.notifier)
        #: Every database call of the worker goes through it.
        self.lane = DatabaseLane(self.writer, self.broker, self.queues, self.worker_id)
        self.failover = FailOver(
            self.worker_id, self.notifier, self.broker.needs_outbox, observer=observer
        )
        #: With ``--beat``, this worker also enqueues periodic tasks.
        self.periodic = Beat() if beat else None

    # Lifecycle -------------------------------------------------------------

    def run(self) -> None:
        """Run until stopped (signal, ``--burst`` or ``--max-tasks``)."""
        asyncio.run(self.main())

    def stop(self, force: bool = False) -> None:
        """Take no new tasks; with ``force``, send running ones back to the queue now."""
        self._stopping = True
        self._force = self._force or force
        self._wakeup.set()

    def retire(self, reason: str) -> None:
        """Take no new tasks, let the running ones end (no timeout), then stop.

        How a pool recycles a child (``--max-tasks-per-child`` stops the same
        way) and scales down. A stop that comes later still applies its
        shutdown timeout.
        """
        if self._retiring or self._stopping:
            return
        logger.info("Worker %s retires: %s", self.worker_id, reason)
        self._retiring = True
        self._wakeup.set()
        self.tell(RETIRING)

    def tell(self, message: bytes) -> None:
        if self.tell_supervisor is not None:
            # (A supervisor that is gone stops this worker through its lifeline.)
            with contextlib.suppress(OSError):
                self.tell_supervisor(message)

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        install_signal_handlers(loop, self)
        await self.lane.run(
            functools.partial(write_heartbeat, self.worker_id, [], **self.heartbeat_fields())
        )
        heartbeat = Heartbeat(
            worker_id=self.worker_id,
            interval=float(qtasks_settings.HEARTBEAT_INTERVAL),
            under_way=self.slots.under_way_keys,
            on_lost=lambda lost: loop.call_soon_threadsafe(self.runs_taken, lost),
            **self.heartbeat_fields(),
        )
        heartbeat.start()
        self.broker.start_consuming(
            self.queues,
            prefetch=self.prefetch.first_unclaimed,
            on_work=functools.partial(call_soon, loop, self.work_arrived),
        )
        cancels = CancelWatch(
            self.worker_id, self.slots, self.lane, self.notifier, loop, self._wakeup.set
        )
        logger.info(
            "Worker %s started: queues %s, concurrency %s, broker %s, %s tasks registered",
            self.worker_id,
            ",".join(self.queues),
            self.concurrency,
            self.broker.safe_url,
            len(self.app.tasks),
        )
        self.tell(READY)
        side_loops = [
            self.side_loop("write_endings", self.write_endings_loop()),
            self.side_loop(
                "fail_over",
                self.every("HEARTBEAT_INTERVAL", self.fail_over, self.slots.held_keys),
            ),
            self.side_loop(
                "poll_cancels",
                self.every("CANCEL_POLL_INTERVAL", cancels.poll_cancels, self.slots.held_keys),
            ),
            self.side_loop(
                "save_progress",
                self.every("PROGRESS_INTERVAL", self.save_progress, self.slots.entries),
            ),
        ]
        if self.broker.needs_outbox:
            sweep = self.every("OUTBOX_INTERVAL", self.sweep_outbox)
            side_loops.append(self.side_loop("sweep_outbox", sweep))
        if self.periodic is not None:
            side_loops.append(self.side_loop("beat", self.run_beat(self.periodic)))
        self._side_loops = side_loops
        cancels.watch(self._stopped)
        stall_watch = StallWatch(loop, float(qtasks_settings.STALL_WARNING))
        stall_watch.start()
        try:
            await self.consume()
            # It takes no new task: what it holds or would still receive is
            # for the other workers (their messages go back first, so that it
            # does not receive them again while its runs end).
            await asyncio.to_thread(self.broker.stop_consuming)
            if self.slots.reserved:
                # Never started: back to the queue, as never claimed.
                await self.lane.run(self.hand_back, *self.slots.reserved)
                self.slots.reserved.clear()
            await self.drain()
        finally:
            for side_loop in side_loops:
                side_loop.remove_done_callback(self.side_loop_ended)  # their end is due now
                side_loop.cancel()
            await asyncio.gather(*side_loops, return_exceptions=True)
            if self.periodic is not None:
                await asyncio.to_thread(self.periodic.close)
            self._stopped.set()
            self.broker.stop_consuming()
            heartbeat.stop()
            if self.stuck:
                # Its heartbeat stays, listing them, and stops: the rows of
                # the runs that could not be stopped are taken over (retried
                # or failed, not handed back as never started) once it is out
                # of date, after this process is gone.
                try:
                    await self.lane.run(
                        functools.partial(
                            write_heartbeat,
                            self.worker_id,
                            list(self.stuck),
                            **self.heartbeat_fields(),
                        )
                    )
                except Exception:
                    logger.exception("Worker %s could not write its last heartbeat", self.worker_id)
                logger.error(
                    "Worker %s leaves %s tasks whose threads could not be stopped to be "
                    "taken over after HEARTBEAT_TIMEOUT: %s",
                    self.worker_id,
                    len(self.stuck),
                    ", ".join(str(key) for key in self.stuck),
                )
            else:
                await self.lane.run(self.unregister)
            await self.lane.run(connections.close_all)
            remove_signal_handlers(loop)
            self.lane.close()
            self._task_pool.shutdown(wait=False, cancel_futures=True)
            self.broker.close()
            stall_watch.stop()
            logger.info("Worker %s stopped after %s tasks", self.worker_id, self.claimed)

    def side_loop(self, name: str, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coroutine`` for the worker's life; say so if it ends before (never expected)."""
        side_loop = asyncio.create_task(coroutine, name=name)
        side_loop.add_done_callback(self.side_loop_ended)
        return side_loop

    def side_loop_ended(self, side_loop: asyncio.Task[None]) -> None:
        error = None if side_loop.cancelled() else side_loop.exception()
        logger.critical(
            "Worker %s: its side loop %s ended (%s); the worker goes on without it: restart it",
            self.worker_id,
            side_loop.get_name(),
            "cancelled" if side_loop.cancelled() else repr(error),
            exc_info=error,
        )

    def report_state(self) -> None:
        """Log what the worker is doing and every thread's stack (SIGUSR1), for a stuck worker."""
        now = time.monotonic()
        loops = ", ".join(
            f"{side_loop.get_name()} {'ENDED' if side_loop.done() else 'running'}"
            for side_loop in self._side_loops
        )
        threads = "".join(
            f"Thread {thread.name}:\n{stack_of(thread.ident)}" for thread in threading.enumerate()
        )
        logger.warning(
            "Worker %s state: %s runs under way, %s ended and not written, %s reserved, "
            "%s claimed in all; next poll in %.2fs, work arrived %s, stopping %s; database "
            "calls sent %s, begun %s; side loops: %s; broker: %s\n%s",
            self.worker_id,
            len(self.slots.under_way()),
            len(self.running) - len(self.slots.under_way()),
            len(self.slots.reserved),
            self.claimed,
            self._next_poll - now,
            self._work_arrived,
            self._stopping,
            self.lane.calls_sent,
            self.lane.calls_begun,
            loops,
            self.broker.state(),
            threads,
        )

    def heartbeat_fields(self) -> dict[str, Any]:
        return {
            "queues": self.queues,
            "concurrency": self.concurrency,
            "supervisor": self.supervisor,
        }

    @property
    def running(self) -> dict[uuid.UUID, Running]:
        """The runs under way or whose outcome waits to be written (``ctx`` components)."""
        return self.slots.running

    def runs_taken(self, lost: dict[uuid.UUID, tuple[str, str] | None]) -> None:
        """Stop the runs whose rows were taken from this worker: they are someone else's now."""
        for key, row in lost.items():
            entry = self.running.get(key)
            if entry is None or entry.ended_at is not None:
                continue  # it ended meanwhile: its write says whether it was stored
            now = (
                "the row was deleted"
                if row is None
                else f"the row is now {row[0]!r}" + (f" on worker {row[1]}" if row[1] else "")
            )
            reason = (
                f"Task {key} was taken from worker {self.worker_id} while it ran ({now}); "
                "this run is stopped and its outcome not recorded."
            )
            logger.error(reason, extra={"task_uuid": str(key), "task_name": entry.record.task_name})
            entry.taken = True
            self.interrupt(entry, reason)

    def interrupt(self, entry: Running, reason: str) -> None:
        """Stop a run that is not this worker's to finish: at its next step, then by force."""
        entry.run.request_interrupt(reason)
        if entry.future is not None:
            entry.future.cancel()

    def stuck_threads(self, wait: float = 1.0) -> list[threading.Thread]:
        """Task threads still alive after the worker stopped (blocked in C code).

        Idle pool threads exit as soon as the pool shuts down: give them
        ``wait`` seconds in all to do so.
        """
        deadline = time.monotonic() + wait
        threads = [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [thread for thread in threads if thread.is_alive()]

    # Claiming ---------------------------------------------------------------

    async def consume(self) -> None:
        failures = 0
        while not self._stopping and not self._retiring:
            free = self.fill_free_slots()
            ahead = self.prefetch.ahead(entry.started for entry in self.slots.under_way())
            if self.prefetch.auto:
                # Messages, too: as many ahead as tasks are claimed ahead.
                self.broker.set_prefetch(self.concurrency + ahead)
            if self.prefetch.held_too_long(self.holding_ahead(), free):
                # Out of the reserve first, so that no slot starts one meanwhile.
                held = list(self.slots.reserved)
                self.slots.reserved.clear()
                try:
                    await self.lane.run(self.hand_back_held, held)
                except Exception:
                    logger.exception("Could not hand back %s held tasks", len(held))
                    self.slots.reserved.extendleft(reversed(held))
                    await self.sleep(1.0)  # they start here meanwhile, as slots free up
                continue
            # Claim for the free slots, plus some ahead, once the reserve is
            # half used: claims come in batches, not one by one.
            reserved = len(self.slots.reserved)
            room = free + ahead - reserved
            if self.max_tasks is not None:
                room = min(room, self.max_tasks - self.claimed - reserved)
                if room <= 0 and self.slots.idle():
                    return
            self._wakeup.clear()
            if room <= 0 or reserved > ahead // 2:
                await self.wait_for_slot()
                continue
            until_poll = self._next_poll - time.monotonic()
            # (--burst, once idle, claims at once to learn whether to stop.)
            idle_burst = self.burst and self.slots.idle()
            if until_poll > 0 and not self._work_arrived and not idle_burst:
                # Woken early by the broker's on_work or a stop (a free slot
                # only brings the loop back here).
                await self.sleep(until_poll)
                continue
            self._work_arrived = False
            try:
                records = await self.lane.claim(room)
                failures = 0
            except Exception:
                failures += 1
                pause = min(0.5 * 2**failures, 30.0)
                logger.exception(
                    "Could not claim tasks from %s; retrying in %.1fs", self.broker, pause
                )
                await self.sleep(pause)
                continue
            self.slots.reserved.extend(records)
            if self._stopping:
                # A claim that was under way when the stop came: its tasks
                # never start here (main hands the reserve back).
                break
            self.fill_free_slots()
            # Short: nothing more to claim until the broker says so, or the
            # next poll. A slot that frees up meanwhile needs no claim.
            short = len(records) < room
            self._next_poll = time.monotonic() + qtasks_settings.POLL_INTERVAL if short else 0.0
            if (
                self.burst
                and not records
                and self.slots.idle()
                and not await self.lane.run(self.work_is_due)
            ):
                return

    def holding_ahead(self) -> bool:
        """With "auto": tasks claimed ahead, or more messages than slots (a message broker)."""
        return self.prefetch.auto and bool(
            self.slots.reserved or self.broker.held() > self.concurrency
        )

    async def wait_for_slot(self) -> None:
        """Wait for a wake-up; with tasks held ("auto"), no longer than the window allows."""
        if self.holding_ahead():
            left = self.prefetch.hand_back_at() - time.monotonic()
        elif self.prefetch.auto and self.broker.held():
            # More messages may come meanwhile (no wake-up): look again then.
            left = PREFETCH_WINDOW
        else:
            await self._wakeup.wait()
            return
        loop = asyncio.get_running_loop()
        timer = loop.call_later(max(left, 0.0) + 0.001, self._wakeup.set)
        try:
            await self._wakeup.wait()
        finally:
            timer.cancel()

    def work_arrived(self) -> None:
        """The broker has work (its ``on_work``, on the loop): claim now, not at the next poll."""
        self._work_arrived = True
        self._wakeup.set()

    def fill_free_slots(self) -> int:
        """Start reserved tasks in the slots free now, and those cancelled meanwhile.

        Returns how many slots are still free.
        """
        for record in self.slots.to_start():
            self.start(record)
        return self.slots.free()

    def work_is_due(self) -> bool:
        return Task.objects.using(task_db()).due(self.queues).exists()

    def sweep_outbox(self) -> None:
        self.broker.publish_outbox()
        self.broker.redeliver(self.queues)

    async def sleep(self, seconds: float) -> None:
        """Sleep until ``seconds`` pass, a slot frees up, or the worker stops."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)

    def start(self, record: Task) -> None:
        self.claimed += 1
        if self.claimed == self.max_tasks:
            self.tell(RETIRING)  # its replacement can start while this one ends
        self.prefetch.started()
        # A reserved task was claimed earlier: its run starts now.
        record.started_at = timezone.now()
        run = RunState(
            record.uuid, log_limit=qtasks_settings.LOG_LINES, worker=self, attempt=record.attempts
        )
        reason = self.slots.early_cancels.pop(record.pk, None)
        if reason is None and record.cancel_requested_at is not None:
            # Asked for while an earlier run was handed back (a worker that
            # stopped or died before it saw the request): end it unrun.
            reason = record.cancel_reason
        if reason is not None:
            run.request_cancel(reason)
        entry = Running(record, run)
        self.slots.add(entry)
        runner = asyncio.create_task(self.run_one(entry))
        self._runners.add(runner)
        runner.add_done_callback(self._runners.discard)

    async def run_one(self, entry: Running) -> None:
        record, run = entry.record, entry.run
        executor: TaskExecutor | None = None
        unknown = (
            f"No task named {record.task_name!r} is registered in worker "
            f"{self.worker_id}; is its module an installed app's tasks.py?"
        )
        try:
            handle = self.app.handle_for(record)
        except Exception:  # a django.tasks row whose function cannot be loaded
            handle, unknown = None, traceback.format_exc()
        try:
            if handle is None:
                outcome = Outcome(TaskStatus.ERROR, traceback=unknown)
            else:
                logger.info(
                    "Task %s (%s) started, attempt %s of %s",
                    record.uuid,
                    record.task_name,
                    record.attempts,
                    record.max_attempts,
                    extra={"task_uuid": str(record.uuid), "task_name": record.task_name},
                )
                try:
                    executor = executor_for(handle, record, run, self.run_in_thread)
                except Exception:
                    # A custom executor that cannot be built fails its task,
                    # saying why, like any error of the task.
                    executor = None
                    outcome = Outcome(TaskStatus.ERROR, traceback=traceback.format_exc())
            if executor is not None:
                entry.future = asyncio.ensure_future(executor.execute())
                # Asked for before the future existed: a cancel, a take-over,
                # or the stop that returns running tasks (this one was started
                # just before).
                if run.cancel_reason is not None or run.interrupted is not None or self._returning:
                    entry.future.cancel()
                try:
                    outcome = await entry.future
                except asyncio.CancelledError:
                    if run.cancel_reason is None:
                        # Stopped before its first step: it never ran. (Ended
                        # first, as for a release below.)
                        entry.ended_at = timezone.now()
                        await self.lane.run(self.hand_back, record)
                        logger.warning(
                            "Task %s returned to the queue: worker stopping", record.uuid
                        )
                        return
                    # Cancelled from outside before its first step: execute()
                    # never ran, so it could not turn this into an outcome.
                    outcome = Outcome(TaskStatus.CANCEL, cancel_reason=run.cancel_reason)
                except ThreadStuck:
                    if not entry.taken:
                        self.stuck.add(record.pk)
                    logger.error(
                        "Task %s could not be stopped: its thread is blocked in a call that "
                        "cannot be interrupted.%s",
                        record.uuid,
                        ""
                        if entry.taken
                        else " Its row stays with this worker until the process is gone.",
                        extra={"task_uuid": str(record.uuid), "task_name": record.task_name},
                    )
                    return
                except Exception:
                    outcome = Outcome(TaskStatus.ERROR, traceback=traceback.format_exc())
                finally:
                    if run.thread_left:
                        # Before its slot is used again (save_outcome starts
                        # the next task at once).
                        self.replace_task_pool()
                if executor.handle.is_async:
                    await sync_to_async(close_old_connections)()
            if outcome.interrupted:
                # Ended before its row goes back: the heartbeat's fencing, which
                # may read the row meanwhile, must not take the release for a
                # take-over.
                entry.ended_at = timezone.now()
                if not entry.taken:
                    await self.lane.run(self.hand_back_interrupted, entry)
                logger.warning(
                    "Task %s (%s) was stopped%s: %s",
                    record.uuid,
                    record.task_name,
                    "" if entry.taken else " and returned to the queue",
                    run.interrupted,
                    extra={"task_uuid": str(record.uuid), "task_name": record.task_name},
                )
                return
            await self.save_outcome(entry, outcome)
            if executor is not None:
                await executor.outcome_saved(outcome)
                await self.send_ended(executor, outcome)
        finally:
            self.slots.remove(record.uuid)
            self._wakeup.set()
            if self.max_memory is not None:
                self.check_memory()

    async def send_ended(self, executor: TaskExecutor, outcome: Outcome) -> None:
        try:
            await executor.send_ended(outcome)
        except Exception:  # the task's outcome is written: a signal changes nothing
            logger.exception("Could not send the signals of task %s", executor.record.uuid)

    def check_memory(self) -> None:
        """Retire once this process's resident memory is past ``max_memory``."""
        used = rss_kib()
        if used > (self.max_memory or 0):
            self.retire(
                f"it uses {used // 1024} MiB, over its limit of {(self.max_memory or 0) // 1024} "
                "MiB (--max-memory-per-child)"
            )

    async def save_outcome(self, entry: Running, outcome: Outcome) -> None:
        """Write ``outcome`` with those of the other runs that ended meanwhile."""
        record = entry.record
        ended_at = entry.ended_at = timezone.now()
        took = time.monotonic() - entry.started
        self.prefetch.ended(took)
        self._wakeup.set()  # the slot is free: the next claim can go with this write
        if not self._stopping and not self._retiring:
            # Its next task starts now, not when ``consume`` is back: that
            # may be waiting for a claim.
            self.fill_free_slots()
        loop = asyncio.get_running_loop()
        # Until it is written: while this worker lives, no other takes the
        # row, and giving up would have the task run again. Only a stop that
        # returns running tasks (past the shutdown timeout) gives up.
        failures = 0
        while True:
            saved = loop.create_future()
            self.writer.add(Ending(record, outcome, entry.run.stored_log(), ended_at, saved))
            self._endings_ready.set()
            try:
                await saved
                break
            except Exception:
                failures += 1
                if self._returning and failures >= SAVE_TRIES_WHEN_STOPPING:
                    logger.exception(
                        "Task %s: its outcome (%s) could not be stored; the worker is "
                        "stopping, so its row is left to fail-over.",
                        record.uuid,
                        outcome.status,
                    )
                    return
                logger.exception("Could not save the result of task %s", record.uuid)
                await asyncio.sleep(min(0.5 * 2**failures, 30.0))
        log_outcome(record, outcome, time.monotonic() - entry.started)
        if self.observer is not None:
            self.observer.run_ended(record.task_name, outcome.status, took)

    def replace_task_pool(self) -> None:
        """Give the next runs a pool of their own: a thread of this one is left running.

        A sync task stopped while blocked in C goes on in its thread until
        that call returns, maybe never. Its slot is free, but the pool has one
        thread less: the next run would wait behind it, unseen. The old pool
        ends its other runs, and each of its threads exits when its call does.
        """
        left = self._task_pool
        self._task_pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix=THREAD_PREFIX)
        left.shutdown(wait=False)

    def run_in_thread(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._task_pool, functools.partial(function, *args))

    async def write_endings_loop(self) -> None:
        """Make sure outcomes are written even when no other database call comes.

        While other runs are under way, first give them ``WRITE_WAIT`` to end.
        """
        while True:
            await self._endings_ready.wait()
            if self.slots.reserved or self.slots.under_way():
                await asyncio.sleep(WRITE_WAIT)
            self._endings_ready.clear()
            # (Meanwhile a claim may have taken them.)
            if self.writer.has_waiting() and not self.lane.call_waiting():
                # (Else a call waits its turn, often a claim: it takes them.)
                await self.lane.run(self.writer.write_waiting)

    # Stopping -----------------------------------------------------------------

    async def drain(self) -> None:
        """Let running tasks end: unbounded after --burst/--max-tasks, else the shutdown timeout."""
        deadline = None
        while self.running and not self._force:
            self._wakeup.clear()
            if deadline is None and self._stopping:
                deadline = time.monotonic() + self.shutdown_timeout
            if deadline is None:
                await self._wakeup.wait()
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await self.sleep(remaining)
        if self.running:
            logger.warning(
                "Stopping %s running tasks; each goes back to the queue once it has stopped",
                len(self.running),
            )
            self._returning = True
            reason = (
                f"Worker {self.worker_id} stopped this run to shut down "
                f"(shutdown timeout {self.shutdown_timeout:g}s)."
            )
            for entry in list(self.running.values()):
                if entry.ended_at is None:
                    self.interrupt(entry, reason)
        await asyncio.gather(*self._runners, return_exceptions=True)

    # Database work (runs in the database thread) -------------------------------

    def hand_back(self, *records: Task) -> None:
        """Give these claimed tasks back to the queue, their attempt not counted."""
        pks = [record.pk for record in records]
        task_store().hand_back(pks, self.worker_id)
        # Their messages were settled at the claim: publish them again now,
        # not at an outbox sweep (which leaves new rows OUTBOX_GRACE).
        self.broker.publish_now(pks)

    def hand_back_held(self, reserved: list[Task]) -> None:
        """The tasks and messages held ahead of the free slots: back, for any worker."""
        self.broker.give_back(keep=self.concurrency)
        if reserved:
            self.hand_back(*reserved)

    def hand_back_interrupted(self, entry: Running) -> None:
        """Give an interrupted run's task back to the queue, once the run has stopped.

        The attempt is in its attempt log as ``interrupted``, with its log
        lines, and does not use up a retry: its next run is another attempt,
        with one more allowed.
        """
        record, run = entry.record, entry.run
        released = task_store().hand_back_interrupted(
            record, self.worker_id, run.stored_log(), run.interrupted or ""
        )
        if released:
            self.broker.publish_now([record.pk])

    def fail_over(self, held: list[uuid.UUID]) -> None:
        self.failover.dead_workers()
        self.failover.lost_rows(held)

    def unregister(self) -> None:
        WorkerHeartbeat.objects.filter(worker_id=self.worker_id).delete()

    def save_progress(self, entries: list[Running]) -> None:
        save_progress(entries, self.worker_id)

    async def run_beat(self, beat: Beat) -> None:
        started = False
        while True:
            try:
                if not started:
                    await self.lane.run(beat.start)
                    started = True
                pause = await self.lane.run(beat.tick)
            except Exception:
                logger.exception("Worker %s: the beat failed; trying again", self.worker_id)
                pause = float(qtasks_settings.BEAT_INTERVAL)
            await asyncio.sleep(pause)

    async def every(
        self, interval_key: str, function: Callable[..., None], *snapshots: Callable[[], Any]
    ) -> None:
        """Call ``function`` in the lane every ``interval_key`` seconds.

        Its arguments are ``snapshots`` taken on the loop's thread, which owns
        what they read: the lane's thread never reads the loop's state.
        """
        while True:
            await asyncio.sleep(float(getattr(qtasks_settings, interval_key)))
            try:
                await self.lane.run(function, *(take() for take in snapshots))
            except Exception:
                logger.exception("Worker %s: %s failed", self.worker_id, function.__name__)


def call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], object]) -> None:
    """Have ``loop`` call ``callback`` (from any thread), unless the loop has closed."""
    with contextlib.suppress(RuntimeError):  # the loop closed: the worker is gone
        loop.call_soon_threadsafe(callback)
