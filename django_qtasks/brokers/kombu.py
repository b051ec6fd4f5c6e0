"""Any kombu URL (``redis://``, ``amqp://``, ...): scale out on a message broker.

The Task row stays the truth and a message carries only its uuid. A task is
published when its row commits and marked ``published_at``; if the broker is
down then, the row waits in the outbox and workers publish it once the broker
is back (see ``publish_outbox``). Workers ack a message as soon as they have
claimed its row, so a long task is never delivered twice (no Redis
visibility timeout can expire under it); a worker that dies leaves its tasks
to the heartbeat fail-over, which puts them back in the outbox.

On Redis the consumer takes messages without acks at all: kombu's Redis
transport would keep each in an "unacked" hash and sorted set, with a
transaction at delivery and another at the ack, to restore it after a
visibility timeout; the outbox already covers every case that needs (a lost
connection, a dead worker, a worker stopping with messages not yet claimed).
The consumer takes messages only while it holds fewer than ``prefetch``:
on Redis 7 and later as many as there is room for in one ``BLMPOP`` from
kombu's own lists (``consume_lists``), before that one per ``BRPOP``. With
``PREFETCH = "auto"`` the worker moves that bound with how many tasks it
claims ahead (``set_prefetch``), and gives back what it holds beyond its
slots when runs turn out long (``give_back``).
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from django.db import connections
from django.db.models import Q
from django.utils import timezone
from kombu import Connection, Exchange, Message, Producer, Queue
from kombu.pools import ProducerPool, get_limit
from kombu.serialization import prepare_accept_content

from django_qtasks.brokers.base import Broker
from django_qtasks.conf import qtasks_settings
from django_qtasks.models import Task, task_db, task_store
from django_qtasks.stalls import watching

logger = logging.getLogger("django_qtasks.broker")

REDIS_SCHEMES = ("redis", "rediss")
#: Nothing from the broker is ever unpickled.
JSON_ONLY = prepare_accept_content(["json"])
#: kombu priorities run 0..9; RabbitMQ serves the highest first, Redis the lowest.
PRIORITY_STEPS = 10
REVERSED_PRIORITY_SCHEMES = ("amqp", "amqps", "pyamqp", "librabbitmq")
DEFAULT_TRANSPORT_OPTIONS: dict[str, dict[str, Any]] = {
    "redis": {
        "priority_steps": list(range(PRIORITY_STEPS)),
        "sep": ":",
        "queue_order_strategy": "priority",
        # kombu waits forever on a connection whose server vanished without
        # closing it (a fail-over, a NAT timeout): a publish or a receive
        # would block a worker's thread for good. Ours take milliseconds.
        "socket_timeout": 30.0,
    },
}
#: A new row is left to the client that wrote it for this long before a
#: worker's outbox sweep publishes it in its place.
OUTBOX_GRACE = timedelta(seconds=2)


class KombuBroker(Broker):
    needs_outbox = True
    delivers_messages = True

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.scheme = urlsplit(url).scheme
        transport = "redis" if self.scheme in REDIS_SCHEMES else self.scheme
        self.transport_options = {
            **DEFAULT_TRANSPORT_OPTIONS.get(transport, {}),
            **qtasks_settings.BROKER_TRANSPORT_OPTIONS,
        }
        self.prefix = qtasks_settings.QUEUE_PREFIX
        self.exchange = Exchange(self.prefix, type="direct", durable=True)
        #: This broker's own pool of producers, each on a connection of its
        #: own (kombu connections are not thread-safe). Not kombu's global
        #: ``producers``: ``close`` would close the pool every later broker
        #: for the same URL gets from it ("Acquire on closed pool").
        self._producers: ProducerPool | None = None
        self._lock = threading.Lock()
        self._consumer: Consumer | None = None
        #: Queues whose waiting rows to publish again (see ``queues_back_to_outbox``).
        self._queues_back_to_outbox: set[str] = set()
        #: ``time.monotonic()`` of the next ``redeliver``: 0, at the first sweep.
        self._next_redelivery = 0.0

    def connection(self) -> Connection:
        return Connection(
            self.url,
            transport=transport_class(self.scheme),
            transport_options=self.transport_options,
            connect_timeout=2,
        )

    def queue(self, name: str) -> Queue:
        return Queue(
            f"{self.prefix}.{name}",
            self.exchange,
            routing_key=name,
            durable=True,
            max_priority=PRIORITY_STEPS - 1,
        )

    def message_priority(self, priority: int) -> int:
        step = min(max(priority, 0), PRIORITY_STEPS - 1)
        if self.scheme in REVERSED_PRIORITY_SCHEMES:
            return PRIORITY_STEPS - 1 - step
        return step

    # Client side --------------------------------------------------------------

    def publish(self, task: Task) -> None:
        self.publish_many([task])

    def publish_many(self, tasks: list[Task]) -> None:
        now = timezone.now()
        # Not due yet: the outbox sweep publishes them when they are.
        due = [task for task in tasks if task.run_after is None or task.run_after <= now]
        sent, error = self.send_all(due)
        if error is not None:
            unsent = len(due) - len(sent)
            logger.warning(
                "Could not publish task %s%s to %s (%s); it stays in the outbox and a "
                "worker publishes it once the broker is back.",
                due[len(sent)].uuid,
                f" and {unsent - 1} more" if unsent > 1 else "",
                self.safe_url,
                error,
            )
        if sent:
            task_store().mark_published(sent, timezone.now())

    def publish_now(self, pks: list[UUID]) -> None:
        self.publish_many(
            list(
                Task.objects.using(task_db()).ready().filter(pk__in=pks, published_at__isnull=True)
            )
        )

    def send_all(self, tasks: list[Task]) -> tuple[list[Task], Exception | None]:
        """Publish a message for each task, in order; return the tasks sent, and what stopped it.

        On Redis with kombu 5.7+ (``Producer.batch``) the messages go in one
        pipeline, where kombu sends one command a round trip; if it fails,
        none counts as sent, and the outbox publishes them all again (a
        duplicate is dropped at its claim).
        """
        sent: list[Task] = []
        if not tasks:
            return sent, None
        batched = False
        try:
            with self.producers().acquire(block=True, timeout=5) as producer:
                batched = len(tasks) > 1 and hasattr(producer, "batch")
                with producer.batch() if batched else contextlib.nullcontext():
                    for task in tasks:
                        self.send(producer, task)
                        sent.append(task)
        except Exception as exc:
            return ([] if batched else sent), exc
        return sent, None

    def producers(self) -> ProducerPool:
        with self._lock:
            if self._producers is None:
                self._producers = ProducerPool(
                    self.connection().Pool(limit=get_limit()), limit=get_limit()
                )
            return self._producers

    def send(self, producer: Producer, task: Task) -> None:
        queue = self.queue(task.queue)
        # Straight to the queue, through the default exchange: on Redis, a
        # named exchange costs a lookup of its bindings at every publish.
        producer.publish(
            {"uuid": str(task.uuid)},
            exchange="",
            routing_key=queue.name,
            declare=[queue],
            priority=self.message_priority(task.priority),
            serializer="json",
            delivery_mode=2,
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0.1, "interval_step": 0.5},
        )

    def queues_back_to_outbox(self, queues: list[str]) -> None:
        """Put every waiting row of these queues back in the outbox (next sweep).

        For when messages may be gone: the broker came back after an outage
        (a Redis restarted without persistence has lost its queues), or a
        worker died holding messages it had received but not claimed (Redis
        keeps those unacked for its whole visibility timeout, an hour by
        default). A message that did survive becomes a duplicate, which a
        worker acks without running it.
        """
        with self._lock:
            self._queues_back_to_outbox.update(queues)

    def publish_outbox(self, limit: int = 500) -> int:
        """Publish ready, due rows that no message stands for (the outbox)."""
        with self._lock:
            queues = set(self._queues_back_to_outbox)
        if queues:
            count = Task.objects.filter(queue__in=queues).back_to_outbox()
            with self._lock:
                self._queues_back_to_outbox -= queues
            if count:
                logger.warning(
                    "Messages may be lost (%s reconnected, or a worker died): publishing %s "
                    "waiting tasks of %s again",
                    self.safe_url,
                    count,
                    ", ".join(sorted(queues)),
                )
        now = timezone.now()
        # Delayed rows are the sweep's alone (publish() leaves them): no grace.
        unsent = Q(created_at__lt=now - OUTBOX_GRACE) | Q(run_after__isnull=False)
        rows = (
            Task.objects.using(task_db())
            .ready()
            .filter(unsent, published_at__isnull=True)
            .exclude(run_after__gt=now)
            .order_by("priority", "created_at")[:limit]
        )
        sent, error = self.send_all(list(rows))
        if error is not None:
            logger.error(
                "Broker %s is unreachable (%s); outbox kept for later.", self.safe_url, error
            )
        if sent:
            task_store().mark_published(sent, now)
            logger.info("Published %s tasks from the outbox to %s", len(sent), self.safe_url)
        return len(sent)

    def redeliver(self, queues: list[str], limit: int = 500) -> int:
        """Send again the messages of due rows left unclaimed too long; return how many.

        The row is the truth, not ``published_at``: a message can be lost
        whatever its row says (a key deleted from Redis, a consumer of another
        environment on the same broker and ``QUEUE_PREFIX``). A row that is
        due and waiting ``REDELIVER_AFTER`` seconds after its message was
        sent is sent again when its queue holds fewer messages on the broker
        than it has such rows: those cannot all be waiting their turn there.
        A long queue is left alone (no duplicate of a whole backlog), and
        each row is sent again by one worker only, at most once a
        ``REDELIVER_AFTER``. Runs at most every half ``REDELIVER_AFTER``.
        """
        bound = float(qtasks_settings.REDELIVER_AFTER)
        with self._lock:
            if time.monotonic() < self._next_redelivery:
                return 0
            self._next_redelivery = time.monotonic() + bound / 2
        now = timezone.now()
        cutoff = now - timedelta(seconds=bound)
        # The claim's own query and index (qtasks_waiting_idx), and a limit.
        stale = Task.objects.using(task_db()).due(queues, now).filter(published_at__lt=cutoff)
        by_queue: dict[str, list[UUID]] = {}
        for pk, queue in stale.values_list("pk", "queue")[:limit]:
            by_queue.setdefault(queue, []).append(pk)
        if not by_queue:
            return 0
        try:
            waiting = self.message_counts(list(by_queue))
        except Exception as exc:
            logger.error("Broker %s is unreachable (%s); redelivery later.", self.safe_url, exc)
            return 0
        count = 0
        for queue, pks in by_queue.items():
            if waiting[queue] < len(pks):
                count += self.send_again(queue, pks, cutoff, waiting[queue], bound)
        return count

    def message_counts(self, queues: list[str]) -> dict[str, int]:
        """How many messages wait in each of these queues on the broker (not those received)."""
        with self.producers().acquire(block=True, timeout=5) as producer:
            return {
                name: int(self.queue(name)(producer.channel).queue_declare().message_count)
                for name in queues
            }

    def send_again(
        self, queue: str, pks: list[UUID], cutoff: datetime, waiting: int, bound: float
    ) -> int:
        """``redeliver`` for rows of one queue: marked first, so that one worker sends each."""
        rows = task_store().mark_for_redelivery(pks, sent_before=cutoff)
        if not rows:
            return 0  # another worker took them
        logger.warning(
            "%s tasks of queue %s are due and unclaimed %.0fs after their messages were sent, "
            "and the broker holds %s messages for that queue: their messages were lost "
            "(or are held by a busy worker); sending them again: %s",
            len(rows),
            queue,
            bound,
            waiting,
            ", ".join(str(row.uuid) for row in rows[:20]) + (" ..." if len(rows) > 20 else ""),
        )
        sent, error = self.send_all(rows)
        if error is not None:
            unsent = [row.pk for row in rows[len(sent) :]]
            # Back to the outbox, which sends them once the broker is back.
            Task.objects.filter(pk__in=unsent).back_to_outbox()
            logger.error(
                "Broker %s is unreachable (%s); %s tasks back in the outbox.",
                self.safe_url,
                error,
                len(unsent),
            )
        return len(sent)

    # Worker side --------------------------------------------------------------

    def start_consuming(
        self, queues: list[str], prefetch: int, on_work: Callable[[], object]
    ) -> None:
        self._consumer = Consumer(self, queues, prefetch, on_work)
        self._consumer.start()

    def stop_consuming(self) -> None:
        if self._consumer is not None:
            self._consumer.stop()
            self._consumer = None

    def set_prefetch(self, count: int) -> None:
        # Redis only: RabbitMQ fixes a consumer's prefetch when it starts.
        if self._consumer is not None and not self._consumer.acks:
            self._consumer.prefetch = count  # read by the consumer's thread

    def held(self) -> int:
        return self._consumer.held() if self._consumer is not None else 0

    def state(self) -> dict[str, Any]:
        consumer = self._consumer
        if consumer is None:
            return {"consumer": None}
        with consumer.buffer_lock:
            buffered, taken = len(consumer.buffer), consumer.taken
        return {
            "consumer alive": consumer.is_alive(),
            "prefetch": consumer.prefetch,
            "unsettled": consumer.unsettled,
            "buffered": buffered,
            "taken": taken,
            "to settle": len(consumer.to_settle),
            "last receive": consumer.last_receive,
        }

    def give_back(self, keep: int) -> None:
        if self._consumer is not None:
            self._consumer.give_back(keep)

    def take(self, limit: int) -> list[tuple[UUID, Message]]:
        assert self._consumer is not None, "start_consuming() first"
        return self._consumer.take(limit)

    def settle(self, taken: list[tuple[UUID, Message]], claimed: set[UUID] | None) -> None:
        assert self._consumer is not None, "start_consuming() first"
        if claimed is None:
            self._consumer.settle(taken, requeue=True)
            return
        # Messages whose row was not claimable (already run, cancelled, gone)
        # are duplicates: ack them too.
        self._consumer.settle(taken, requeue=False)
        if len(claimed) < len(taken):
            self.log_unknown([(uuid, message) for uuid, message in taken if uuid not in claimed])
            if self._consumer.has_buffered():
                # Duplicates made this claim short, yet messages wait: claim again.
                self._consumer.on_work()

    def log_unknown(self, messages: list[tuple[UUID, Message]]) -> None:
        """Say which of these unclaimed messages name no row in this database (dropped)."""
        using = task_db()
        known = set(
            Task.objects.using(using)
            .filter(pk__in=[uuid for uuid, _ in messages])
            .values_list("pk", flat=True)
        )
        for uuid, message in messages:
            if uuid in known:
                continue  # a duplicate: its task ran, or runs elsewhere
            logger.warning(
                "Dropped the message of task %s from queue %s: no such task in database %r. "
                "Another project or environment may consume this broker with the same "
                "QUEUE_PREFIX (%r): give each its own, or its own Redis database (its "
                "workers send the message again from their rows). Or the task was deleted.",
                uuid,
                (message.delivery_info or {}).get("routing_key", "?"),
                connections[using].settings_dict.get("NAME", using),
                self.prefix,
            )

    def close(self) -> None:
        self.stop_consuming()
        with self._lock:
            if self._producers is not None:
                self._producers.force_close_all()
                self._producers.connections.force_close_all()
                self._producers = None


def transport_class(scheme: str) -> type | None:
    """Our transport for ``scheme``; None: kombu's own."""
    if scheme == "redis":  # (rediss: kombu sets TLS up by that name)
        # Here, not at the top: kombu's Redis transport needs redis-py.
        from django_qtasks.brokers.redis_transport import RedisTransport

        return RedisTransport
    return None


