"""Cursor pagination of the task list: newest first, stable under inserts."""

from __future__ import annotations

from datetime import timezone as dt_timezone

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request


class TaskCursorPagination(CursorPagination):
    # created_at is nearly unique; DRF's cursor offset settles ties, the uuid orders them.
    ordering = ("-created_at", "-uuid")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        # isdigit() alone takes superscript digits (int() refuses them) and fullwidth ones.
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError(
                {
                    "page_size": [
                        f"Must be a whole number from 1 to {self.max_page_size}, not {raw!r}."
                    ]
                }
            )
        return int(raw)

    def decode_cursor(self, request: Request) -> Cursor | None:
        message = {"cursor": ["Invalid cursor: use the 'next' or 'previous' link of a page."]}
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise ValidationError(message) from None
        if cursor is not None and cursor.position is not None:
            try:
                position = parse_datetime(str(cursor.position))
                if position is None or position.tzinfo is None:
                    raise ValueError(cursor.position)
                position.astimezone(dt_timezone.utc)
            except (ValueError, OverflowError):
                raise ValidationError(message) from None
        return cursor
