"""The benchmark's Django project: one settings module, configured per system by BENCH_SYSTEM."""
