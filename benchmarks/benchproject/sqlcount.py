"""Count the SQL a process sends, for the profiling runs (``run.py --count-sql``).

Every statement goes through an execute wrapper installed on each new
connection; COMMITs are counted by wrapping the connection's ``_commit``.
With psycopg 3 an explicit transaction costs two more round trips than its
statements (BEGIN, COMMIT), an autocommit statement none. The counts are
appended as a JSON line to ``path`` on each SIGUSR1 (the client sends one
when the drain starts and one when it ends).
"""

from __future__ import annotations

import json
import signal
import threading
from collections import Counter
from typing import Any

from django.db.backends.signals import connection_created

_lock = threading.Lock()
statements: Counter[str] = Counter()
commits = Counter[str]()


def install(path: str) -> None:
    connection_created.connect(_on_connection, weak=False)
    signal.signal(signal.SIGUSR1, lambda *_: _dump(path))


def _on_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    if _count not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count)
    if not getattr(connection, "_bench_commit_wrapped", False):
        real_commit = connection._commit

        def counting_commit() -> Any:
            with _lock:
                commits[threading.current_thread().name.split("_")[0]] += 1
            return real_commit()

        connection._commit = counting_commit
        connection._bench_commit_wrapped = True


def _count(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    with _lock:
        statements[" ".join(sql.split())] += 1
    return execute(sql, params, many, context)


def _dump(path: str) -> None:
    # A signal handler runs between two bytecodes of the main thread: no lock
    # here (the main thread may hold it); a copy of each counter is enough.
    for _ in range(100):
        try:
            snapshot = {"statements": dict(statements), "commits": dict(commits)}
            break
        except RuntimeError:  # another thread added a key while we copied
            continue
    with open(path, "a") as out:
        out.write(json.dumps(snapshot) + "\n")
