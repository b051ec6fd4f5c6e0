"""System checks (``manage.py check``). Ids are documented in docs/checks.md."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

from django_qtasks.conf import SETTING_NAME, validate

FIX = "See the settings reference in the django-qtasks docs."


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    raw = getattr(settings, SETTING_NAME, {})
    errors: list[CheckMessage] = [
        Error(problem, hint=FIX, id="django_qtasks.E001") for problem in validate(raw)
    ]
    if errors:
        return errors
    from django_qtasks.brokers import broker_class_for

    url = raw.get("BROKER_URL", "django://")
    try:
        broker_class_for(url)
    except ImproperlyConfigured as exc:
        errors.append(Error(str(exc), hint=FIX, id="django_qtasks.E002"))
    alias = raw.get("REDIS_CACHE_ALIAS")
    if alias is not None and alias not in getattr(settings, "CACHES", {}):
        errors.append(
            Error(
                f"{SETTING_NAME}['REDIS_CACHE_ALIAS'] = {alias!r} is not a key of CACHES.",
                hint="Name a django-redis cache from CACHES, or set it to None.",
                id="django_qtasks.E003",
            )
        )
    return errors
