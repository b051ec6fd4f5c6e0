"""How few statements a worker sends at full load: claims and result writes, counted.

tests/test_worker_queries.py asserts the bounds that hold however the runs
interleave (a claim and a write per task at most). How far below them a
worker stays depends on the machine; this script prints the figures:

    QTASKS_DB=postgres .venv/bin/python benchmarks/worker_statements.py [--tasks 300]

On a quiet 2-core machine (PostgreSQL), "auto" sent about 20 claims for 300
quick tasks (75 with a cap of 4 a slot instead of 16), and the results went
in 30 to 56 writes, alone or carried by a claim (108 to 116 without
WRITE_WAIT); "0" sent a claim per task or nearly. A test database is
created and dropped around the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "testproject")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--concurrency", default="2")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()

    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    if connection.vendor != "postgresql":
        sys.exit("Counted on PostgreSQL (QTASKS_DB=postgres), where a claim is one statement.")
    from django_qtasks import app
    from django_qtasks.models import Task
    from tests import conftest
    from tests.test_worker_queries import QUIET, kind
    from tests.testapp import tasks

    old = setup_databases(verbosity=0, interactive=False)
    try:
        print(f"{options.tasks} quick tasks, --concurrency {options.concurrency}, --burst")
        print(f"{'prefetch':>8} {'claims':>7} {'writes alone':>13} {'carried':>8}")
        for prefetch in ["auto", "0"] * options.rounds:
            queue = f"bench-{prefetch}"
            Task.objects.filter(queue=queue).delete()
            app.add_tasks((tasks.echo.s(n) for n in range(options.tasks)), queue=queue)
            with tempfile.TemporaryDirectory() as directory:
                counts = Path(directory) / "sql.json"
                os.environ["QTASKS_TEST_SETTINGS"] = json.dumps(QUIET)
                os.environ["QTASKS_TEST_SQL_COUNT"] = str(counts)
                try:
                    result = conftest.run_worker(
                        "--queues", queue, "--concurrency", options.concurrency,
                        "--burst", "--prefetch", prefetch, timeout=600,
                    )  # fmt: skip
                finally:
                    del os.environ["QTASKS_TEST_SETTINGS"], os.environ["QTASKS_TEST_SQL_COUNT"]
                if result.returncode:
                    sys.exit(result.stderr)
                statements = json.loads(counts.read_text())["qtasks-db"]
            claims = sum(n for sql, n in statements.items() if kind(sql) == "claim")
            alone = sum(n for sql, n in statements.items() if kind(sql) == "result")
            carried = sum(n for sql, n in statements.items() if sql.lstrip().startswith("WITH"))
            print(f"{prefetch:>8} {claims:>7} {alone:>13} {carried:>8}")
    finally:
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
