"""Settings of the fault script's workers and client (benchmarks/faults.py).

The script passes its own database, broker and queue prefix in the
environment, so that it never touches anyone else's data or messages.
Heartbeats are fast (a dead worker is taken over after 4 s) and retries
start at once, so that each scenario ends in a few tens of seconds.
"""

import os

SECRET_KEY = "faults-only-not-secret"
DEBUG = False
ALLOWED_HOSTS: list[str] = []
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django.contrib.contenttypes", "django_qtasks", "fault_tasks"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("FAULTS_DB", "qtasks_faults"),
        "HOST": "127.0.0.1",
        "PORT": 5432,
        "USER": "postgres",
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    # "faults": the script's own progress lines.
    "loggers": {"django_qtasks": {"level": "INFO"}, "faults": {"level": "INFO"}},
}

QTASKS = {
    "BROKER_URL": os.environ.get("FAULTS_BROKER", "django://"),
    "QUEUE_PREFIX": os.environ.get("FAULTS_PREFIX", "qtasks-faults"),
    "HEARTBEAT_INTERVAL": 0.5,
    "HEARTBEAT_TIMEOUT": 4.0,
    "RETRY_BACKOFF": 0,
    "OUTBOX_INTERVAL": 0.5,
    # A lost message is sent again after this (the default, 60 s, outlasts
    # a scenario).
    "REDELIVER_AFTER": 2.0,
    "POLL_INTERVAL": 0.2,
}
