from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from django_qtasks.metrics import metrics_view

#: The REST API, and the only patterns the OpenAPI schema describes.
api_patterns = [
    path("api/qtasks/", include("django_qtasks.api.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    *api_patterns,
    path(
        "api/schema/",
        SpectacularAPIView.as_view(
            urlconf=api_patterns, custom_settings={"TITLE": "django-qtasks demo API"}
        ),
        name="schema",
    ),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # Prometheus: staff users, or QTASKS["METRICS_TOKEN"] as a bearer token (docs/metrics.md).
    path("metrics/", metrics_view, name="qtasks-metrics"),
]
