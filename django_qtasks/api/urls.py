"""Mount with ``path("api/qtasks/", include("django_qtasks.api.urls"))``."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from django_qtasks.api.overview import CostsView, RegistryView, StatsView, WorkerListView
from django_qtasks.api.views import TaskViewSet

app_name = "qtasks_api"

router = SimpleRouter()
router.register("tasks", TaskViewSet, basename="task")

urlpatterns = [
    *router.urls,
    path("registry/", RegistryView.as_view(), name="registry"),
    path("workers/", WorkerListView.as_view(), name="workers"),
    path("stats/", StatsView.as_view(), name="stats"),
    path("costs/", CostsView.as_view(), name="costs"),
]