def load_transport(url: str) -> None:
    """Import the transport of ``url`` and its client library, as a first publish would.

    Connects to nothing. Raises what the import raises (ImportError, most
    often: kombu imports some client libraries only when a transport is made).
    """
    Connection(url, transport=transport_class(urlsplit(url).scheme)).transport  # noqa: B018


class Consumer(threading.Thread):
    """Receives messages in its own thread, which also acks them.

    kombu connections are not thread-safe: every call on this connection
    happens in this thread; other threads hand it messages to settle.
    """

    def __init__(
        self,
        broker: KombuBroker,
        queues: list[str],
        prefetch: int,
        on_work: Callable[[], object],
    ) -> None:
        super().__init__(name="qtasks-broker", daemon=True)
        self.broker = broker
        self.queues = queues
        #: The most messages held unsettled; on Redis the worker changes it
        #: (``set_prefetch``).
        self.prefetch = prefetch
        self.on_work = on_work
        #: False on Redis: messages are taken without acks (see the module's docstring).
        self.acks = broker.scheme not in REDIS_SCHEMES
        #: Received, not yet claimed (guarded by ``buffer_lock``).
        self.buffer: collections.deque[tuple[UUID, Message]] = collections.deque()
        #: Taken by claims that have not settled them yet (guarded by ``buffer_lock``).
        self.taken = 0
        self.buffer_lock = threading.Lock()
        self.to_settle: collections.deque[tuple[Message, bool]] = collections.deque()
        #: Messages received and not settled yet. At ``prefetch`` of them the
        #: broker sends no more: the thread then waits for settlements instead.
        self.unsettled = 0
        self.settled = threading.Condition()
        self.stopping = threading.Event()
        #: Seconds to wait before the next reconnection (doubled each time, up to 30).
        self.pause = 1.0
        #: Since when it has held its whole prefetch with nothing buffered (``check_count``).
        self.full_since: float | None = None
        #: How long that may last before the count is repaired (read once: a hot path).
        self.count_check_after = float(qtasks_settings.STALL_WARNING)
        #: What its receive is called in a stall warning (``watching``), made once.
        self.receiving = f"The consumer of {broker.safe_url}"
        #: When it last asked Redis for messages, for how many, and how many came.
        self.last_receive: tuple[str, int, int] | None = None

    def take(self, limit: int) -> list[tuple[UUID, Message]]:
        """Messages for a claim, which then settles them (``settle``)."""
        with self.buffer_lock:
            taken = [self.buffer.popleft() for _ in range(min(limit, len(self.buffer)))]
            self.taken += len(taken)
        return taken

    def has_buffered(self) -> bool:
        with self.buffer_lock:
            return bool(self.buffer)

    def held(self) -> int:
        with self.buffer_lock:
            return len(self.buffer)

    def give_back(self, keep: int) -> None:
        """Hand back the messages received after the first ``keep``, for any worker to take.

        With acks, the broker delivers them again. Taken without acks
        (Redis), they are published again: their rows go back to the outbox
        first, so that a failed publish leaves them to the next sweep.
        """
        with self.buffer_lock:
            excess = [self.buffer.pop() for _ in range(max(0, len(self.buffer) - keep))]
        if not excess:
            return
        excess.reverse()
        if self.acks:
            self.send_settlements(excess, requeue=True)
            return
        uuids = [uuid for uuid, _ in excess]
        try:
            Task.objects.filter(pk__in=uuids).back_to_outbox()
        except Exception:
            with self.buffer_lock:
                self.buffer.extend(excess)
            raise
        self.send_settlements(excess, requeue=False)  # no longer held here
        self.broker.publish_now(uuids)

    def settle(self, messages: list[tuple[UUID, Message]], requeue: bool) -> None:
        """Ack the claimed messages, or give them back (``requeue``: the claim failed)."""
        with self.buffer_lock:
            self.taken -= len(messages)
        self.send_settlements(messages, requeue)

    def send_settlements(self, messages: list[tuple[UUID, Message]], requeue: bool) -> None:
        if requeue and not self.acks:
            # Nothing to give back to Redis: they wait here for the next claim.
            with self.buffer_lock:
                self.buffer.extendleft(reversed(messages))
            self.on_work()
            return
        with self.settled:
            self.to_settle.extend((message, requeue) for _, message in messages)
            self.settled.notify()

    def stop(self) -> None:
        self.stopping.set()
        with self.settled:
            self.settled.notify()
        self.join(10)

    def on_message(self, body: Any, message: Message) -> None:
        try:
            uuid = UUID(body["uuid"])
        except (TypeError, KeyError, ValueError, AttributeError):
            logger.error("Dropping a message that names no task: %r", body)
            if self.acks:
                message.ack()
            return
        self.unsettled += 1
        with self.buffer_lock:
            self.buffer.append((uuid, message))
            # The worker claims all it can take of the buffer once woken: wake
            # it for the first message only.
            first = len(self.buffer) == 1
        if first:
            self.on_work()

    def run(self) -> None:
        try:
            self.receive()
        except BaseException:
            # Never expected (every error of the broker is retried): say it,
            # since this worker receives nothing from now on.
            logger.critical(
                "The consumer of %s stopped on an unexpected error: this worker receives "
                "no more messages; restart it",
                ", ".join(self.queues),
                exc_info=True,
            )
            raise

    def receive(self) -> None:
        lost = False
        while not self.stopping.is_set():
            try:
                with self.broker.connection() as connection:
                    with watching(f"The consumer's connection to {self.broker.safe_url}"):
                        connection.ensure_connection(max_retries=1)
                    if lost:
                        self.broker.queues_back_to_outbox(self.queues)
                        lost = False
                    self.consume(connection)
            except Exception as exc:
                lost = True
                if self.acks:
                    # Unacked messages of the lost connection go back to the
                    # broker, which delivers them again.
                    with self.buffer_lock:
                        self.buffer.clear()
                else:
                    self.give_back_unclaimed()
                self.to_settle.clear()
                self.unsettled = 0
                logger.error(
                    "Broker %s is unreachable (%s); reconnecting in %.0fs",
                    self.broker.safe_url,
                    exc,
                    self.pause,
                )
                self.stopping.wait(self.pause)
                self.pause = min(self.pause * 2, 30.0)
        if not self.acks:
            self.give_back_unclaimed()
        connections.close_all()

    def give_back_unclaimed(self) -> None:
        """Messages taken without acks and never claimed: their rows go back to the outbox."""
        with self.buffer_lock:
            uuids = [uuid for uuid, _ in self.buffer]
            self.buffer.clear()
        if not uuids:
            return
        try:
            Task.objects.filter(pk__in=uuids).back_to_outbox()
        except Exception as exc:
            logger.error(
                "Could not return %s unclaimed tasks to the outbox (%s): %s",
                len(uuids),
                exc,
                ", ".join(str(uuid) for uuid in uuids),
            )

    def consume(self, connection: Connection) -> None:
        queues = [self.broker.queue(name) for name in self.queues]
        if not self.acks and pops_many(connection):
            self.consume_lists(connection, [queue.name for queue in queues])
            return
        with connection.Consumer(
            queues,
            callbacks=[self.on_message],
            accept=["json"],
            no_ack=not self.acks,
            # Set before it consumes: RabbitMQ applies a prefetch to the
            # consumers started after it, and would push them every message.
            prefetch_count=self.prefetch if self.acks else None,
        ):
            self.connected()
            while not self.stopping.is_set():
                with watching(self.receiving):
                    if self.settle_or_wait(connection):
                        try:
                            connection.drain_events(timeout=0.1)
                        except TimeoutError:  # socket.timeout: nothing arrived
                            connection.heartbeat_check()

    def consume_lists(self, connection: Connection, names: list[str]) -> None:
        """Redis 7+: take as many messages as there is room for with one ``BLMPOP``.

        kombu's consumer takes one message per ``BRPOP``. These are kombu's
        own lists and messages, read in the same order: the highest priority
        first (one list per priority step), the queues taken in turn.
        """
        channel: Any = connection.default_channel  # kombu.transport.redis.Channel
        self.connected()
        while not self.stopping.is_set():
            with watching(self.receiving):
                self.pop_lists(connection, channel, names)

    def pop_lists(self, connection: Connection, channel: Any, names: list[str]) -> None:
        room = self.prefetch - self.unsettled if self.settle_or_wait(connection) else 0
        if room <= 0:  # (set_prefetch may have lowered it meanwhile)
            return
        keys = [
            channel.global_keyprefix + channel._q_for_pri(name, step)
            for step in channel.priority_steps
            for name in names
        ]
        popped = channel.client.blmpop(0.1, len(keys), *keys, direction="RIGHT", count=room)
        self.last_receive = (time.strftime("%H:%M:%S"), room, len(popped[1]) if popped else 0)
        if popped:
            for payload in popped[1]:
                self.on_payload(channel, payload)
            names.append(names.pop(0))

    def on_payload(self, channel: Any, payload: bytes) -> None:
        """A message read from a kombu list: decoded as kombu's consumer would, JSON only."""
        try:
            message = channel.message_to_python(json.loads(payload))
            message.accept = JSON_ONLY
            body = message.decode()
        except Exception as exc:
            logger.error("Dropping a message that is not kombu's JSON (%s): %r", exc, payload)
            return
        self.on_message(body, message)

    def check_count(self) -> None:
        """Repair ``unsettled`` if it counts messages that nobody holds.

        Full, the consumer waits for the worker's claims to take messages from
        its buffer and settle them. Full with none buffered nor taken, for
        ``STALL_WARNING`` seconds, means the count is wrong, and the worker
        would receive nothing more: say so, and count again from nothing.
        """
        with self.buffer_lock:
            held = len(self.buffer) + self.taken
        now = time.monotonic()
        if held or self.full_since is None:
            self.full_since = None if held else now
            return
        if now - self.full_since < self.count_check_after:
            return
        logger.error(
            "The consumer of %s counted %s messages unsettled (its prefetch: %s) for %.0fs "
            "while it held none: it counts again from 0",
            ", ".join(self.queues),
            self.unsettled,
            self.prefetch,
            now - self.full_since,
        )
        self.unsettled = 0
        self.full_since = None

    def connected(self) -> None:
        logger.info("Consuming %s from %s", ", ".join(self.queues), self.broker.safe_url)
        self.pause = 1.0  # the backoff starts over at the next outage

    def settle_or_wait(self, connection: Connection) -> bool:
        """Send the settlements due; return whether there is room to take more messages."""
        while self.to_settle:
            message, requeue = self.to_settle.popleft()
            if self.acks:  # else taken without an ack: nothing to tell Redis
                if requeue:
                    message.requeue()
                else:
                    message.ack()
            self.unsettled -= 1
        if self.unsettled < self.prefetch:
            self.full_since = None
            return True
        self.check_count()
        # Take no more (RabbitMQ sends none before an ack, and on Redis we
        # stop polling): wait for the worker's claim.
        with self.settled:
            self.settled.wait_for(lambda: self.to_settle or self.stopping.is_set(), timeout=0.1)
        connection.heartbeat_check()
        return False


def pops_many(connection: Connection) -> bool:
    """Whether this Redis server has ``BLMPOP`` (7.0 and later)."""
    channel: Any = connection.default_channel
    version = str(channel.client.info("server").get("redis_version", ""))
    try:
        return tuple(int(part) for part in version.split(".")[:2]) >= (7, 0)
    except ValueError:  # a Redis-compatible server with a numbering of its own
        return False
