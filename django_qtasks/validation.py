"""What a value may be: one definition for every place that accepts it.

Task options: ``@app.task(...)``, the django.tasks backend's ``@task(...)``
and its ``OPTIONS`` check the same values with these, so that one is never
accepted where another is refused. Arguments, results and messages: JSON that
every database stores (``ensure_json``, ``unstorable``, ``storable_text``).
Of the package, it imports only its exceptions.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from django_qtasks.exceptions import TaskArgumentsError


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


def checked_priority(where: str, priority: Any) -> int | None:
    if priority is not None and not is_int(priority):
        raise TypeError(f"{where}: priority must be an int, not {priority!r}.")
    return priority


def run_after(where: str, delay: Any, eta: Any) -> datetime | None:
    """When a task may start: ``delay`` seconds from now, or at ``eta``; None is now."""
    if delay is not None and eta is not None:
        raise TypeError(f"{where}: give delay or eta, not both.")
    if delay is not None:
        if isinstance(delay, timedelta):
            delay = delay.total_seconds()
        if not is_number(delay):
            raise TypeError(f"{where}: delay must be a number of seconds, not {delay!r}.")
        if not 0 <= delay < float("inf"):
            raise TypeError(f"{where}: delay must be finite and >= 0, not {delay!r}.")
        return timezone.now() + timedelta(seconds=delay)
    if eta is not None:
        if not isinstance(eta, datetime):
            raise TypeError(f"{where}: eta must be a datetime, not {eta!r}.")
        if timezone.is_naive(eta):
            raise TypeError(
                f"{where}: eta must be timezone-aware, not naive {eta!r}; e.g. "
                "django.utils.timezone.now() + timedelta(minutes=5)."
            )
        return eta
    return None


def ensure_json(task_name: str, what: str, value: Any) -> Any:
    """Return ``value`` if it is JSON that every database stores, else raise a
    TaskArgumentsError that names the culprit."""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        items = enumerate(value) if isinstance(value, list) else value.items()
        culprit = next((key for key, item in items if not is_json(item)), None)
        where = f" ({what}[{culprit!r}])" if culprit is not None else ""
        raise TaskArgumentsError(
            f"Arguments of task {task_name!r} must be JSON{where}: {exc}. Pass plain values "
            "(str, int, float, bool, None, list, dict), e.g. a primary key instead of an object."
        ) from exc
    problem = unstorable(value, what, text)
    if problem:
        raise TaskArgumentsError(
            f"Arguments of task {task_name!r} cannot be stored: {what} contains {problem}. "
            "No database stores NUL characters and lone surrogates alike; encode such data "
            "(e.g. base64) or remove those characters."
        )
    return value


def is_json(value: Any) -> bool:
    """True if ``value`` can be stored as JSON (not NaN or infinity: PostgreSQL refuses them)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


#: Characters that some database refuses in text and JSON: NUL (PostgreSQL)
#: and surrogate code points (not UTF-8; a lone one is refused by every
#: database in text, and by PostgreSQL and MariaDB in JSON).
UNSTORABLE_CHARS = re.compile("[\x00\ud800-\udfff]")


def unstorable(value: Any, name: str = "value", dumped: str | None = None) -> str | None:
    """Where JSON ``value`` holds a character that a database refuses, else None.

    E.g. ``"U+0000 at character 1 of result[0]['name']"``. Such values are
    refused everywhere, so that a task behaves the same on every database.
    ``dumped``, ``json.dumps(value, ensure_ascii=False)`` if the caller has
    it, makes the common case (nothing found) a search of that text (``_suspect``).
    """
    if dumped is not None and not _suspect(dumped):
        return None
    return _find_unstorable(value, name)


def _suspect(dumped: str) -> bool:
    """Whether ``json.dumps(..., ensure_ascii=False)``'s text may hold such a character.

    NUL is escaped there, and "\\u0000" may also be an escaped backslash:
    a false alarm, which the walk of the value then clears. Cheaper than a
    regular expression on long results: a substring search, and a UTF-8
    encode (which refuses surrogates) of non-ASCII text only.
    """
    if "\\u0000" in dumped:
        return True
    return not dumped.isascii() and not _encodes(dumped)


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _find_unstorable(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        match = UNSTORABLE_CHARS.search(value)
        if match is None:
            return None
        return f"U+{ord(match.group()):04X} at character {match.start()} of {path}"
    if isinstance(value, dict):
        for key, item in value.items():
            found = _find_unstorable(key, f"a key of {path}") or _find_unstorable(
                item, f"{path}[{key!r}]"
            )
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _find_unstorable(item, f"{path}[{index}]")
            if found:
                return found
    return None


def storable_text(text: str) -> str:
    """``text`` with each character that a database refuses written as its escape (``\\u0000``).

    For messages (tracebacks, log lines, cancel reasons): what they say is
    kept, where refusing them would lose how the task ended.
    """
    if "\x00" not in text and (text.isascii() or _encodes(text)):
        return text
    return UNSTORABLE_CHARS.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


#: The longest cancel reason kept, in characters: the admin and the API refuse a
#: longer one; ``Task.cancel()`` and a task's own ``ctx.cancel()`` keep it cut (a
#: cancel should not fail for its wording).
CANCEL_REASON_MAX_LENGTH = 1000


def kept_cancel_reason(reason: str) -> str:
    """``reason`` as it is kept: cut to CANCEL_REASON_MAX_LENGTH characters, ending
    with "…", and with the characters a database refuses escaped (``storable_text``)."""
    if len(reason) > CANCEL_REASON_MAX_LENGTH:
        reason = reason[: CANCEL_REASON_MAX_LENGTH - 1] + "\u2026"
    return storable_text(reason)


#: The longest traceback kept, in characters (its attempt log's error too): its
#: start and its end, where the exception's message is, with a marker between.
#: A typical traceback is a few thousand; a huge exception message is no
#: reason to store megabytes on every attempt.
TRACEBACK_MAX_CHARS = 20_000


def kept_traceback(text: str) -> str:
    """``text`` as it is kept: its first and last TRACEBACK_MAX_CHARS / 2 characters
    when it is longer, and with the characters a database refuses escaped."""
    if len(text) > TRACEBACK_MAX_CHARS:
        half = TRACEBACK_MAX_CHARS // 2
        cut = len(text) - 2 * half
        text = f"{text[:half]}\n[... {cut} characters not kept ...]\n{text[-half:]}"
    return storable_text(text)


def is_storable(value: Any, max_bytes: int | None = None) -> bool:
    """True if ``value`` is JSON that every database stores (``is_json`` and ``unstorable``),
    of at most ``max_bytes`` bytes of JSON when given."""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError):
        return False
    if max_bytes is not None and (len(text) > max_bytes or len(text.encode()) > max_bytes):
        return False
    return unstorable(value, dumped=text) is None
