"""The task admin's columns and read-only fields, each one escaped HTML."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from django_qtasks.admin import display
from django_qtasks.chains import chain_of
from django_qtasks.models import Schedule, Task, TaskStatus


class TaskColumns:
    """Display methods of TaskAdmin (a mixin, to keep that module about behaviour)."""

    admin_site: admin.AdminSite

    # Columns of the changelist (and fields of the detail page).

    @admin.display(description=_("uuid"), ordering="uuid")
    def short_uuid(self, task: Task) -> SafeString:
        return format_html('<code title="{}">{}</code>', task.uuid, str(task.uuid)[:8])

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, task: Task) -> SafeString:
        return display.status_badge(task.status)

    @admin.display(description=_("tags"))
    def tag_list(self, task: Task) -> SafeString | str:
        return display.tag_chips(task.tags)

    @admin.display(description=_("duration"))
    def duration(self, task: Task) -> str:
        return display.format_duration(task.duration)

    @admin.display(description=_("attempts"), ordering="attempts")
    def attempts_count(self, task: Task) -> str:
        return f"{task.attempts}/{task.max_attempts}"

    @admin.display(description=_("args"))
    def args_pretty(self, task: Task) -> SafeString | str:
        return display.pretty_json(task.args)

    @admin.display(description=_("kwargs"))
    def kwargs_pretty(self, task: Task) -> SafeString | str:
        return display.pretty_json(task.kwargs)

    @admin.display(description=_("extra"))
    def extra_pretty(self, task: Task) -> SafeString | str:
        return display.pretty_json(task.extra)

    @admin.display(description=_("result or progress"))
    def result_pretty(self, task: Task) -> SafeString | str:
        download = reverse(f"{self.admin_site.name}:django_qtasks_task_result", args=[task.pk])
        preview = display.json_preview(task.returning, download)
        if task.status == TaskStatus.PROCESS and isinstance(task.returning, list):
            note = _("Progress so far: %(count)d items yielded.") % {"count": len(task.returning)}
            return format_html("<p>{}</p>{}", note, preview)
        return preview

    @admin.display(description=_("traceback"))
    def traceback_pretty(self, task: Task) -> SafeString | str:
        return display.preformatted(task.traceback)

    @admin.display(description=_("attempt log"))
    def attempt_history(self, task: Task) -> SafeString | str:
        return display.attempt_table(task.attempt_log)

    @admin.display(description=_("retry of"))
    def retry_of_link(self, task: Task) -> SafeString | str:
        if task.retry_of_id is None:
            return display.EMPTY
        return self._task_link(task.retry_of_id, task.retry_of_id)

    @admin.display(description=_("retried as"))
    def retries_links(self, task: Task) -> SafeString | str:
        retries = list(task.retries.order_by("created_at").values_list("uuid", "status"))
        if not retries:
            return display.EMPTY
        return format_html_join(
            ", ", "{} {}", ((self._task_link(pk, pk), display.status_badge(s)) for pk, s in retries)
        )

    @admin.display(description=_("schedule"))
    def schedule_link(self, task: Task) -> SafeString | str:
        if task.schedule_id is None:
            return display.EMPTY
        name = Schedule.objects.filter(pk=task.schedule_id).values_list("name", flat=True).first()
        site = self.admin_site.name
        tasks_url = reverse(f"{site}:django_qtasks_task_changelist")
        return format_html(
            '<a href="{}" class="qtasks-schedule-link">{}</a> '
            '<span class="qtasks-quiet">(<a href="{}?schedule__id__exact={}">{}</a>)</span>',
            reverse(f"{site}:django_qtasks_schedule_change", args=[task.schedule_id]),
            name or task.schedule_id,
            tasks_url,
            task.schedule_id,
            _("all its tasks"),
        )

    @admin.display(description=_("steps"))
    def chain_table(self, task: Task) -> SafeString | str:
        return display.chain_table(chain_of(task), task.pk, self._task_link)

    @admin.display(description=_("log lines"))
    def log_lines(self, task: Task) -> SafeString | str:
        return display.log_table(task.logs)

    def _task_link(self, pk: Any, label: Any) -> SafeString:
        url = reverse(
            f"{self.admin_site.name}:django_qtasks_task_change",
            args=[pk],
        )
        return format_html('<a href="{}">{}</a>', url, label)
