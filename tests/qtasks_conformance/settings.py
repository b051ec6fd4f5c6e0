"""The test settings for ported QTasks programs: their tasks and no others."""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [
    *(app for app in INSTALLED_APPS if app not in ("tests.testapp", "demo")),
    "tests.qtasks_conformance.apps.ConformanceConfig",
]
