"""Fail-over: the tasks of workers that died, and rows a worker holds but does not run.

Any live worker reaps, at each heartbeat interval, in its database thread.
A worker is dead when its heartbeat is older than ``HEARTBEAT_TIMEOUT`` by
the database's clock; every take-over re-checks that in its own statement,
so that a worker whose heartbeat came back keeps its rows. A dead worker's
running tasks are retried or failed (``take_over``); those it had only
prefetched go back to the queue unattempted (``TaskStore.hand_back``).
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from django_qtasks.conf import qtasks_settings
from django_qtasks.models import Task, WorkerHeartbeat, task_db, task_store
from django_qtasks.notify import Notifier
from django_qtasks.store import heartbeat_cutoff
from django_qtasks.worker.observer import WorkerObserver

logger = logging.getLogger("django_qtasks.worker")


class FailOver:
    """The reaping of one worker, ``worker_id``."""

    def __init__(
        self,
        worker_id: str,
        notifier: Notifier,
        needs_outbox: bool,
        observer: WorkerObserver | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.notifier = notifier
        #: The broker publishes from the outbox (else nothing to say of it).
        self.needs_outbox = needs_outbox
        #: Told of each task taken over (``--metrics-port``); None: nobody is.
        self.observer = observer

    def dead_workers(self) -> None:
        """Tasks left in ``process`` by a worker whose heartbeat stopped are retried or failed.

        Those it had only prefetched go back to the queue unattempted: a row
        claimed before its last heartbeat, which listed what it was running,
        and not in that list, was waiting in its reserve at the time.
        """
        # By the database's clock, which every worker's heartbeat is written with.
        cutoff = heartbeat_cutoff()
        # Never this worker, alive as it runs this, whatever its heartbeat
        # says (a starved heartbeat thread, a row deleted under it):
        # ``lost_rows`` deals with rows of its own that it does not run.
        beats = WorkerHeartbeat.objects.using(task_db(WorkerHeartbeat)).exclude(
            worker_id=self.worker_id
        )
        dead = list(beats.filter(last_heartbeat__lt=cutoff))
        last_beats = {beat.worker_id: beat for beat in dead}
        # The rows of the workers found dead above, and of workers with no
        # heartbeat at all. Not "every worker not live now": the cutoff moves
        # with the clock, and a heartbeat that went out of date since the read
        # above would have its prefetched rows taken for running ones.
        orphans = (
            Task.objects.using(task_db())
            .running()
            .filter(Q(worker__in=list(last_beats)) | ~Q(worker__in=beats.values("worker_id")))
            .exclude(worker=self.worker_id)
            .filter(started_at__lt=cutoff)
        )
        for orphan in orphans:
            self.settle_orphan(
                orphan,
                last_beats.get(orphan.worker),
                f"Worker {orphan.worker} stopped sending heartbeats while running this task.",
                unless_alive=True,
            )
        # Only now that its tasks are dealt with: until then, its heartbeat
        # (what it was running) is what tells its prefetched tasks apart, for
        # any worker reaping at the same time, or after this one failed midway.
        deleted = WorkerHeartbeat.objects.filter(
            pk__in=[beat.pk for beat in dead], last_heartbeat__lt=cutoff
        ).delete()[0]
        if deleted:
            self.republish_queues_of(dead)

    def process_died(self, worker_id: str, cause: str) -> None:
        """Fail over, now, the tasks of a pool's child whose process is known to be gone.

        Its supervisor saw it die (``cause``): no need to wait for its
        heartbeat to go out of date. Its tasks are settled as
        ``dead_workers`` settles those of a silent worker.
        """
        beat = WorkerHeartbeat.objects.using(task_db(WorkerHeartbeat)).filter(pk=worker_id).first()
        for orphan in Task.objects.using(task_db()).running().filter(worker=worker_id):
            self.settle_orphan(orphan, beat, f"{cause[:1].upper()}{cause[1:]}.", unless_alive=False)
        if beat is not None:
            WorkerHeartbeat.objects.filter(pk=worker_id).delete()
            self.republish_queues_of([beat])

    def settle_orphan(
        self, orphan: Task, beat: WorkerHeartbeat | None, message: str, *, unless_alive: bool
    ) -> None:
        """Retry or fail a dead worker's task, or hand it back if it had not started.

        A row claimed before the worker's last heartbeat (``beat``), which
        listed what it was running, and not in that list, was waiting in its
        reserve at the time: it goes back to the queue unattempted.
        """
        if (
            beat is not None
            and orphan.started_at is not None
            and orphan.started_at < beat.last_heartbeat
            and str(orphan.pk) not in beat.running_uuids()
        ):
            if task_store().hand_back([orphan.pk], orphan.worker, unless_alive=unless_alive):
                logger.warning(
                    "Task %s: worker %s was gone before it started this prefetched task; "
                    "it is back in the queue, its attempt not counted.",
                    orphan.uuid,
                    orphan.worker,
                )
            return
        self.take_over(orphan, message, unless_alive=unless_alive)

    def republish_queues_of(self, dead: list[WorkerHeartbeat]) -> None:
        queues = {name for beat in dead for name in beat.queue_names()}
        if queues:
            # A dead worker may have held messages that it had not claimed yet:
            # put its queues' waiting rows back in the outbox. In the database,
            # not in this process, so that whichever worker reaps it, any
            # worker's outbox sweep publishes them again.
            count = Task.objects.filter(queue__in=queues).back_to_outbox()
            if count and self.needs_outbox:
                logger.warning(
                    "A dead worker may have held messages of %s: %s waiting tasks go back "
                    "to the outbox",
                    ", ".join(sorted(queues)),
                    count,
                )

    def lost_rows(self, ours: list[uuid.UUID]) -> None:
        """Rows in ``process`` for this worker that it is not running: retry or fail them.

        It happens when the database lost the commit of a result (a crash
        right after a commit that did not wait for the disk, see
        ``lane.relax_commits``), and when a worker restarts under a fixed
        ``--worker-id``: its id stays alive, so no one else takes over what
        the previous process left. The margin leaves rows just claimed alone.
        """
        margin = timedelta(seconds=max(10.0, 2 * float(qtasks_settings.HEARTBEAT_INTERVAL)))
        lost = (
            Task.objects.using(task_db())
            .running()
            .filter(worker=self.worker_id, started_at__lt=timezone.now() - margin)
            .exclude(pk__in=ours)
        )
        for row in lost:
            self.take_over(
                row,
                f"Worker {row.worker} is not running this task: it restarted, "
                "or the database lost its result.",
                unless_alive=False,
            )

    def take_over(self, orphan: Task, message: str, *, unless_alive: bool) -> None:
        """Retry ``orphan`` if it has attempts left, else fail it, with ``message``.

        ``unless_alive``: only if its worker is still dead when the row changes.
        """
        retry = orphan.attempts < orphan.max_attempts
        if not task_store().take_over(orphan, message, unless_alive=unless_alive):
            return
        if not retry:
            self.notifier.task_ended(orphan.pk)
        if self.observer is not None:
            self.observer.failed_over(orphan.task_name, retry)
        logger.warning(
            "Task %s: %s %s",
            orphan.uuid,
            message,
            "Retrying it." if retry else "No attempts left: failed.",
        )
