"""What a task costs in immediate mode (``QTASKS["IMMEDIATE"]``), as a test sees it.

    QTASKS_DB=postgres .venv/bin/python benchmarks/immediate.py [--tasks 300]
    QTASKS_DB=sqlite .venv/bin/python benchmarks/immediate.py

With the tests' settings and a test database of its own, it enqueues a sync
and an async no-op task in immediate mode: inside a transaction that a test
case would roll back (pytest-django's ``db``, ``TestCase``), and in
autocommit (``transactional_db``), and prints the database queries of one
``add_task`` (insert, claim, outcome, refresh) and the time per task.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300, help="tasks timed per case")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "testproject")]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    logging.disable(logging.INFO)
    from django.db import connection
    from django.test.runner import DiscoverRunner

    from django_qtasks.testing import immediate
    from tests.testapp.tasks import async_echo, echo

    runner = DiscoverRunner(verbosity=0)
    databases = runner.setup_databases()
    vendor = connection.vendor
    try:
        with immediate():
            for case in ("test case transaction", "autocommit"):
                for handle in (echo, async_echo):
                    queries, took = timed(handle, args.tasks, rolled_back=case != "autocommit")
                    print(
                        f"{vendor:10} {case:22} {handle.task_name:10} "
                        f"{queries} queries/task  {took / args.tasks * 1000:.2f} ms/task"
                    )
    finally:
        runner.teardown_databases(databases)


def timed(handle: Any, count: int, rolled_back: bool) -> tuple[int, float]:
    """Queries of one add_task, and seconds for ``count``; in a test case's transaction
    (rolled back, immediate mode runs at once in it) or in autocommit."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    block = transaction.atomic() if rolled_back else contextlib.nullcontext()
    if rolled_back:
        block._from_testcase = True  # as TestCase's own
    with block:
        handle.add_task(0)
        with CaptureQueriesContext(connection) as queries:
            handle.add_task(1)
        start = time.perf_counter()
        for value in range(count):
            handle.add_task(value)
        took = time.perf_counter() - start
        if rolled_back:
            transaction.set_rollback(True)
    return len(queries.captured_queries), took


if __name__ == "__main__":
    main()
