"""pytest fixtures for projects that use django-qtasks (loaded through the ``pytest11``
entry point; they need pytest-django).

- ``qtasks_immediate``: tasks run in the test's process when they are
  enqueued, or when their transaction commits (``QTASKS["IMMEDIATE"]``);
- ``qtasks_worker``: a real worker, in a thread, for the test's duration,
  on queues of its own; it asks for ``transactional_db``, since it sees
  only committed rows.

The helpers they go with are in ``django_qtasks.testing``: ``run_pending``,
``enqueued``, ``assert_enqueued``, ``wait_for``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from django_qtasks.testing import WorkerThread


@pytest.fixture
def qtasks_immediate() -> Iterator[None]:
    """Run tasks in the test's process when they are enqueued (``QTASKS["IMMEDIATE"]``)."""
    from django_qtasks.testing import immediate

    with immediate():
        yield


@pytest.fixture
def qtasks_worker(transactional_db: None) -> Iterator[WorkerThread]:
    """A real worker for the test's duration, in a thread, on queues of its own.

    It serves ``QTASKS["DEFAULT_QUEUE"]``; for other queues, make your own
    fixture with ``django_qtasks.testing.WorkerThread(queues=[...])``.
    """
    from django_qtasks.testing import WorkerThread

    with WorkerThread() as worker:
        yield worker
