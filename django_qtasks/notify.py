"""Fast signals between processes: "task ended" and "cancel requested".

Without ``QTASKS["REDIS_CACHE_ALIAS"]`` nothing is sent and everyone polls the
database (clients waiting with ``timeout=``, workers checking for cancel
requests). With it, the named django-redis cache's connection carries Redis
pub/sub messages, so a waiting client wakes the moment its task ends and a
worker stops a task the moment it is cancelled. The database stays the truth:
a message only says "look now", and polling remains as a safety net.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from django.core.signals import setting_changed
from django.dispatch import receiver

from django_qtasks.conf import SETTING_NAME, qtasks_settings

logger = logging.getLogger("django_qtasks.notify")


class Listener:
    """Waits for a message on one channel (or, without Redis, just sleeps)."""

    def __init__(self, pubsub: Any = None) -> None:
        self.pubsub = pubsub

    def wait(self, timeout: float) -> bool:
        """Return True if a message arrived within ``timeout`` seconds."""
        if self.pubsub is None:
            time.sleep(timeout)
            return False
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            message = self.pubsub.get_message(ignore_subscribe_messages=True, timeout=remaining)
            if message is not None:
                return True
        return False


class Notifier:
    """No Redis: nothing to send; listeners sleep, callers poll."""

    fast = False

    def task_ended(self, uuid: UUID) -> None:
        return None

    def cancel_requested(self, uuid: UUID) -> None:
        return None

    @contextmanager
    def listen_ended(self, uuid: UUID) -> Iterator[Listener]:
        yield Listener()

    def watch_cancels(self, on_cancel: Callable[[], None], stop: threading.Event) -> None:
        """Call ``on_cancel`` whenever a cancel is requested, until ``stop`` (a thread body)."""
        return None


class RedisNotifier(Notifier):
    fast = True

    def __init__(self, alias: str, prefix: str) -> None:
        from django_redis import get_redis_connection

        self.redis = get_redis_connection(alias)
        self.prefix = prefix

    def channel(self, *parts: object) -> str:
        return ":".join([self.prefix, *map(str, parts)])

    def publish(self, channel: str) -> None:
        try:
            self.redis.publish(channel, b"1")
        except Exception as exc:  # the database still holds the truth
            logger.warning("Could not signal %s through Redis: %s", channel, exc)

    def task_ended(self, uuid: UUID) -> None:
        self.publish(self.channel("ended", uuid))

    def cancel_requested(self, uuid: UUID) -> None:
        self.publish(self.channel("cancel"))

    @contextmanager
    def listen_ended(self, uuid: UUID) -> Iterator[Listener]:
        pubsub = self.redis.pubsub()
        try:
            pubsub.subscribe(self.channel("ended", uuid))
        except Exception as exc:
            logger.warning("Redis unreachable (%s); waiting by polling the database", exc)
            pubsub.close()
            yield Listener()
            return
        try:
            yield Listener(pubsub)
        finally:
            pubsub.close()

    def watch_cancels(self, on_cancel: Callable[[], None], stop: threading.Event) -> None:
        pause = 1.0
        while not stop.is_set():
            pubsub = self.redis.pubsub()
            try:
                pubsub.subscribe(self.channel("cancel"))
                listener = Listener(pubsub)
                pause = 1.0
                # Requests made before it listened (at the start, or while
                # Redis was unreachable) sent messages that it never got.
                on_cancel()
                while not stop.is_set():
                    if listener.wait(0.5):
                        on_cancel()
            except Exception as exc:
                logger.error(
                    "Redis unreachable for cancel signals (%s); retrying in %.0fs", exc, pause
                )
                stop.wait(pause)
                pause = min(pause * 2, 30.0)
            finally:
                pubsub.close()


_lock = threading.Lock()
_notifier: Notifier | None = None


def get_notifier() -> Notifier:
    global _notifier
    with _lock:
        if _notifier is None:
            alias = qtasks_settings.REDIS_CACHE_ALIAS
            _notifier = RedisNotifier(alias, qtasks_settings.QUEUE_PREFIX) if alias else Notifier()
        return _notifier


def reset_notifier() -> None:
    global _notifier
    with _lock:
        _notifier = None


@receiver(setting_changed)
def _reset_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        reset_notifier()
