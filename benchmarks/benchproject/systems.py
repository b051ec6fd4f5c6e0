"""The systems the benchmark compares, and where each keeps its data.

No Django here: ``run.py`` imports this before any settings exist.
"""

from __future__ import annotations

from dataclasses import dataclass

PG = {"HOST": "127.0.0.1", "PORT": 5432, "USER": "postgres"}
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
#: Every benchmark database starts with this; run.py drops and creates them.
DB_PREFIX = "qtasks_bench_"


@dataclass(frozen=True)
class System:
    name: str
    label: str
    #: Installed apps besides contenttypes.
    apps: tuple[str, ...]
    #: Redis databases it uses, flushed before and after its run. Only 10-15:
    #: other test suites on this machine use the low numbers.
    redis_dbs: tuple[int, ...] = ()
    #: What the system keeps about each task, for the notes under the table.
    records: str = ""

    @property
    def database(self) -> str:
        return DB_PREFIX + self.name.replace("-", "_")


SYSTEMS = {
    system.name: system
    for system in [
        System(
            "qtasks-db",
            "django-qtasks django:// (PostgreSQL)",
            ("django_qtasks", "bench_qtasks"),
            records="one row per task in PostgreSQL: status, created/started/finished, "
            "args, result, attempt log",
        ),
        System(
            "qtasks-redis",
            "django-qtasks redis://",
            ("django_qtasks", "bench_qtasks"),
            redis_dbs=(10,),
            records="the same row in PostgreSQL; Redis carries only the uuid",
        ),
        System(
            "qtasks-db-prefetch0",
            "django-qtasks django:// (PostgreSQL), PREFETCH=0",
            ("django_qtasks", "bench_qtasks"),
            records="as qtasks-db",
        ),
        System(
            "qtasks-redis-prefetch0",
            "django-qtasks redis://, PREFETCH=0",
            ("django_qtasks", "bench_qtasks"),
            redis_dbs=(10,),
            records="as qtasks-redis",
        ),
        System(
            "celery-db",
            "Celery 5 + django-celery-results (PG)",
            ("django_celery_results", "bench_celery"),
            redis_dbs=(11,),
            records="a TaskResult row once the task ends (status, result, date_done)",
        ),
        System(
            "celery-redis",
            "Celery 5, Redis results",
            ("bench_celery",),
            redis_dbs=(11, 12),
            records="a celery-task-meta key in Redis (status, result, date_done); nothing in PG",
        ),
        System(
            "rq",
            "RQ (django-rq)",
            ("django_rq", "bench_rq"),
            redis_dbs=(13,),
            records="a job hash in Redis (status, enqueued/started/ended, result), "
            "kept 500 s; nothing in PG",
        ),
        System(
            "huey",
            "Huey (Redis)",
            ("huey.contrib.djhuey", "bench_huey"),
            redis_dbs=(14,),
            records="the return value in a Redis hash until read; no status or times",
        ),
        System(
            "tasks-db",
            "django-tasks-db (PG)",
            ("django_tasks_db", "bench_tasksdb"),
            records="one row per task in PostgreSQL: status, enqueued/started/finished, "
            "args, result",
        ),
    ]
}
