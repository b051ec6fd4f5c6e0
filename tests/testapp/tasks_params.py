"""Tasks for tests/test_params*.py (run by real worker processes)."""

from __future__ import annotations
