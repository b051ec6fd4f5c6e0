"""Brokers by URL: ``get_broker()`` returns the one ``QTASKS["BROKER_URL"]`` names."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from django_qtasks.brokers.base import Broker
from django_qtasks.conf import SETTING_NAME, qtasks_settings
from django_qtasks.masking import mask_url

#: URL scheme -> import path of the broker class.
BROKERS = {
    "django": "django_qtasks.brokers.database.DatabaseBroker",
}
#: Any other scheme that kombu knows (redis, amqp, sqs, ...).
KOMBU_BROKER = "django_qtasks.brokers.kombu.KombuBroker"

_lock = threading.Lock()
_broker: Broker | None = None


def broker_class_for(url: str) -> type[Broker]:
    scheme = urlsplit(url).scheme
    if not scheme:
        raise ImproperlyConfigured(
            f"QTASKS['BROKER_URL'] = {mask_url(url)!r} has no scheme; "
            "use 'django://' for the database."
        )
    path = BROKERS.get(scheme) or _kombu_broker_for(url, scheme)
    broker_class: type[Broker] = import_string(path)
    return broker_class


def _kombu_broker_for(url: str, scheme: str) -> str:
    try:
        from kombu.transport import TRANSPORT_ALIASES
    except ImportError:
        raise ImproperlyConfigured(
            f"QTASKS['BROKER_URL'] = {mask_url(url)!r} needs kombu: "
            "pip install 'django-qtasks[kombu]'."
        ) from None
    base = scheme.split("+")[0]
    if base not in TRANSPORT_ALIASES:
        known = ", ".join(f"{name}://" for name in [*BROKERS, "redis", "amqp", "..."])
        raise ImproperlyConfigured(
            f"QTASKS['BROKER_URL'] = {mask_url(url)!r}: no broker serves {scheme}:// "
            f"(known: {known})."
        )
    return KOMBU_BROKER


#: What to install for the client library of a kombu transport, by URL scheme.
TRANSPORT_EXTRAS = {
    "redis": "pip install 'django-qtasks[kombu,redis]'",
    "rediss": "pip install 'django-qtasks[kombu,redis]'",
}


def transport_error(url: str) -> str | None:
    """Why the kombu transport of ``url`` cannot be loaded here; None when it can (or
    ``url`` is not a kombu URL). Connects to nothing."""
    if urlsplit(url).scheme in BROKERS:
        return None
    try:
        from django_qtasks.brokers.kombu import load_transport

        load_transport(url)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def get_broker() -> Broker:
    """The project's broker, created on first use and shared by the process."""
    global _broker
    with _lock:
        if _broker is None:
            url = qtasks_settings.BROKER_URL
            _broker = broker_class_for(url)(url)
        return _broker


def reset_broker() -> None:
    """Forget the broker, e.g. after QTASKS changed in a test."""
    global _broker
    with _lock:
        if _broker is not None:
            _broker.close()
        _broker = None


@receiver(setting_changed)
def _reset_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        reset_broker()
