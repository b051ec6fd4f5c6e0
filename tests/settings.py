"""Test settings: the demo project plus the test tasks, tuned to react fast."""

import json
import os
import tempfile

import django
from testproject.settings import *  # noqa: F403
from testproject.settings import DATABASES, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory: worker processes must see the test database.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("QTASKS_DB_NAME")
        or os.path.join(tempfile.gettempdir(), f"qtasks-test-{os.getpid()}.sqlite3")
    }
else:
    # One database per test run, so that runs in parallel never share one.
    DATABASES["default"]["NAME"] = os.environ.get("QTASKS_DB_NAME", f"qtasks_{os.getpid()}")

if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # Two more databases for tests/test_routing.py, created only when a test
    # asks for them: a read replica that is a database of its own (not a TEST
    # mirror, so that reading the wrong one shows), and a database for the
    # task tables alone. Worker processes get the test database's name as
    # NAME, the test run gets "test_" + NAME: the suffix keeps them in step.
    for _alias in ("replica", "tasks"):
        DATABASES[_alias] = {
            **DATABASES["default"],
            "NAME": f"{DATABASES['default']['NAME']}_{_alias}",
        }

# The router of tests/routers.py named by QTASKS_TEST_ROUTER, for the worker
# processes of tests/test_routing.py (they inherit the variable).
if os.environ.get("QTASKS_TEST_ROUTER"):
    from tests.routers import ROUTERS

    DATABASE_ROUTERS = [ROUTERS[os.environ["QTASKS_TEST_ROUTER"]]]

# Shared by this test run and the worker processes it starts (they inherit
# the environment), so that parallel runs never consume each other's messages.
TEST_RUN = os.environ.setdefault("QTASKS_TEST_RUN", str(os.getpid()))

QTASKS = {
    "BROKER_URL": os.environ.get("QTASKS_BROKER_URL", "django://"),
    "QUEUE_PREFIX": f"qtasks-test-{TEST_RUN}",
    "OUTBOX_INTERVAL": 0.2,
    # A message lost by the broker (a restart) is sent again from its row
    # this long after it was sent, within a test's wait.
    "REDELIVER_AFTER": 2,
    "POLL_INTERVAL": 0.05,
    "CANCEL_POLL_INTERVAL": 0.05,
    "PROGRESS_INTERVAL": 0.1,
    "HEARTBEAT_INTERVAL": 0.5,
    # Ten beats: a heartbeat thread slowed by a busy machine is not taken for dead.
    "HEARTBEAT_TIMEOUT": 5,
    "RETRY_BACKOFF": 0,
    "CANCEL_GRACE": 1,
    "SHUTDOWN_TIMEOUT": 5,
    "GREETING": "hello",
    "USER_KEYS": ["GREETING"],  # the project's own key (else the warning W001)
}

# django-redis cache for the fast-signal tests (QTASKS["REDIS_CACHE_ALIAS"] = "qtasks").
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "qtasks": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": os.environ.get("QTASKS_TEST_REDIS", "redis://127.0.0.1:6379/1"),
    },
}

# A test can change QTASKS for the worker processes it starts (they read this
# module) by setting this variable to a JSON object of keys.
QTASKS.update(json.loads(os.environ.get("QTASKS_TEST_SETTINGS", "{}")))

if os.environ.get("QTASKS_TEST_SQL_COUNT"):
    from tests.sqlcount import install

    install(os.environ["QTASKS_TEST_SQL_COUNT"])

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if django.VERSION >= (6, 0):
    # django.tasks through django-qtasks (tests/test_backend.py); the worker
    # processes read this module too, so they run these tasks.
    TASKS = {
        "default": {
            "BACKEND": "django_qtasks.backends.QTasksBackend",
            "QUEUES": ["default", "other"],
        },
        # Any queue, and defaults for every task enqueued through it.
        "flexible": {
            "BACKEND": "django_qtasks.backends.QTasksBackend",
            "QUEUES": [],
            "OPTIONS": {"RETRY": 1, "MAX_TIME": 30, "TAGS": ["via-django-tasks"]},
        },
    }
