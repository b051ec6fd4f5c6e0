"""The task admin: a read-only history of every task, with cancel and retry."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from django_qtasks.admin import actions, dashboard, views
from django_qtasks.admin.columns import TaskColumns
from django_qtasks.admin.filters import (
    QueueFilter,
    ScheduleFilter,
    TagFilter,
    TaskNameFilter,
    offered_lookups,
    refuse_bad_selection,
    search_q,
)
from django_qtasks.admin.hierarchy import ProbedDatesQuerySet
from django_qtasks.admin.pagination import EstimatedCountPaginator
from django_qtasks.models import Task, TaskStatus

#: The detail page, section by section; every field is read-only.
SECTIONS: list[tuple[Any, Any]] = [
    (
        None,
        [
            "uuid",
            "task_name",
            "status_badge",
            "queue",
            "priority",
            "tag_list",
            "worker",
            "schedule_link",
        ],
    ),
    (
        _("Timing"),
        ["created_at", "run_after", "started_at", "finished_at", "duration", "updated_at"],
    ),
    (_("Input"), ["args_pretty", "kwargs_pretty", "extra_pretty"]),
    (
        _("Outcome"),
        [
            "result_pretty",
            "traceback_pretty",
            "cancel_reason",
            "canceled_by",
            "cancel_requested_at",
        ],
    ),
    (
        _("Attempts and retries"),
        ["attempts_count", "attempt_history", "retry_of_link", "retries_links"],
    ),
    (_("Chain"), ["chain_table"]),
    (_("Log"), ["log_lines"]),
]
CANCEL_FIELDS = {"cancel_reason", "canceled_by", "cancel_requested_at"}

#: Big JSON and text columns the changelist never shows.
HEAVY_FIELDS = ("args", "kwargs", "extra", "returning", "traceback", "logs", "attempt_log")


def in_chain(task: Task) -> bool:
    """A step of a chain: it has a step before it, or steps after it (run or to run)."""
    if not hasattr(task, "_qtasks_in_chain"):  # asked more than once per page
        task._qtasks_in_chain = (  # type: ignore[attr-defined]
            task.chain_previous_id is not None
            or bool(task.chain_steps)
            or Task.objects.filter(chain_previous=task.pk).exists()
        )
    return bool(task._qtasks_in_chain)  # type: ignore[attr-defined]


class TaskChangeList(ChangeList):
    def get_filters(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        """Django's, with a date whose period ends past year 9999 a bad lookup (``?e=1``).

        Django computes the end of the year, month or day picked in the date
        hierarchy (``created_at__year=9999``) and its datetime overflows.
        """
        try:
            return super().get_filters(request, *args, **kwargs)
        except (ValueError, OverflowError) as exc:
            prefix = f"{self.date_hierarchy}__"
            if not any(str(key).startswith(prefix) for key in self.params):
                raise
            raise IncorrectLookupParameters(exc) from exc

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Task]:
        if exclude_parameters is None:  # Django < 5.0 has no such parameter
            queryset = super().get_queryset(request)
        else:
            queryset = super().get_queryset(request, exclude_parameters)
        return queryset.defer(*HEAVY_FIELDS)


class TaskAdmin(TaskColumns, admin.ModelAdmin):
    list_display = [
        "short_uuid",
        "task_name",
        "status_badge",
        "priority",
        "queue",
        "tag_list",
        "created_at",
        "duration",
        "attempts_count",
        "worker",
    ]
    list_display_links = ["short_uuid", "task_name"]
    list_filter = [
        "status",
        TaskNameFilter,
        QueueFilter,
        TagFilter,
        ("created_at", admin.DateFieldListFilter),
        ScheduleFilter,
    ]
    # Never searched with these lookups: get_search_results() knows better.
    search_fields = ["task_name"]
    search_help_text = _("A uuid (or its first 8 characters), part of a task name, or a tag.")
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    list_per_page = 50
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    # delete_selected replaces Django's, which would delete running tasks too.
    actions = [actions.cancel_selected, actions.retry_selected, actions.delete_selected]
    if hasattr(admin, "ShowFacets"):  # Django 5.0+: facet counts scan the table.
        show_facets = admin.ShowFacets.NEVER
    fieldsets = [(title, {"fields": fields}) for title, fields in SECTIONS]
    readonly_fields = [name for _title, fields in SECTIONS for name in fields]

    class Media:
        css = {"all": ["django_qtasks/admin.css"]}
        js = ["django_qtasks/task.js"]

    # Permissions: the history is read-only; cancel and retry are permissions of their own.

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        return False

    def has_cancel_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.cancel_task")

    def has_retry_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.retry_task")

    def has_delete_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        # No delete button on a running task (delete_view says why).
        if obj is not None and obj.status == TaskStatus.PROCESS:
            return False
        return super().has_delete_permission(request, obj)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Refuse a running task: its row would go, and the task would run on."""
        obj = self.get_object(request, unquote(object_id))
        if (
            obj is not None
            and obj.status == TaskStatus.PROCESS
            and super().has_delete_permission(request, obj)
        ):
            self.message_user(
                request,
                gettext(
                    "Task %(uuid)s is running and was not deleted: cancel it first, and "
                    "delete it once it has ended."
                )
                % {"uuid": obj.uuid},
                messages.ERROR,
            )
            name = f"admin:{self.opts.app_label}_{self.opts.model_name}_change"
            return HttpResponseRedirect(
                reverse(name, args=[obj.pk], current_app=self.admin_site.name)
            )
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request: HttpRequest, obj: Task) -> None:
        # Guarded in the statement: a task that started since the check stays.
        Task.objects.filter(pk=obj.pk).exclude(status=TaskStatus.PROCESS).delete()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        queryset.exclude(status=TaskStatus.PROCESS).delete()

    def get_fieldsets(self, request: HttpRequest, obj: Task | None = None) -> Any:
        """Leave out what does not apply: no cancel fields on a task nobody cancelled,
        no schedule on a task no schedule enqueued, no chain on a task of none."""
        if obj is None:
            return self.fieldsets
        hidden = set()
        if not (obj.cancel_requested_at or obj.cancel_reason):
            hidden |= CANCEL_FIELDS
        if obj.schedule_id is None:
            hidden.add("schedule_link")
        if not in_chain(obj):
            hidden.add("chain_table")
        fieldsets = [
            (title, {**options, "fields": [f for f in options["fields"] if f not in hidden]})
            for title, options in self.fieldsets
        ]
        return [(title, options) for title, options in fieldsets if options["fields"]]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "qtasks_can_cancel": self.has_cancel_permission(request),
            "qtasks_can_retry": self.has_retry_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # The changelist: fast on millions of rows.

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return TaskChangeList

    def get_queryset(self, request: HttpRequest) -> QuerySet[Task]:
        queryset = super().get_queryset(request)
        return ProbedDatesQuerySet(model=queryset.model, query=queryset.query, using=queryset.db)

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        return lookup in offered_lookups(self, request)

    def response_action(
        self, request: HttpRequest, queryset: QuerySet[Task], *args: Any, **kwargs: Any
    ) -> HttpResponse | None:
        refuse_bad_selection(self, request)
        return super().response_action(request, queryset, *args, **kwargs)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Task], search_term: str
    ) -> tuple[QuerySet[Task], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(search_q(term)), False

    def get_urls(self) -> list[URLPattern]:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        urls = [
            path(
                "dashboard/",
                wrap(dashboard.DashboardView.as_view(model_admin=self)),
                name=f"{prefix}_dashboard",
            ),
            path(
                "dashboard/data/",
                wrap(dashboard.DashboardDataView.as_view(model_admin=self)),
                name=f"{prefix}_dashboard_data",
            ),
            path(
                "<path:object_id>/cancel/",
                wrap(views.CancelView.as_view(model_admin=self)),
                name=f"{prefix}_cancel",
            ),
            path(
                "<path:object_id>/result/",
                wrap(views.ResultView.as_view(model_admin=self)),
                name=f"{prefix}_result",
            ),
            path(
                "<path:object_id>/retry/",
                wrap(views.RetryView.as_view(model_admin=self)),
                name=f"{prefix}_retry",
            ),
        ]
        return urls + super().get_urls()
