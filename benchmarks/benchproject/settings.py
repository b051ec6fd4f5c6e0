"""Settings for every benchmarked system; BENCH_SYSTEM picks which one.

Only that system's apps are installed, so no library sees another's tasks.
Logging is at WARNING everywhere so that per-task log lines do not dominate.
"""

import os

from benchproject.systems import PG, REDIS_HOST, REDIS_PORT, SYSTEMS

SYSTEM = SYSTEMS[os.environ.get("BENCH_SYSTEM", "qtasks-db")]
REDIS = f"redis://{REDIS_HOST}:{REDIS_PORT}"

SECRET_KEY = "benchmark-only-not-secret"
# DEBUG would keep every SQL statement in memory and turn on autoreloaders.
DEBUG = False
ALLOWED_HOSTS: list[str] = []
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django.contrib.contenttypes", *SYSTEM.apps]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        # benchmarks/purge.py runs on a database of its own.
        "NAME": os.environ.get("BENCH_DATABASE", SYSTEM.database),
        **PG,
        # Django's default (0) unless run.py --conn-max-age says otherwise.
        "CONN_MAX_AGE": int(os.environ.get("BENCH_CONN_MAX_AGE", "0")),
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}

# django-qtasks: defaults, but for the broker (and PREFETCH in the -prefetch0 variants).
QTASKS = {"BROKER_URL": f"{REDIS}/10" if SYSTEM.name.startswith("qtasks-redis") else "django://"}
if SYSTEM.name.endswith("-prefetch0"):
    # Claims for the free slots only, never ahead: what the default "auto" saves.
    QTASKS["PREFETCH"] = 0

# Celery: Redis broker; results in PostgreSQL (django-celery-results) or Redis.
CELERY_BROKER_URL = f"{REDIS}/11"
CELERY_RESULT_BACKEND = "django-db" if SYSTEM.name == "celery-db" else f"{REDIS}/12"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
if os.environ.get("BENCH_CELERY_FULL_LIFE") == "1":
    # Record the start (STARTED state) and the arguments too, as django-qtasks does.
    CELERY_TASK_TRACK_STARTED = True
    CELERY_RESULT_EXTENDED = True

RQ_QUEUES = {"default": {"HOST": REDIS_HOST, "PORT": REDIS_PORT, "DB": 13}}

HUEY = {
    "huey_class": "huey.RedisHuey",
    "name": "qtasks-bench",
    "immediate": False,
    "connection": {"host": REDIS_HOST, "port": REDIS_PORT, "db": 14},
    "consumer": {"workers": 2, "worker_type": "thread"},
}

if SYSTEM.name == "tasks-db":
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
