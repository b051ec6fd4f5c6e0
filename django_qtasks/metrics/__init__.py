"""Prometheus metrics: ``pip install 'django-qtasks[prometheus]'``, docs/metrics.md.

- ``qtasks_worker --metrics-port PORT`` serves a worker's (or a pool's)
  metrics over HTTP (``metrics.exporter``): what its processes did
  (``metrics.recorder``, kept in prometheus_client's multiprocess files,
  ``metrics.files``) and what the database holds now (``metrics.gauges``).
- ``django_qtasks.metrics.metrics_view``, for a URLconf, serves the
  database's figures, and the counters of the workers of this host that
  record in ``QTASKS["METRICS_DIR"]`` (``metrics.views``).

Nothing here is imported unless one of them is used: a worker without
metrics does not load prometheus_client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django_qtasks.metrics.views import metrics_view

__all__ = ["metrics_view"]


def __getattr__(name: str) -> Any:
    if name == "metrics_view":
        from django_qtasks.metrics.views import metrics_view

        return metrics_view
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
