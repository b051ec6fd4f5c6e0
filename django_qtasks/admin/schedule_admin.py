"""The schedule admin: periodic tasks, their timing, and Run now / Enable / Disable.

Schedules added here have ``source="admin"`` and can be edited freely. Those
declared in code (``@app.task(schedule=...)``) or settings
(``QTASKS["SCHEDULES"]``) are rewritten from there by the beat each time it
starts, so their task, timing and arguments are read-only: only enabled,
one-off and the expiry can be changed. Every action says what it did and
what it could not do, and records each change in the schedule's history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import display_for_field, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet
from django.forms import ModelForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timesince import timeuntil
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views import View

from django_qtasks import beat
from django_qtasks.admin import display
from django_qtasks.admin.filters import (
    TaskNameFilter,
    offered_lookups,
    refuse_bad_selection,
    refuse_nul,
)
from django_qtasks.admin.schedule_form import ScheduleForm, problems_of
from django_qtasks.cron import describe_cron
from django_qtasks.exceptions import InvalidSchedule
from django_qtasks.models import Schedule, ScheduleSource, Task
from django_qtasks.registry import default_app

#: What the beat rewrites from code and settings: read-only on such a schedule.
DECLARED_FIELDS = [
    "name",
    "task_name",
    "description",
    "cron",
    "interval",
    "args",
    "kwargs",
    "queue",
    "priority",
]
#: What the beat writes as it runs the schedule: always read-only.
RUN_FIELDS = [
    "next_run",
    "last_run_at",
    "runs_link",
    "last_task_link",
    "source_label",
    "created_at",
    "updated_at",
]
#: A change of one of these gives the schedule a new next run.
TIMING_FIELDS = {"cron", "interval", "enabled", "expires_at"}

SOURCE_LABELS = {
    ScheduleSource.ADMIN: gettext_lazy("admin"),
    ScheduleSource.CODE: gettext_lazy("code"),
    ScheduleSource.SETTINGS: gettext_lazy("settings"),
}


def is_declared(schedule: Schedule | None) -> bool:
    """Declared in code or settings: the beat rewrites its task, timing and arguments."""
    return schedule is not None and schedule.source != ScheduleSource.ADMIN


def upcoming_run(schedule: Schedule, now: datetime) -> datetime | None:
    """When an enabled schedule runs next from ``now``; None if disabled or expired."""
    if not schedule.enabled:
        return None
    try:
        return schedule.next_run_after(now)
    except InvalidSchedule:  # a cron that never matches: check_schedule refuses those
        return None


def timing_text(schedule: Schedule) -> str:
    if schedule.cron:
        return describe_cron(schedule.cron)
    if schedule.interval:
        return _("every %(interval)s") % {"interval": schedule.interval}
    return display.EMPTY


# Actions -------------------------------------------------------------------------


@dataclass
class RunReport:
    created: list[tuple[Schedule, Task]] = field(default_factory=list)
    #: Schedules whose task is not registered.
    failed: list[Schedule] = field(default_factory=list)
    #: Schedules whose arguments the task refuses (its page says why).
    unfit: list[Schedule] = field(default_factory=list)

    def message(self) -> SafeString:
        parts = []
        if self.created:
            count = len(self.created)
            runs = format_html_join(
                ", ",
                '<a href="{}">{} {}</a> ({})',
                (
                    (task_url(task.pk), task.task_name, str(task.uuid)[:8], schedule.name)
                    for schedule, task in self.created
                ),
            )
            parts.append(
                format_html(
                    "{}: {}",
                    ngettext("Enqueued %(count)d run", "Enqueued %(count)d runs", count)
                    % {"count": count},
                    runs,
                )
            )
        if self.failed:
            count = len(self.failed)
            parts.append(
                format_html(
                    "{}: {}",
                    ngettext(
                        "%(count)d schedule could not run because its task is not registered",
                        "%(count)d schedules could not run because their tasks are not registered",
                        count,
                    )
                    % {"count": count},
                    ", ".join(f"{s.name} ({s.task_name})" for s in self.failed),
                )
            )
        if self.unfit:
            count = len(self.unfit)
            parts.append(
                format_html(
                    "{}: {}",
                    ngettext(
                        "%(count)d schedule could not run because its arguments do not fit "
                        "its task",
                        "%(count)d schedules could not run because their arguments do not fit "
                        "their tasks",
                        count,
                    )
                    % {"count": count},
                    ", ".join(f"{s.name} ({s.task_name})" for s in self.unfit),
                )
            )
        if not parts:
            return format_html("{}", _("No schedule was selected."))
        return format_html("{}.", format_html_join("; ", "{}", ((part,) for part in parts)))

    @property
    def level(self) -> int:
        if not (self.failed or self.unfit):
            return messages.SUCCESS
        return messages.WARNING if self.created else messages.ERROR


def task_url(pk: Any) -> str:
    return reverse("admin:django_qtasks_task_change", args=[pk])


def tasks_of_url(schedule_id: Any) -> str:
    return f"{reverse('admin:django_qtasks_task_changelist')}?schedule__id__exact={schedule_id}"


def run_schedules(
    model_admin: ScheduleAdmin, request: HttpRequest, schedules: QuerySet[Schedule]
) -> RunReport:
    report = RunReport()
    for schedule in schedules:
        task = beat.run_now(schedule)
        if task is None:
            registered = schedule.task_name in default_app().tasks
            (report.unfit if registered else report.failed).append(schedule)
            continue
        report.created.append((schedule, task))
        model_admin.log_change(request, schedule, _("Ran now: task %(uuid)s") % {"uuid": task.pk})
    return report


@admin.action(description=gettext_lazy("Run selected schedules now"), permissions=["run"])
def run_selected(
    model_admin: ScheduleAdmin, request: HttpRequest, queryset: QuerySet[Schedule]
) -> None:
    report = run_schedules(model_admin, request, queryset)
    model_admin.message_user(request, report.message(), report.level)


@admin.action(description=gettext_lazy("Enable selected schedules"), permissions=["change"])
def enable_selected(
    model_admin: ScheduleAdmin, request: HttpRequest, queryset: QuerySet[Schedule]
) -> None:
    now = timezone.now()
    enabled = already = expired = 0
    for schedule in queryset:
        if schedule.enabled:
            already += 1
            continue
        schedule.enabled = True
        upcoming = upcoming_run(schedule, now)
        if upcoming is None:
            expired += 1
            continue
        # Guarded: a schedule enabled meanwhile keeps the next run it was given.
        if Schedule.objects.filter(pk=schedule.pk, enabled=False).update(
            enabled=True, next_run_at=upcoming, updated_at=now
        ):
            enabled += 1
            model_admin.log_change(request, schedule, _("Enabled"))
        else:
            already += 1
    parts = []
    if enabled:
        parts.append(
            ngettext("Enabled %(count)d schedule", "Enabled %(count)d schedules", enabled)
            % {"count": enabled}
        )
    if already:
        parts.append(
            ngettext(
                "%(count)d schedule was already enabled",
                "%(count)d schedules were already enabled",
                already,
            )
            % {"count": already}
        )
    if expired:
        parts.append(
            ngettext(
                "%(count)d schedule could not be enabled because it has expired "
                "(change its expiry first)",
                "%(count)d schedules could not be enabled because they have expired "
                "(change their expiry first)",
                expired,
            )
            % {"count": expired}
        )
    level = messages.SUCCESS if not expired else messages.WARNING if enabled else messages.ERROR
    model_admin.message_user(request, sentence(parts), level)


@admin.action(description=gettext_lazy("Disable selected schedules"), permissions=["change"])
def disable_selected(
    model_admin: ScheduleAdmin, request: HttpRequest, queryset: QuerySet[Schedule]
) -> None:
    now = timezone.now()
    disabled = already = 0
    for schedule in queryset:
        if Schedule.objects.filter(pk=schedule.pk, enabled=True).update(
            enabled=False, next_run_at=None, updated_at=now
        ):
            disabled += 1
            model_admin.log_change(request, schedule, _("Disabled"))
        else:
            already += 1
    parts = []
    if disabled:
        parts.append(
            ngettext("Disabled %(count)d schedule", "Disabled %(count)d schedules", disabled)
            % {"count": disabled}
        )
    if already:
        parts.append(
            ngettext(
                "%(count)d schedule was already disabled",
                "%(count)d schedules were already disabled",
                already,
            )
            % {"count": already}
        )
    model_admin.message_user(request, sentence(parts), messages.SUCCESS)


def sentence(parts: list[str]) -> str:
    text = "; ".join(parts) or _("No schedule was selected")
    return text[0].upper() + text[1:] + "."


# The Run now button of one schedule's page ---------------------------------------


class RunNowView(View):
    model_admin: ScheduleAdmin | None = None
    http_method_names = ["post"]

    def post(self, request: HttpRequest, object_id: str) -> HttpResponse:
        model_admin = self.model_admin
        assert model_admin is not None
        schedule = model_admin.get_object(request, unquote(object_id))
        if schedule is None:
            raise Http404(_("No schedule with the id %(id)s.") % {"id": object_id})
        if not (
            model_admin.has_run_permission(request, schedule)
            and model_admin.has_view_or_change_permission(request, schedule)
        ):
            raise PermissionDenied
        queryset = Schedule.objects.filter(pk=schedule.pk)
        report = run_schedules(model_admin, request, queryset)
        model_admin.message_user(request, report.message(), report.level)
        opts = model_admin.opts
        return HttpResponseRedirect(
            reverse(
                f"{model_admin.admin_site.name}:{opts.app_label}_{opts.model_name}_change",
                args=[schedule.pk],
            )
        )


# The admin -----------------------------------------------------------------------


class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_display = [
        "name",
        "task_name",
        "timing",
        "enabled",
        "one_off",
        "next_run",
        "last_run_at",
        "last_task_link",
        "runs_link",
        "source_label",
    ]
    list_display_links = ["name"]
    list_filter = ["enabled", "source", TaskNameFilter]
    search_fields = ["name", "task_name"]
    search_help_text = gettext_lazy("A part of a schedule's name or of its task's name.")
    ordering = ["name"]
    list_per_page = 100
    actions = [run_selected, enable_selected, disable_selected]
    if hasattr(admin, "ShowFacets"):  # Django 5.0+: no facet counts.
        show_facets = admin.ShowFacets.NEVER

    class Media:
        css = {"all": ["django_qtasks/admin.css"]}

    # Permissions ---------------------------------------------------------------

    def has_run_permission(self, request: HttpRequest, obj: Schedule | None = None) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.run_schedule")

    def has_delete_permission(self, request: HttpRequest, obj: Schedule | None = None) -> bool:
        # The beat would create a declared schedule again at its next start.
        if is_declared(obj):
            return False
        return super().has_delete_permission(request, obj)

    # The change form -------------------------------------------------------------

    def get_fieldsets(self, request: HttpRequest, obj: Schedule | None = None) -> Any:
        timing = ["cron", "interval"] + (["timing"] if obj is not None else [])
        fieldsets: list[tuple[Any, dict[str, Any]]] = [
            (None, {"fields": ["name", "task_name", "description"]}),
            (
                _("When"),
                {
                    "fields": timing,
                    "description": _(
                        "A cron expression or an interval, not both. Runs are enqueued by the "
                        "beat: manage.py qtasks_beat, or qtasks_worker --beat."
                    ),
                },
            ),
            (_("Arguments and options"), {"fields": ["args", "kwargs", "queue", "priority"]}),
            (_("On and off"), {"fields": ["enabled", "one_off", "expires_at"]}),
        ]
        if obj is not None:
            fieldsets.append((_("Runs"), {"fields": RUN_FIELDS}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Schedule | None = None) -> Any:
        readonly = ["timing", *RUN_FIELDS]
        if is_declared(obj):
            readonly += DECLARED_FIELDS
        return readonly

    def save_model(
        self, request: HttpRequest, obj: Schedule, form: ModelForm, change: bool
    ) -> None:
        changed = set(form.changed_data)
        retimed = not change or bool(changed & TIMING_FIELDS)
        if retimed:
            obj.next_run_at = upcoming_run(obj, timezone.now())
        if not change:
            obj.save()
        else:
            # Only what the form changed: the beat may be moving next_run_at,
            # last_run_at and run_count of this row meanwhile.
            fields = [name for name in form.changed_data if name in form.fields]
            if retimed:
                fields.append("next_run_at")
            if fields:
                obj.save(update_fields=[*fields, "updated_at"])
        if obj.enabled and obj.next_run_at is None:
            self.message_user(
                request,
                _("“%(name)s” is enabled but has no next run: its expiry has passed.")
                % {"name": obj.name},
                messages.WARNING,
            )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "qtasks_can_run": self.has_run_permission(request),
        }
        declared = self.get_object(request, unquote(object_id))
        if is_declared(declared):
            assert declared is not None
            extra_context["qtasks_problems"] = problems_of(declared)
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self) -> list[URLPattern]:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        run = self.admin_site.admin_view(RunNowView.as_view(model_admin=self))
        return [path("<path:object_id>/run/", run, name=f"{prefix}_run"), *super().get_urls()]

    # The changelist: one query for the page, whatever its size -----------------

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        return lookup in offered_lookups(self, request)

    def response_action(
        self, request: HttpRequest, queryset: QuerySet[Schedule], *args: Any, **kwargs: Any
    ) -> HttpResponse | None:
        refuse_bad_selection(self, request)
        return super().response_action(request, queryset, *args, **kwargs)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Schedule], search_term: str
    ) -> tuple[QuerySet[Schedule], bool]:
        return super().get_search_results(request, queryset, refuse_nul(search_term))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Schedule]:
        # The last task's status through the join; the task row itself is not loaded.
        return super().get_queryset(request).annotate(last_task_status=F("last_task__status"))

    # Columns and read-only fields --------------------------------------------------

    @admin.display(description=gettext_lazy("timing"))
    def timing(self, schedule: Schedule) -> SafeString | str:
        if schedule.cron:
            return format_html(
                '<code class="qtasks-nowrap">{}</code><br><span class="qtasks-quiet">{}</span>',
                schedule.cron,
                describe_cron(schedule.cron),
            )
        return timing_text(schedule)

    @admin.display(description=gettext_lazy("next run"), ordering="next_run_at")
    def next_run(self, schedule: Schedule) -> SafeString | str:
        value = schedule.next_run_at
        if value is None:
            return display.EMPTY
        shown = display_for_field(value, Schedule._meta.get_field("next_run_at"), display.EMPTY)
        now = timezone.now()
        if value <= now:
            relative = _("due")
        elif (value - now).total_seconds() < 60:
            relative = _("in less than a minute")
        else:
            relative = _("in %(time)s") % {"time": timeuntil(value, now, depth=1)}
        return format_html(
            '<span class="qtasks-nowrap">{}</span><br><span class="qtasks-quiet">{}</span>',
            shown,
            relative,
        )

    @admin.display(description=gettext_lazy("last task"))
    def last_task_link(self, schedule: Schedule) -> SafeString | str:
        if schedule.last_task_id is None:
            return display.EMPTY
        if hasattr(schedule, "last_task_status"):
            status = schedule.last_task_status
        else:  # a page of one schedule, not annotated
            status = (
                Task.objects.filter(pk=schedule.last_task_id)
                .values_list("status", flat=True)
                .first()
            )
        return format_html(
            '<a href="{}"><code>{}</code></a> {}',
            task_url(schedule.last_task_id),
            str(schedule.last_task_id)[:8],
            display.status_badge(status) if status else "",
        )

    @admin.display(description=gettext_lazy("runs"), ordering="run_count")
    def runs_link(self, schedule: Schedule) -> SafeString:
        return format_html(
            '<a href="{}" title="{}">{}</a>',
            tasks_of_url(schedule.pk),
            _("The tasks this schedule enqueued"),
            schedule.run_count,
        )

    @admin.display(description=gettext_lazy("declared in"), ordering="source")
    def source_label(self, schedule: Schedule) -> SafeString:
        return format_html(
            '<span title="{}">{}</span>',
            schedule.get_source_display(),
            SOURCE_LABELS.get(schedule.source, schedule.source),  # type: ignore[call-overload]
        )
