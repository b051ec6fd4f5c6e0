"""Lazy, typed access to ``settings.QTASKS``.

Nothing is read at import time: the first attribute access reads the setting,
and Django's ``setting_changed`` signal (fired by ``override_settings``) clears
the cache so tests see their overrides.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePath
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from django_qtasks.statuses import FINAL_STATUSES, TaskStatus
from django_qtasks.validation import is_number

SETTING_NAME = "QTASKS"


@dataclass(frozen=True)
class Option:
    default: Any
    types: tuple[type, ...]
    help: str
    #: For numbers: "0 or more", "at least 1", or "more than 0" (a period,
    #: where 0 would make a loop spin).
    least: str = "0 or more"
    #: Words accepted besides values of ``types``.
    words: tuple[str, ...] = ()
    #: For lists: what each item must be, "import strings" or "strings".
    items: str = ""

    def too_small(self, value: float) -> bool:
        return {"0 or more": value < 0, "at least 1": value < 1, "more than 0": value <= 0}[
            self.least
        ]

    def describe_types(self) -> str:
        names = ["None" if t is type(None) else t.__name__ for t in self.types]
        return " or ".join([*map(repr, self.words), *names])


NUMBER = (int, float)
PERIOD = "more than 0"

#: Every key we understand, with its default, accepted types and meaning.
#: Unknown keys are kept untouched: they belong to the user, who declares
#: them in ``USER_KEYS`` (an undeclared one gets the warning W001).
OPTIONS: dict[str, Option] = {
    "BROKER_URL": Option("django://", (str,), "where tasks are queued"),
    "BROKER_TRANSPORT_OPTIONS": Option({}, (dict,), "options for the kombu transport"),
    "OUTBOX_INTERVAL": Option(
        1.0, NUMBER, "seconds between sweeps for unpublished tasks", least=PERIOD
    ),
    "REDELIVER_AFTER": Option(
        60.0,
        NUMBER,
        "seconds a due task waits unclaimed after its message was sent before a worker "
        "sends it again",
        least=PERIOD,
    ),
    "QUEUE_PREFIX": Option("qtasks", (str,), "prefix of the broker's exchange and queue names"),
    "REDIS_CACHE_ALIAS": Option(None, (str, type(None)), "a django-redis CACHES alias"),
    "DEFAULT_QUEUE": Option("default", (str,), "queue of tasks that name none"),
    "CONCURRENCY": Option(10, (int,), "tasks a worker runs at once", least="at least 1"),
    "PREFETCH": Option(
        "auto", (int,), "tasks a worker claims ahead of its free slots", words=("auto",)
    ),
    "POLL_INTERVAL": Option(
        0.5, NUMBER, "seconds between polls of the database broker", least=PERIOD
    ),
    "RETRY_BACKOFF": Option(1.0, NUMBER, "seconds before the first retry, doubled each time"),
    "RETRY_BACKOFF_MAX": Option(300.0, NUMBER, "longest wait between two attempts"),
    "HEARTBEAT_INTERVAL": Option(5.0, NUMBER, "seconds between worker heartbeats", least=PERIOD),
    "HEARTBEAT_TIMEOUT": Option(
        60.0, NUMBER, "seconds without heartbeat before a worker is dead", least=PERIOD
    ),
    "STALL_WARNING": Option(
        30.0,
        NUMBER,
        "seconds a worker's database call, broker consumer or event loop may stay blocked "
        "before a warning with its stack",
        least=PERIOD,
    ),
    "CANCEL_POLL_INTERVAL": Option(
        0.5, NUMBER, "seconds between checks for cancel requests", least=PERIOD
    ),
    "CANCEL_GRACE": Option(10.0, NUMBER, "seconds a sync task has to stop once cancelled"),
    "SHUTDOWN_TIMEOUT": Option(30.0, NUMBER, "seconds running tasks have to end on shutdown"),
    "PROCESSES": Option(
        1, (int,), "worker processes that qtasks_worker starts and watches", least="at least 1"
    ),
    "MAX_TASKS_PER_CHILD": Option(
        None,
        (int, type(None)),
        "tasks a pool's child runs before it is replaced; None: no limit",
        least="at least 1",
    ),
    "MAX_MEMORY_PER_CHILD": Option(
        None,
        (int, type(None)),
        "resident memory in KiB past which a pool's child is replaced; None: no limit",
        least="at least 1",
    ),
    "AUTOSCALE_IDLE": Option(
        30.0,
        NUMBER,
        "seconds the queues must need fewer children before --autoscale retires one",
        least=PERIOD,
    ),
    "LOG_LINES": Option(200, (int,), "log lines kept with each task"),
    "LOG_LINE_MAX_CHARS": Option(
        4000, (int,), "longest log line kept with a task, in characters", least="at least 1"
    ),
    "RESULT_MAX_BYTES": Option(
        10 * 1024 * 1024,
        (int,),
        "largest result a task may store, in bytes of JSON",
        least="at least 1",
    ),
    "WORKER_SYNCHRONOUS_COMMIT": Option(
        False, (bool,), "on PostgreSQL, workers' own commits wait for the disk flush"
    ),
    "PROGRESS_INTERVAL": Option(
        1.0, NUMBER, "seconds between progress writes of a generator", least=PERIOD
    ),
    "SCHEDULES": Option(
        {}, (dict,), "periodic tasks declared in settings: name -> {'task', 'cron' or 'interval'}"
    ),
    "BEAT_INTERVAL": Option(
        1.0, NUMBER, "longest pause of the beat between two looks", least=PERIOD
    ),
    "RETENTION": Option(
        {},
        (dict,),
        "how long the beat keeps tasks that ended, by status: "
        "{'success': seconds, 'error': ..., 'cancel': ...}; None or missing: for ever",
    ),
    "RETENTION_INTERVAL": Option(
        600.0,
        NUMBER,
        "seconds between a beat's passes deleting what RETENTION keeps no longer",
        least=PERIOD,
    ),
    "RETENTION_BATCH_SIZE": Option(
        1000,
        (int,),
        "tasks deleted per transaction, by the beat and qtasks_purge",
        least="at least 1",
    ),
    "API_PERMISSION_CLASSES": Option(
        ["rest_framework.permissions.IsAdminUser", "django_qtasks.api.permissions.CanView"],
        (list, tuple),
        "import strings of the REST API's DRF permission classes",
        items="import strings",
    ),
    "API_THROTTLE_CLASSES": Option(
        None,
        (list, tuple, type(None)),
        "import strings of the REST API's DRF throttle classes; None: DRF's defaults",
        items="import strings",
    ),
    "API_MAX_BODY_SIZE": Option(65536, (int,), "largest request body the REST API reads, in bytes"),
    "USER_KEYS": Option(
        [], (list, tuple), "the project's own keys of QTASKS, kept unchecked", items="strings"
    ),
    "IMMEDIATE": Option(
        False,
        (bool,),
        "for tests: tasks run in the process that enqueues them, when their transaction "
        "commits; no worker, no broker",
    ),
    "OPENTELEMETRY": Option(
        False,
        (bool,),
        "OpenTelemetry spans for enqueueing and for each attempt, linked through the task's "
        "row (needs opentelemetry-api)",
    ),
    "METRICS_DIR": Option(
        None,
        (str, PurePath, type(None)),
        "a directory of this host where workers keep their Prometheus counters, for "
        "django_qtasks.metrics.metrics_view; None: each worker keeps its own",
    ),
    "METRICS_TOKEN": Option(
        None,
        (str, type(None)),
        "a bearer token that lets a scraper read django_qtasks.metrics.metrics_view",
    ),
    "WAIT_TIMEOUT_RAISES": Option(
        False, (bool,), "an expired add_task(timeout=...) raises WaitTimeout instead of giving None"
    ),
}


def validate(raw: Any) -> list[str]:
    """Return one message per problem in a QTASKS value (empty when valid)."""
    if not isinstance(raw, Mapping):
        return [f"{SETTING_NAME} must be a dict, not {type(raw).__name__} {raw!r}."]
    problems = []
    for key, option in OPTIONS.items():
        if key not in raw:
            continue
        value = raw[key]
        if isinstance(value, str) and value in option.words:
            continue
        # bool is an int subclass, but CONCURRENCY=True is a mistake.
        if (isinstance(value, bool) and bool not in option.types) or not isinstance(
            value, option.types
        ):
            problems.append(
                f"{SETTING_NAME}[{key!r}] must be {option.describe_types()} "
                f"({option.help}), not {type(value).__name__} {value!r}."
            )
        elif isinstance(value, (int, float)) and option.too_small(value):
            problems.append(
                f"{SETTING_NAME}[{key!r}] must be {option.describe_types()}, {option.least} "
                f"({option.help}), not {value!r}."
            )
        elif (
            isinstance(value, (list, tuple))
            and option.items == "import strings"
            and not all(map(_is_import_string, value))
        ):
            problems.append(
                f"{SETTING_NAME}[{key!r}] must be {option.describe_types()} of dotted import "
                f"strings such as 'package.module.Class' ({option.help}), "
                f"not {type(value).__name__} {value!r}."
            )
        elif (
            isinstance(value, (list, tuple))
            and option.items == "strings"
            and not all(isinstance(item, str) for item in value)
        ):
            problems.append(
                f"{SETTING_NAME}[{key!r}] must be {option.describe_types()} of strings "
                f"({option.help}), not {type(value).__name__} {value!r}."
            )
    problems += _heartbeat_problems(raw)
    problems += _redelivery_problems(raw)
    problems += _retention_problems(raw.get("RETENTION"))
    return problems


def unknown_keys(raw: Mapping[Any, Any]) -> list[tuple[Any, str | None]]:
    """Keys of a QTASKS dict that are neither ours nor declared in ``USER_KEYS``.

    Each with the known key it is likely a misspelling of, or None.
    """
    declared = raw.get("USER_KEYS", [])
    if not isinstance(declared, (list, tuple)):
        declared = []  # E001 says what it must be
    declared = {name for name in declared if isinstance(name, str)}
    unknown = []
    for key in raw:
        if key in OPTIONS or key in declared:
            continue
        close = difflib.get_close_matches(str(key).upper(), OPTIONS, n=1, cutoff=0.75)
        unknown.append((key, close[0] if close else None))
    return unknown


#: The statuses a task ends in, the keys of RETENTION (``statuses.FINAL_STATUSES``).
ENDED = tuple(status.value for status in FINAL_STATUSES)
#: The longest period RETENTION takes, in seconds (longer is None, "for ever").
RETENTION_MAX = 100 * 366 * 86400


def _retention_problems(retention: Any) -> list[str]:
    """One message per bad entry of RETENTION: ``status: seconds, timedelta or None``."""
    if not isinstance(retention, Mapping):
        return []  # absent, or reported as of the wrong type
    keys = f"its keys are the statuses a task ends in, {', '.join(map(repr, ENDED))}"
    problems = []
    for status, period in retention.items():
        where = f"{SETTING_NAME}['RETENTION'][{status!r}]"
        if status in TaskStatus.values and status not in ENDED:
            problems.append(
                f"{where}: a task in {status!r} has not ended, and is never deleted; {keys}."
            )
            continue
        if status not in ENDED:
            close = difflib.get_close_matches(str(status), ENDED, n=1, cutoff=0.6)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{where}: {status!r} is no status{guess}; {keys}.")
            continue
        seconds = period.total_seconds() if isinstance(period, timedelta) else period
        if period is None or (is_number(seconds) and 0 <= seconds <= RETENTION_MAX):
            continue
        if is_number(seconds) and seconds > RETENTION_MAX:
            problems.append(
                f"{where} is more than 100 years ({period!r}); None keeps tasks that ended "
                f"in {status!r} for ever."
            )
            continue
        problems.append(
            f"{where} must be the seconds a task that ended in {status!r} is kept (int or "
            f"float, 0 or more), a timedelta, or None (kept for ever), "
            f"not {type(period).__name__} {period!r}."
        )
    return problems


def _redelivery_problems(raw: Mapping[str, Any]) -> list[str]:
    after = raw.get("REDELIVER_AFTER", OPTIONS["REDELIVER_AFTER"].default)
    interval = raw.get("OUTBOX_INTERVAL", OPTIONS["OUTBOX_INTERVAL"].default)
    if not all(is_number(v) for v in (after, interval)):
        return []  # reported as of the wrong type
    if after <= 0 or interval <= 0 or after >= 2 * interval:
        return []
    return [
        f"{SETTING_NAME}['REDELIVER_AFTER'] ({after!r}) must be at least twice "
        f"OUTBOX_INTERVAL ({interval!r}): workers look for lost messages at their outbox "
        "sweeps, and would send again messages that a worker is about to receive."
    ]


def _heartbeat_problems(raw: Mapping[str, Any]) -> list[str]:
    interval = raw.get("HEARTBEAT_INTERVAL", OPTIONS["HEARTBEAT_INTERVAL"].default)
    timeout = raw.get("HEARTBEAT_TIMEOUT", OPTIONS["HEARTBEAT_TIMEOUT"].default)
    if not all(is_number(v) for v in (interval, timeout)):
        return []  # reported as of the wrong type
    if timeout > interval or timeout <= 0 or interval <= 0:
        return []
    return [
        f"{SETTING_NAME}['HEARTBEAT_TIMEOUT'] ({timeout!r}) must be more than "
        f"HEARTBEAT_INTERVAL ({interval!r}): live workers would be taken for dead between "
        "two heartbeats, and their tasks run twice."
    ]


def _is_import_string(value: Any) -> bool:
    parts = value.split(".") if isinstance(value, str) else []
    return len(parts) > 1 and all(part.isidentifier() for part in parts)


class QTasksSettings:
    """``qtasks_settings.BROKER_URL`` and friends, with defaults filled in."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The effective configuration: defaults, overridden by the user's keys."""
        if self._cache is None:
            from django.conf import settings

            raw = getattr(settings, SETTING_NAME, {})
            problems = validate(raw)
            if problems:
                raise ImproperlyConfigured(" ".join(problems))
            merged = {key: option.default for key, option in OPTIONS.items()}
            merged.update(raw)
            self._cache = merged
        return dict(self._cache)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        config = self.as_dict()
        try:
            return config[name]
        except KeyError:
            raise AttributeError(f"{SETTING_NAME} has no key {name!r}") from None

    def reload(self) -> None:
        self._cache = None


qtasks_settings = QTasksSettings()


@receiver(setting_changed)
def _reload_on_change(*, setting: str, **kwargs: Any) -> None:
    # The broker and the notifier forget theirs too (their own receivers).
    if setting == SETTING_NAME:
        qtasks_settings.reload()
