"""kombu's Redis transport, with one Redis client a channel instead of one a command."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from kombu.transport import redis


class RedisChannel(redis.Channel):
    """kombu builds a ``redis.Redis`` for every command it sends outside a
    pipeline (the ``LPUSH`` of each publish): a third of a publish's CPU.
    This channel keeps one, for as long as its connection pool is the
    channel's (kombu makes a new pool after a fork).
    """

    _shared_client: Any = None

    @contextlib.contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client is None:
            pool = self.pool
            if self._shared_client is None or self._shared_client.connection_pool is not pool:
                self._shared_client = self._create_client()
            client = self._shared_client
        yield client


class RedisTransport(redis.Transport):
    Channel = RedisChannel
