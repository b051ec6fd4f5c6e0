"""Changelist filters and search whose choices never scan the task table.

Task names, queues and tags come from the registry of tasks (and, for
queues, the live workers), not from ``SELECT DISTINCT`` over a table that
may hold millions of rows.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from typing import Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import get_fields_from_path
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.db import connections
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from django_qtasks.conf import qtasks_settings
from django_qtasks.models import Schedule, Task, WorkerHeartbeat
from django_qtasks.registry import default_app

SHORT_UUID = re.compile(r"[0-9a-fA-F]{8}")


def tag_q(tag: str) -> Q:
    """Tasks whose ``tags`` list holds ``tag``, on every database.

    JSON containment is not available on SQLite, so this matches the tag as
    a JSON string (``"tag"``) inside the stored text, written both with and
    without ``\\u`` escapes, as databases differ in how they store non-ASCII.
    """
    query = Q()
    for needle in {json.dumps(tag), json.dumps(tag, ensure_ascii=False)}:
        query |= Q(tags__icontains=needle)
    return query


def search_q(term: str) -> Q:
    """A uuid, the first 8 characters of one (as the changelist shows), a part of a
    task name, or a tag. Uuids are looked up as ranges of the primary key index."""
    refuse_nul(term)
    try:
        return Q(pk=uuid.UUID(term))
    except ValueError:
        pass
    if SHORT_UUID.fullmatch(term):
        if connections[Task.objects.db].vendor == "mysql":
            # MariaDB's uuid type does not sort as its text does (it compares
            # a version 4 uuid's groups in another order), so no range there.
            return Q(pk__istartswith=term)
        return Q(pk__gte=uuid.UUID(term + "0" * 24), pk__lte=uuid.UUID(term + "f" * 24))
    return Q(task_name__icontains=term) | tag_q(term)


def refuse_nul(value: str) -> str:
    """``value``; IncorrectLookupParameters (the admin's "?e=1") if it holds a NUL
    character, which PostgreSQL refuses in any query."""
    if "\x00" in value:
        raise IncorrectLookupParameters(gettext("A filter value holds a NUL character."))
    return value


def is_id(value: str) -> bool:
    """A primary key as the admin writes it: ASCII digits (``isdigit()`` alone takes
    superscript digits, which ``int()`` refuses)."""
    return value.isascii() and value.isdigit()


def refuse_bad_selection(model_admin: admin.ModelAdmin[Any], request: HttpRequest) -> None:
    """SuspiciousOperation (400) unless every row an action was posted for is named
    by a value its primary key takes: the list only ever posts those."""
    key = model_admin.model._meta.pk
    assert key is not None
    for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
        try:
            key.to_python(value)
        except ValidationError:
            raise SuspiciousOperation(
                f"An action was posted for {value!r}, which is no {key.verbose_name} of "
                f"{model_admin.model._meta.verbose_name_plural}."
            ) from None


def offered_lookups(model_admin: admin.ModelAdmin[Any], request: HttpRequest | None) -> set[str]:
    """The query parameters of the changelist's own filters and date hierarchy.

    Django's admin filters by any lookup on a model's own fields
    (``?worker__regex=.*``), which lets anyone who may view the list run scans
    the page never offers. Our admins take only these; the rest is a 400.
    """
    found: set[str] = set()
    for item in model_admin.get_list_filter(request):  # type: ignore[arg-type]
        if isinstance(item, type) and issubclass(item, admin.SimpleListFilter):
            found.add(str(item.parameter_name))
            continue
        path: Any
        make: Any
        path, make = (
            item if isinstance(item, (list, tuple)) else (item, admin.FieldListFilter.create)
        )
        field = get_fields_from_path(model_admin.model, path)[-1]
        spec = make(field, request, {}, model_admin.model, model_admin, field_path=path)
        found.update(str(name) for name in spec.expected_parameters())
    if model_admin.date_hierarchy:
        found.update(f"{model_admin.date_hierarchy}__{part}" for part in ("year", "month", "day"))
    return found


def registered_tasks() -> Iterable[Any]:
    return default_app().tasks.values()


class ChoicesFilter(admin.SimpleListFilter):
    """A filter on one value; the choices are known names, plus the current one."""

    def known(self) -> set[str]:
        raise NotImplementedError

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = {name for name in self.known() if name}
        if self.value():
            names.add(str(self.value()))
        return [(name, name) for name in sorted(names)]

    def matching(self, value: str) -> Q:
        raise NotImplementedError

    def queryset(self, request: HttpRequest, queryset: QuerySet[Task]) -> QuerySet[Task]:
        value = self.value()
        return queryset.filter(self.matching(refuse_nul(str(value)))) if value else queryset


class TaskNameFilter(ChoicesFilter):
    title = _("task name")
    parameter_name = "task_name"

    def known(self) -> set[str]:
        return {handle.task_name for handle in registered_tasks()}

    def matching(self, value: str) -> Q:
        return Q(task_name=value)


class QueueFilter(ChoicesFilter):
    title = _("queue")
    parameter_name = "queue"

    def known(self) -> set[str]:
        queues = {qtasks_settings.DEFAULT_QUEUE}
        queues.update(handle.queue for handle in registered_tasks() if handle.queue)
        # A handful of rows, one per live worker.
        for heartbeat in WorkerHeartbeat.objects.only("queues"):
            queues.update(heartbeat.queue_names())
        return queues

    def matching(self, value: str) -> Q:
        return Q(queue=value)


class TagFilter(ChoicesFilter):
    title = _("tag")
    parameter_name = "tag"

    def known(self) -> set[str]:
        return {tag for handle in registered_tasks() for tag in handle.tags}

    def matching(self, value: str) -> Q:
        return tag_q(value)


class ScheduleFilter(admin.SimpleListFilter):
    """The tasks a schedule enqueued (its page links here).

    Shown only while it filters: listing every schedule as a choice would
    cost a query on each page of the task list.
    """

    title = _("schedule")
    parameter_name = "schedule__id__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        if not value:
            return []
        if not is_id(str(value)):
            return [(str(value), str(value))]  # refused by queryset()
        name = Schedule.objects.filter(pk=int(value)).values_list("name", flat=True).first()
        return [(str(value), name or gettext("#%(id)s (deleted)") % {"id": value})]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Task]) -> QuerySet[Task]:
        value = self.value()
        if not value:
            return queryset
        if not is_id(str(value)):
            raise IncorrectLookupParameters(value)
        return queryset.filter(schedule_id=int(value))
