"""The worker (``manage.py qtasks_worker``): ``worker.Worker`` and its parts.

``Worker`` is loaded on first use: ``worker.executor``, the documented
extension point, is also what the django.tasks backend runs tasks with, and
importing it must not load the whole worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django_qtasks.worker.worker import Worker

__all__ = ["Worker"]


def __getattr__(name: str) -> Any:
    if name == "Worker":
        from django_qtasks.worker.worker import Worker

        return Worker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
