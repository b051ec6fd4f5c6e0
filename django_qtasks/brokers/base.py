"""What every broker does. The Task row is the truth; a broker only decides
which worker runs which task, and when."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from django_qtasks.models import Task


class Broker(ABC):
    #: URL schemes this broker serves, e.g. ("django",).
    schemes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, url: str) -> None:
        self.url = url

    @abstractmethod
    def publish(self, task: Task) -> None:
        """Make a committed task known to workers. Runs in the client, on commit."""

    @abstractmethod
    def claim(self, queues: list[str], limit: int, worker_id: str) -> list[Task]:
        """Take up to ``limit`` due tasks for this worker and mark them ``process``.

        Returns their records. A task is never returned to two workers.
        """

    def wait(self, timeout: float) -> None:
        """Block until work may be waiting, or ``timeout`` seconds pass."""
        time.sleep(timeout)

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections (called when a worker stops)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url!r}>"
