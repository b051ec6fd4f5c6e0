import importlib
import os

from django.apps import AppConfig


class ConformanceConfig(AppConfig):
    """Imports the ported program named by QTASKS_CONFORMANCE_MODULE, as a tasks module."""

    name = "tests.qtasks_conformance"
    label = "qtasks_conformance"

    def ready(self) -> None:
        module = os.environ.get("QTASKS_CONFORMANCE_MODULE")
        if module:
            importlib.import_module(module)
