"""Tasks in and out: what a client reads, and what it may send."""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

from django_qtasks import app
from django_qtasks.exceptions import UnknownTask
from django_qtasks.models import CANCEL_REASON_MAX_LENGTH, Task
from django_qtasks.validation import is_int, is_number, unstorable

#: Longest ``delay`` (and furthest ``eta``) the API takes: a year. Later is a schedule.
MAX_DELAY = 365 * 24 * 3600
INT32 = 2**31


class TaskSerializer(serializers.ModelSerializer[Task]):
    duration = serializers.SerializerMethodField(help_text="Seconds from start to end.")

    class Meta:
        model = Task
        fields = [
            "uuid",
            "task_name",
            "status",
            "priority",
            "queue",
            "args",
            "kwargs",
            "extra",
            "tags",
            "returning",
            "traceback",
            "logs",
            "cancel_reason",
            "canceled_by",
            "cancel_requested_at",
            "attempts",
            "max_attempts",
            "attempt_log",
            "worker",
            "retry_of",
            "schedule",
            "chain_previous",
            "chain_steps",
            "created_at",
            "updated_at",
            "run_after",
            "started_at",
            "finished_at",
            "duration",
        ]
        read_only_fields = fields

    def get_duration(self, task: Task) -> float | None:
        duration = task.duration
        return None if duration is None else duration.total_seconds()


#: Left out of the list, where they would make every page heavy; the detail has them.
HEAVY_FIELDS = ("returning", "traceback", "logs", "attempt_log")


class TaskListSerializer(TaskSerializer):
    class Meta(TaskSerializer.Meta):
        fields = [name for name in TaskSerializer.Meta.fields if name not in HEAVY_FIELDS]
        read_only_fields = fields


# Input ----------------------------------------------------------------------------------
# A JSON body already has types: a number where a string belongs is a mistake
# to report, not a value to convert (DRF would turn 5 into "5" and True into 1).


class StrictCharField(serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        # The string as sent, so that max_length means what the schema's maxLength says.
        super().__init__(trim_whitespace=False, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        if not is_int(data):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data: Any) -> float:
        if not is_number(data):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictDateTimeField(serializers.DateTimeField):
    """An ISO 8601 string with its UTC offset: a time without one is ambiguous."""

    default_error_messages = {
        "invalid": "Give an ISO 8601 date and time, such as 2026-11-24T09:30:00Z.",
        "naive": "Give the time's UTC offset, such as 2026-11-24T09:30:00Z or "
        "2026-11-24T10:30:00+01:00: without one it is ambiguous.",
    }

    def to_internal_value(self, data: Any) -> datetime:
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            value = parse_datetime(data)
            if value is not None and not timezone.is_naive(value):
                value = value.astimezone(dt_timezone.utc)
        except (ValueError, OverflowError):  # no such day; beyond year 9999 in UTC
            value = None
        if value is None:
            self.fail("invalid")
        if timezone.is_naive(value):
            self.fail("naive")
        return value


class TaskNameField(StrictCharField):
    """A registered task's name; the error lists the registered ones."""

    def to_internal_value(self, data: Any) -> str:
        name = super().to_internal_value(data)
        try:
            return app.get_task(name).task_name
        except UnknownTask as exc:
            raise serializers.ValidationError(str(exc), code="invalid_choice") from None


class TaskNameFieldSchema(OpenApiSerializerFieldExtension):
    """In the schema, the names registered when it is generated (an enum)."""

    target_class = TaskNameField

    def map_serializer_field(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        return {"type": "string", "enum": sorted(app.tasks)}


class TaskCreateSerializer(serializers.Serializer[Any]):
    task_name = TaskNameField(help_text="The name of a registered task.")
    args = serializers.ListField(
        child=serializers.JSONField(), default=list, help_text="Positional arguments."
    )
    kwargs = serializers.DictField(
        child=serializers.JSONField(), default=dict, help_text="Keyword arguments."
    )
    priority = StrictIntegerField(
        required=False,
        min_value=-INT32,
        max_value=INT32 - 1,
        help_text="Lower runs first. Default: the task's own priority.",
    )
    queue = StrictCharField(
        required=False,
        min_length=1,
        max_length=100,
        help_text="Default: the task's queue, else QTASKS['DEFAULT_QUEUE'].",
    )
    delay = StrictFloatField(
        required=False,
        min_value=0,
        max_value=MAX_DELAY,
        help_text="Seconds to wait before the task may run (sets run_after).",
    )
    eta = StrictDateTimeField(
        required=False,
        help_text="When the task may run (sets run_after), with its UTC offset; at most a "
        "year ahead. A time past runs it at once. Not with delay.",
    )

    def validate_eta(self, value: datetime) -> datetime:
        if value > timezone.now() + timedelta(seconds=MAX_DELAY):
            raise serializers.ValidationError("Ensure this is at most a year from now.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "delay" in attrs and "eta" in attrs:
            raise serializers.ValidationError({"eta": ["Give delay or eta, not both."]})
        return attrs

    def validate_args(self, value: list[Any]) -> list[Any]:
        return reject_unstorable("args", value)

    def validate_kwargs(self, value: dict[str, Any]) -> dict[str, Any]:
        return reject_unstorable("kwargs", value)


class CancelSerializer(serializers.Serializer[Any]):
    reason = StrictCharField(
        min_length=1,
        max_length=CANCEL_REASON_MAX_LENGTH,
        help_text="Why: kept with the task and written to the worker's log.",
    )


class DetailSerializer(serializers.Serializer[Any]):
    """The body of an error response that is about the request as a whole."""

    detail = serializers.CharField()


def reject_unstorable(field: str, value: Any) -> Any:
    """``value``, unless it holds a character no database stores (NUL, a surrogate).

    The same check as ``add_task``'s (``app.unstorable``), made here so that
    the field is named in a 400: the same request means the same everywhere.
    """
    problem = unstorable(value, field)
    if problem:
        raise serializers.ValidationError(f"{field} cannot be stored: it holds {problem}.")
    return value
