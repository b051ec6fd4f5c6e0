"""What a task option may be: one definition for every place that accepts it.

``@app.task(...)``, the django.tasks backend's ``@task(...)`` and its
``OPTIONS`` check the same values with these, so that one is never accepted
where another is refused. It imports nothing of the package.
"""

from __future__ import annotations

import math
from typing import Any


def is_int(value: Any) -> bool:
    """An int, and not a bool (``True`` is not a count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or a float, and not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_retry(value: Any) -> bool:
    """A number of retries: an int >= 0."""
    return is_int(value) and value >= 0


def is_max_time(value: Any) -> bool:
    """A run's time limit: None, or a finite number of seconds above 0."""
    return value is None or (is_number(value) and value > 0 and math.isfinite(value))
