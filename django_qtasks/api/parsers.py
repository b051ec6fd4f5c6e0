"""The API reads JSON only, and only so much of it.

DRF's own JSONParser reads the whole body, whatever its size (Django's
``DATA_UPLOAD_MAX_MEMORY_SIZE`` guards ``request.body``, which DRF bypasses),
and lets a deeply nested document crash the view with a RecursionError. This
one reads at most ``QTASKS['API_MAX_BODY_SIZE']`` bytes and bounds the nesting,
so that everything after it (validation, ``json.dumps``, the database
adapters) works on a small, shallow document.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from django_qtasks.api.exceptions import PayloadTooLarge
from django_qtasks.conf import qtasks_settings

#: Deepest nesting of a JSON body, counting the body itself as level 1.
MAX_DEPTH = 32


class BoundedJSONParser(JSONParser):
    def parse(
        self,
        stream: IO[Any] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        limit = qtasks_settings.API_MAX_BODY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(
                f"The request body is larger than {limit} bytes, the limit set by "
                "QTASKS['API_MAX_BODY_SIZE']. Pass large inputs by reference (a primary key, "
                "a file name) and let the task load them."
            )
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.loads(raw.decode(encoding), parse_constant=_reject_constant)
        except RecursionError:
            raise ParseError(_too_deep()) from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        if _depth(data) > MAX_DEPTH:
            raise ParseError(_too_deep())
        return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON; send a number or null")


def _too_deep() -> str:
    return f"JSON parse error - the body is nested more than {MAX_DEPTH} levels deep."


def _depth(data: Any) -> int:
    """How deeply ``data`` nests lists and objects, without recursion."""
    deepest = 0
    stack = [(data, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            break
        stack.extend((child, level + 1) for child in children)
    return deepest
