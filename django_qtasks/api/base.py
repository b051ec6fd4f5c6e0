"""What every API view shares: JSON in, permissions and throttles from QTASKS,
and drf-spectacular's schema whatever the project's DEFAULT_SCHEMA_CLASS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import BasePermission
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from django_qtasks.api.parsers import BoundedJSONParser
from django_qtasks.api.serializers import DetailSerializer
from django_qtasks.conf import SETTING_NAME, qtasks_settings

F = TypeVar("F", bound=Callable[..., Any])


def load_classes(key: str) -> list[type[Any]]:
    """The classes named by the import strings of ``QTASKS[key]``."""
    classes = []
    for path in getattr(qtasks_settings, key):
        try:
            classes.append(import_string(path))
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"{SETTING_NAME}[{key!r}] names {path!r}, which cannot be imported ({exc}). "
                "List classes by their full dotted path, e.g. "
                "'rest_framework.permissions.IsAdminUser'."
            ) from exc
    return classes


class QTasksAPIView(APIView):
    """The base of every API view."""

    parser_classes = [BoundedJSONParser]
    schema = AutoSchema()
    #: The rate of DRF's ScopedRateThrottle: REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["qtasks"].
    throttle_scope = "qtasks"
    #: The model whose view permission a read needs (api.permissions.CanView).
    view_model = "task"
    view_what = "tasks"
    #: Model permissions an action needs on top of QTASKS['API_PERMISSION_CLASSES'].
    action_permissions: dict[str, type[BasePermission]] = {}

    def get_permissions(self) -> list[BasePermission]:
        configured = [cls() for cls in load_classes("API_PERMISSION_CLASSES")]
        extra = self.action_permissions.get(getattr(self, "action", None) or "")
        return [*configured, extra()] if extra else configured

    def get_throttles(self) -> list[BaseThrottle]:
        if qtasks_settings.API_THROTTLE_CLASSES is None:
            return super().get_throttles()
        return [cls() for cls in load_classes("API_THROTTLE_CLASSES")]


def document(**options: Any) -> Callable[[F], F]:
    """``extend_schema`` for a view method, on drf-spectacular's AutoSchema.

    ``extend_schema`` builds a method's schema on DEFAULT_SCHEMA_CLASS, which
    a project without drf-spectacular settings leaves at DRF's own class.
    """

    def decorator(method: F) -> F:
        method.schema = AutoSchema  # type: ignore[attr-defined]
        return extend_schema(**options)(method)

    return decorator


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """Schema of the error responses an operation can give, besides auth and throttling."""
    described = {
        400: OpenApiResponse(
            OpenApiTypes.OBJECT,
            description='Bad input: {"<field>": ["<message>"]}, or {"detail": "..."} for '
            "a body that is not JSON.",
        ),
        401: OpenApiResponse(DetailSerializer, description="Not authenticated."),
        403: OpenApiResponse(DetailSerializer, description="Not allowed."),
        404: OpenApiResponse(DetailSerializer, description="No task with this uuid."),
        409: OpenApiResponse(DetailSerializer, description="Not in a state to do this."),
        413: OpenApiResponse(DetailSerializer, description="Body over API_MAX_BODY_SIZE."),
        415: OpenApiResponse(DetailSerializer, description="The body is not JSON."),
        429: OpenApiResponse(DetailSerializer, description="Throttled."),
    }
    return {code: described[code] for code in (*codes, 401, 403, 429)}
