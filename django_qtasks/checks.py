"""System checks (``manage.py check``). Ids are documented in docs/checks.md."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.checks import Warning as CheckWarning
from django.core.exceptions import ImproperlyConfigured

from django_qtasks.brokers import TRANSPORT_EXTRAS, broker_class_for, transport_error
from django_qtasks.conf import SETTING_NAME, unknown_keys, validate
from django_qtasks.registry import default_app
from django_qtasks.scheduling import settings_entry_problems

FIX = "See the settings reference in the django-qtasks docs."


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    raw = getattr(settings, SETTING_NAME, {})
    errors: list[CheckMessage] = [
        Error(problem, hint=FIX, id="django_qtasks.E001") for problem in validate(raw)
    ]
    if not isinstance(raw, Mapping):
        return errors
    # Report every problem at once: a wrong CONCURRENCY does not hide a bad
    # BROKER_URL. Keys of the wrong type already have their E001.
    url = raw.get("BROKER_URL", "django://")
    if isinstance(url, str):
        try:
            broker_class_for(url)
        except ImproperlyConfigured as exc:
            errors.append(Error(str(exc), hint=FIX, id="django_qtasks.E002"))
        else:
            errors += check_transport(url)
    alias = raw.get("REDIS_CACHE_ALIAS")
    caches = getattr(settings, "CACHES", {})
    if isinstance(alias, str) and alias not in caches:
        known = ", ".join(repr(name) for name in caches) or "none"
        errors.append(
            Error(
                f"{SETTING_NAME}['REDIS_CACHE_ALIAS'] = {alias!r} is not a key of CACHES "
                f"(CACHES has: {known}).",
                hint="Name a django-redis cache from CACHES, or set it to None.",
                id="django_qtasks.E003",
            )
        )
    elif isinstance(alias, str) and not str(caches[alias].get("BACKEND", "")).startswith(
        "django_redis."
    ):
        errors.append(
            Error(
                f"{SETTING_NAME}['REDIS_CACHE_ALIAS'] = {alias!r} names a cache whose BACKEND "
                f"is {caches[alias].get('BACKEND')!r}, not django-redis.",
                hint="Use BACKEND 'django_redis.cache.RedisCache' for that cache "
                "(pip install 'django-qtasks[redis]').",
                id="django_qtasks.E004",
            )
        )
    errors += check_schedules(raw.get("SCHEDULES", {}))
    if raw.get("OPENTELEMETRY") is True:
        errors += check_tracing()
    errors += check_unknown_keys(raw)
    if not any(message.is_serious() for message in errors):  # errors first
        errors += check_queue_prefix(raw)
    return errors


def check_queue_prefix(raw: Mapping[Any, Any]) -> list[CheckMessage]:
    """W002: outside DEBUG, a broker service that environments may share, and no prefix.

    A worker takes every message under its prefix: a staging worker, or a
    test run, on a production Redis would run production's tasks.
    """
    url = raw.get("BROKER_URL", "django://")
    shared = (isinstance(url, str) and not url.startswith("django:")) or raw.get(
        "REDIS_CACHE_ALIAS"
    )
    if settings.DEBUG or "QUEUE_PREFIX" in raw or not shared:
        return []
    return [
        CheckWarning(
            f"{SETTING_NAME}['QUEUE_PREFIX'] is not set: this environment's queues and "
            "signals have the default names ('qtasks...'), which every other environment on "
            "the same Redis or RabbitMQ also uses; their workers take each other's messages.",
            hint="Give each environment (production, staging, CI, each developer) a prefix of "
            "its own, e.g. QUEUE_PREFIX = 'myproject-production'.",
            id="django_qtasks.W002",
        )
    ]


def check_transport(url: str) -> list[CheckMessage]:
    """E006: the broker's kombu transport cannot be loaded (a library is not installed).

    Without it, every publish would fail and every task wait in the outbox.
    """
    problem = transport_error(url)
    if problem is None:
        return []
    scheme = urlsplit(url).scheme
    install = TRANSPORT_EXTRAS.get(scheme, "Install the library that the message names")
    return [
        Error(
            f"{SETTING_NAME}['BROKER_URL'] is a {scheme}:// URL, and kombu's {scheme} "
            f"transport cannot be loaded ({problem}): no task could be published.",
            hint=f"{install}, in the environment of the project and of its workers.",
            id="django_qtasks.E006",
        )
    ]


def check_tracing() -> list[CheckMessage]:
    """E007: OPENTELEMETRY is on, and opentelemetry cannot be imported: no span would be made."""
    try:
        import django_qtasks.tracing  # noqa: F401
    except ImportError as exc:
        return [
            Error(
                f"{SETTING_NAME}['OPENTELEMETRY'] is True, and OpenTelemetry cannot be imported "
                f"({type(exc).__name__}: {exc}): tasks would be enqueued and run without spans.",
                hint="pip install 'django-qtasks[opentelemetry]' (opentelemetry-api), in the "
                "environment of the project and of its workers; or set it to False.",
                id="django_qtasks.E007",
            )
        ]
    return []


def check_unknown_keys(raw: Mapping[Any, Any]) -> list[CheckMessage]:
    """W001: a key that is neither ours nor declared the project's own (a typo, most often)."""
    warnings: list[CheckMessage] = []
    for key, close in unknown_keys(raw):
        guess = f"Did you mean {close!r}? " if close else ""
        warnings.append(
            CheckWarning(
                f"{SETTING_NAME}[{key!r}] is not a django-qtasks setting: nothing of "
                "django-qtasks reads it.",
                hint=f"{guess}If it is a key of your own, list it in "
                f"{SETTING_NAME}['USER_KEYS'] (e.g. 'USER_KEYS': [{key!r}]).",
                id="django_qtasks.W001",
            )
        )
    return warnings


def check_schedules(schedules: Any) -> list[CheckMessage]:
    """E005: every problem of every ``QTASKS["SCHEDULES"]`` entry."""
    if not isinstance(schedules, Mapping):
        return []  # E001 already says it must be a dict
    hint = (
        "Each entry is 'name': {'task': 'registered_task', 'cron': '*/5 * * * *'} or "
        "{'task': ..., 'interval': seconds}, with optional args, kwargs, queue, priority."
    )
    in_code = {name for name, handle in default_app().tasks.items() if handle.schedule is not None}
    errors: list[CheckMessage] = []
    for name, entry in schedules.items():
        problems = settings_entry_problems(name, entry)
        if name in in_code:
            problems.append(
                f"QTASKS['SCHEDULES'][{name!r}]: the task {name!r} already declares a schedule "
                "with @app.task(schedule=...); give this one another name."
            )
        errors += [Error(problem, hint=hint, id="django_qtasks.E005") for problem in problems]
    return errors
