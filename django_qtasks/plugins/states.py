"""States: data that a worker's tasks share, as QTasks' ``State`` plugin.

A task parameter annotated with a subclass of ``AsyncState`` (or
``SyncState``) receives an instance of it; every instance of one class
reads and writes the same data, under a lock::

    class Signup(AsyncState):
        pass

    @app.task
    async def step1(state: Signup):
        await state.set("state", "await_phone")

As in QTasks, the data lives in the worker process: tasks run by the same
worker share it, and it is gone when the worker stops. Data that must
outlive a worker, or be seen by every worker, belongs in the database.
"""

from __future__ import annotations

import threading
from typing import Any

#: Each state class's data, in this worker process.
_data: dict[type, dict[str, Any]] = {}
_lock = threading.Lock()


def _values(state: object) -> dict[str, Any]:
    return _data.setdefault(type(state), {})


class SyncState:
    """Shared key-value data of one state class: ``get``, ``set``, ``update``, ...."""

    def get(self, key: str | None = None, default: Any = None) -> Any:
        with _lock:
            values = _values(self)
            return dict(values) if key is None else values.get(key, default)

    def get_all(self) -> dict[str, Any]:
        with _lock:
            return dict(_values(self))

    def set(self, key: str, value: Any) -> None:
        with _lock:
            _values(self)[key] = value

    def update(self, **kwargs: Any) -> dict[str, Any]:
        with _lock:
            values = _values(self)
            values.update(kwargs)
            return dict(values)

    def delete(self, key: str) -> None:
        with _lock:
            _values(self).pop(key, None)

    def clear(self) -> None:
        with _lock:
            _values(self).clear()


class AsyncState:
    """``SyncState`` with awaitable methods, for async tasks."""

    async def get(self, key: str | None = None, default: Any = None) -> Any:
        return SyncState.get(self, key, default)  # type: ignore[arg-type]

    async def get_all(self) -> dict[str, Any]:
        return SyncState.get_all(self)  # type: ignore[arg-type]

    async def set(self, key: str, value: Any) -> None:
        SyncState.set(self, key, value)  # type: ignore[arg-type]

    async def update(self, **kwargs: Any) -> dict[str, Any]:
        return SyncState.update(self, **kwargs)  # type: ignore[arg-type]

    async def delete(self, key: str) -> None:
        SyncState.delete(self, key)  # type: ignore[arg-type]

    async def clear(self) -> None:
        SyncState.clear(self)  # type: ignore[arg-type]


__all__ = ["AsyncState", "SyncState"]
