"""HTTP errors of the API that DRF does not define."""

from __future__ import annotations

from rest_framework import status
from rest_framework.exceptions import APIException


class Conflict(APIException):
    """The task is in a state where the action does not apply (409)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The task is not in a state where this action applies."
    default_code = "conflict"


class PayloadTooLarge(APIException):
    """The request body is larger than ``QTASKS['API_MAX_BODY_SIZE']`` (413)."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"
