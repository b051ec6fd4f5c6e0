"""The test settings for ported QTasks programs: their tasks and no others."""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS, QTASKS

INSTALLED_APPS = [
    *(app for app in INSTALLED_APPS if app not in ("tests.testapp", "demo")),
    "tests.qtasks_conformance.apps.ConformanceConfig",
]

# A queue of their own: the session's shared worker (tests/conftest.py), which
# serves "default" with the test app's tasks, may run beside them on the same
# test database, and would take their tasks for unknown ones.
QTASKS = {**QTASKS, "DEFAULT_QUEUE": "qtasks-conformance"}
