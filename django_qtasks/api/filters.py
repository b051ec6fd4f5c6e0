"""The task list's query parameters: parsed by a serializer, so a bad value
is a 400 that names the parameter, then applied as plain ``filter()`` calls."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db import connections
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.http import QueryDict
from rest_framework import serializers

from django_qtasks.models import Task, TaskStatus


def text(**kwargs: Any) -> serializers.CharField:
    """A string parameter as sent: no trimming, so max_length is the schema's maxLength."""
    return serializers.CharField(required=False, trim_whitespace=False, **kwargs)


class TaskFilterSerializer(serializers.Serializer[Any]):
    status = serializers.MultipleChoiceField(
        choices=TaskStatus.choices,
        required=False,
        help_text="Only tasks in these statuses: repeat the parameter or separate by commas.",
    )
    task_name = text(max_length=200, help_text="Only tasks of this registered name.")
    queue = text(max_length=100, help_text="Only this queue.")
    tag = text(max_length=200, help_text="Only tasks that carry this tag.")
    worker = text(max_length=200, help_text="Only tasks run by this worker id.")
    created_after = serializers.DateTimeField(
        required=False, help_text="Only tasks created at or after this ISO 8601 date-time."
    )
    created_before = serializers.DateTimeField(
        required=False, help_text="Only tasks created before this ISO 8601 date-time."
    )
    search = text(
        max_length=200,
        help_text="Text in the task name, queue, worker or cancel reason, or a whole uuid.",
    )


def filter_tasks(queryset: QuerySet[Task], params: QueryDict) -> QuerySet[Task]:
    """``queryset`` narrowed by the query parameters; ValidationError (400) when one is bad."""
    data: dict[str, Any] = {key: params.get(key) for key in params if key != "status"}
    if "status" in params:
        data["status"] = [part for value in params.getlist("status") for part in value.split(",")]
    parsed = TaskFilterSerializer(data=data)
    parsed.is_valid(raise_exception=True)
    found: dict[str, Any] = parsed.validated_data
    if found.get("status"):
        queryset = queryset.filter(status__in=sorted(found["status"]))
    for name in ("task_name", "queue", "worker"):
        if name in found:
            queryset = queryset.filter(**{name: found[name]})
    if "created_after" in found:
        queryset = queryset.filter(created_at__gte=found["created_after"])
    if "created_before" in found:
        queryset = queryset.filter(created_at__lt=found["created_before"])
    if "tag" in found:
        queryset = with_tag(queryset, found["tag"])
    if "search" in found:
        queryset = queryset.filter(search_filter(found["search"]))
    return queryset


def with_tag(queryset: QuerySet[Task], tag: str) -> QuerySet[Task]:
    """Tasks whose ``tags`` list holds ``tag``, on every supported database."""
    connection = connections[queryset.db]
    if connection.features.supports_json_field_contains:  # PostgreSQL, MySQL, MariaDB
        return queryset.filter(tags__contains=[tag])
    # SQLite has no JSON containment: look through the array's elements.
    column = f"{connection.ops.quote_name(Task._meta.db_table)}.{connection.ops.quote_name('tags')}"
    sql = f"EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = %s)"
    return queryset.filter(RawSQL(sql, (tag,), output_field=BooleanField()))


def search_filter(text: str) -> Q:
    condition = (
        Q(task_name__icontains=text)
        | Q(queue__icontains=text)
        | Q(worker__icontains=text)
        | Q(cancel_reason__icontains=text)
    )
    try:
        return condition | Q(pk=UUID(text))
    except ValueError:
        return condition
