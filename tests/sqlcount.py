"""Count the SQL statements a worker process sends, by thread (for test_worker_queries).

tests/settings.py installs this when QTASKS_TEST_SQL_COUNT names a file; at
exit the process writes there ``{thread name: {statement: count}}``.
"""

from __future__ import annotations

import atexit
import json
import threading
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from django.db.backends.signals import connection_created

_lock = threading.Lock()
_counts: defaultdict[str, Counter[str]] = defaultdict(Counter)


def install(path: str) -> None:
    connection_created.connect(_on_connection, weak=False)
    atexit.register(_dump, Path(path))


def _on_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    if _count not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count)


def _count(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    # Pool threads are named like "qtasks-db_0": count them by pool.
    thread = threading.current_thread().name.rsplit("_", 1)[0]
    with _lock:
        _counts[thread][" ".join(sql.split())] += 1
    return execute(sql, params, many, context)


def _dump(path: Path) -> None:
    with _lock:
        path.write_text(json.dumps({thread: dict(counts) for thread, counts in _counts.items()}))
