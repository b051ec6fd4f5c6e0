"""Tasks for tests/test_lifecycle*.py (run by real worker processes)."""

from __future__ import annotations
