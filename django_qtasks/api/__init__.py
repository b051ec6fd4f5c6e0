"""The REST API (djangorestframework + drf-spectacular); see docs/api.md.

Mount it with one line in the project's urls::

    path("api/qtasks/", include("django_qtasks.api.urls")),

Only this package imports DRF: ``import django_qtasks`` works without it.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

try:
    import drf_spectacular  # noqa: F401
    import rest_framework  # noqa: F401
except ImportError as exc:  # pragma: no cover (both are installed for the tests)
    raise ImproperlyConfigured(
        f"django_qtasks.api needs djangorestframework and drf-spectacular ({exc}). "
        "Install them with: pip install 'django-qtasks[api]'."
    ) from exc
