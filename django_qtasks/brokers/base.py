"""What every broker does. The Task row is the truth; a broker only delivers
messages that tell workers which tasks to claim, and when. Every change of a
row goes through the task store (``django_qtasks.store``), the broker's
marks of what it published included."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from django_qtasks.masking import mask_url

if TYPE_CHECKING:
    from django_qtasks.models import Task


class Broker(ABC):
    #: URL schemes this broker serves, e.g. ("django",).
    schemes: ClassVar[tuple[str, ...]] = ()
    #: True if rows can exist that the broker has no message for, so that
    #: workers must sweep the outbox (``publish_outbox``).
    needs_outbox: ClassVar[bool] = False
    #: True if workers receive messages (``take``) and claim the rows they name.
    #: If not, the rows are the messages: workers claim due rows from the table.
    delivers_messages: ClassVar[bool] = False

    def __init__(self, url: str) -> None:
        self.url = url

    @property
    def safe_url(self) -> str:
        """The URL with its password masked, for logs."""
        return mask_url(self.url)

    @abstractmethod
    def publish(self, task: Task) -> None:
        """Make a committed task known to workers. Runs in the client, on commit."""

    def publish_many(self, tasks: list[Task]) -> None:
        """``publish`` for each of these tasks, committed together (``add_task(s)``)."""
        for task in tasks:
            self.publish(task)

    def take(self, limit: int) -> list[tuple[UUID, Any]]:
        """Up to ``limit`` messages received and not taken yet: each names a task.

        The worker claims their rows (``TaskStore.claim_by_id``) and then
        settles them (``settle``). Only for a broker that ``delivers_messages``.
        """
        return []

    def settle(self, taken: list[tuple[UUID, Any]], claimed: set[UUID] | None) -> None:
        """The claim of ``taken`` is over: ``claimed`` holds the keys of the rows it got.

        Every message is acknowledged, claimed or not: a row that was not
        claimable (already run, cancelled, gone) makes its message a
        duplicate. ``None``: the claim failed, and the messages go back to
        be received again.
        """

    def start_consuming(
        self, queues: list[str], prefetch: int, on_work: Callable[[], object]
    ) -> None:
        """Start receiving work for these queues (a worker calls this once).

        A broker that learns of new work calls ``on_work()``, from any thread,
        once that work can be claimed; the worker then claims at once instead
        of at its next poll (``POLL_INTERVAL``).
        """

    def stop_consuming(self) -> None:
        """Stop receiving work; what was received but not claimed goes back."""

    def set_prefetch(self, count: int) -> None:
        """From now on, receive up to ``count`` messages ahead of claims.

        ``start_consuming``'s ``prefetch``, changed as the worker learns how
        long its tasks take. A broker that receives no messages ignores it.
        """

    def held(self) -> int:
        """How many messages were received and not claimed yet."""
        return 0

    def state(self) -> dict[str, Any]:
        """What the worker side holds and does now, for the worker's state report."""
        return {}

    def give_back(self, keep: int) -> None:
        """Hand the messages received beyond the first ``keep`` back, for any worker."""

    def publish_now(self, pks: list[UUID]) -> None:
        """Publish the waiting rows among ``pks`` that have no message (handed back).

        A row that still fails to publish stays in the outbox. A broker whose
        messages are the rows themselves has nothing to send.
        """

    def publish_outbox(self) -> int:
        """Publish ready rows that have no message yet; return how many."""
        return 0

    def redeliver(self, queues: list[str]) -> int:
        """Send again the messages of these queues' due rows left unclaimed too long.

        The reconciler, called by every worker at its outbox sweeps; a
        broker decides how often it looks. Returns how many it sent.
        """
        return 0

    def queues_back_to_outbox(self, queues: list[str]) -> None:
        """Messages of these queues' waiting tasks may be lost: send them again.

        Called when a consumer got its connection back and when a worker
        died; the next ``publish_outbox`` does it.
        """

    def close(self) -> None:
        """Release connections (called when a worker stops)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.safe_url!r}>"
