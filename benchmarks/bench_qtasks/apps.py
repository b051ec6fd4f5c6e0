import os

from django.apps import AppConfig


class BenchQTasksConfig(AppConfig):
    name = "bench_qtasks"

    def ready(self) -> None:
        # For the profiling runs only (run.py --count-sql): never in the timed ones.
        path = os.environ.get("BENCH_SQL_COUNT")
        if path:
            from benchproject.sqlcount import install

            install(path)
