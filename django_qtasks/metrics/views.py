"""``metrics_view``: the database's figures, and the workers' counters on this host, for Prometheus.

For a URLconf of the project (docs/metrics.md). It answers staff users, and
a scraper that sends ``Authorization: Bearer <QTASKS["METRICS_TOKEN"]>``;
anyone else gets 403. The counters are those of the workers that record
in ``QTASKS["METRICS_DIR"]``, a directory of this host.
"""

from __future__ import annotations

import hmac
import os

from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from django_qtasks.conf import qtasks_settings

try:
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import choose_encoder
except ImportError as exc:  # pragma: no cover (the extra is installed for the tests)
    raise ImproperlyConfigured(
        "django_qtasks.metrics needs prometheus_client: pip install 'django-qtasks[prometheus]'"
    ) from exc

from django_qtasks.metrics.files import WorkersCollector
from django_qtasks.metrics.gauges import DatabaseGauges


def may_scrape(request: HttpRequest) -> bool:
    """A staff user, or the bearer of ``QTASKS["METRICS_TOKEN"]``."""
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return True
    token = qtasks_settings.METRICS_TOKEN
    if not token:
        return False
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    sent = given.strip().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(sent, token.encode())


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The metrics in Prometheus' text format (or OpenMetrics, if the scraper asks for it)."""
    if not may_scrape(request):
        raise PermissionDenied("Metrics: staff users, or QTASKS['METRICS_TOKEN'] as a bearer token")
    registry = CollectorRegistry()
    registry.register(DatabaseGauges(close_connections=False))
    root = qtasks_settings.METRICS_DIR
    if root:
        registry.register(WorkersCollector(os.fspath(root)))
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(registry), content_type=content_type)
