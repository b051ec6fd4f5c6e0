"""Cancel and retry, for selected tasks and for one task, with counted feedback.

The admin only gathers the input; ``Task.cancel`` and ``Task.retry`` make the
changes, each one a guarded update. Every action says what it did and what
it could not do, and records each change in the object's admin history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from django_qtasks.models import (
    CANCEL_REASON_MAX_LENGTH,
    FINAL_STATUSES,
    Task,
    TaskStatus,
    task_db,
)

if TYPE_CHECKING:
    from django_qtasks.admin.task_admin import TaskAdmin


class CancelForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Reason"),
        max_length=CANCEL_REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=gettext_lazy(
            "Kept with the task, with your name, and written to the worker's log."
        ),
    )


@dataclass
class CancelReport:
    cancelled: int = 0  # waiting tasks: ended at once, they never start
    stopping: int = 0  # running tasks: asked to stop, their worker ends them
    ended: int = 0  # already finished: nothing to cancel

    def message(self) -> str:
        parts = []
        if self.cancelled:
            parts.append(
                ngettext(
                    "Cancelled %(count)d waiting task",
                    "Cancelled %(count)d waiting tasks",
                    self.cancelled,
                )
                % {"count": self.cancelled}
            )
        if self.stopping:
            parts.append(
                ngettext(
                    "asked %(count)d running task to stop (it ends as cancel at its next await "
                    "or checkpoint)",
                    "asked %(count)d running tasks to stop (they end as cancel at their next "
                    "await or checkpoint)",
                    self.stopping,
                )
                % {"count": self.stopping}
            )
        if self.ended:
            parts.append(
                ngettext(
                    "%(count)d task could not be cancelled because it had already ended",
                    "%(count)d tasks could not be cancelled because they had already ended",
                    self.ended,
                )
                % {"count": self.ended}
            )
        text = "; ".join(parts) or _("No task was selected")
        return text[0].upper() + text[1:] + "."

    @property
    def level(self) -> int:
        if not self.ended:
            return messages.SUCCESS
        return messages.WARNING if self.cancelled or self.stopping else messages.ERROR


def cancel(
    model_admin: TaskAdmin, request: HttpRequest, queryset: QuerySet[Task], reason: str
) -> CancelReport:
    report = CancelReport()
    by = request.user.get_username()
    # Counted and decided where the cancels are written: a replica may lag.
    queryset = queryset.using(task_db())
    selected = queryset.count()
    waiting = list(queryset.exclude(status__in=FINAL_STATUSES).only("uuid", "task_name", "status"))
    for task in waiting:
        # What each cancel did: a worker may end a running one before it is read again.
        outcome = task.cancel_with_outcome(reason, by=by)
        if outcome is not None:
            if outcome == "ended":
                report.cancelled += 1
            else:
                report.stopping += 1
            model_admin.log_change(request, task, _("Cancelled: %(reason)s") % {"reason": reason})
    report.ended = selected - report.cancelled - report.stopping
    return report


@dataclass
class RetryReport:
    created: list[Task] = field(default_factory=list)
    not_ended: int = 0

    def message(self) -> str:
        parts = []
        if self.created:
            count = len(self.created)
            parts.append(
                ngettext(
                    "Retried %(count)d task as a new task",
                    "Retried %(count)d tasks as new tasks",
                    count,
                )
                % {"count": count}
            )
        if self.not_ended:
            parts.append(
                ngettext(
                    "%(count)d task could not be retried because it has not ended yet",
                    "%(count)d tasks could not be retried because they have not ended yet",
                    self.not_ended,
                )
                % {"count": self.not_ended}
            )
        text = "; ".join(parts) or _("No task was selected")
        return text[0].upper() + text[1:] + "."

    @property
    def level(self) -> int:
        if not self.not_ended:
            return messages.SUCCESS
        return messages.WARNING if self.created else messages.ERROR


def retry(model_admin: TaskAdmin, request: HttpRequest, queryset: QuerySet[Task]) -> RetryReport:
    report = RetryReport()
    queryset = queryset.using(task_db())
    selected = queryset.count()
    for task in list(queryset.filter(status__in=FINAL_STATUSES).defer(None)):
        copy = task.retry()
        if copy is not None:
            report.created.append(copy)
            model_admin.log_change(
                request, task, _("Retried as task %(uuid)s") % {"uuid": copy.uuid}
            )
    report.not_ended = selected - len(report.created)
    return report


@admin.action(description=gettext_lazy("Cancel selected tasks"), permissions=["cancel"])
def cancel_selected(
    model_admin: TaskAdmin, request: HttpRequest, queryset: QuerySet[Task]
) -> TemplateResponse | None:
    """Ask for a reason on a confirmation page, then cancel."""
    form = CancelForm(request.POST if request.POST.get("post") else None)
    if form.is_valid():
        report = cancel(model_admin, request, queryset, form.cleaned_data["reason"])
        model_admin.message_user(request, report.message(), report.level)
        return None  # back to the changelist
    opts = model_admin.model._meta
    select_across = request.POST.get("select_across") == "1"
    context: dict[str, Any] = {
        **model_admin.admin_site.each_context(request),
        "title": _("Cancel tasks"),
        "opts": opts,
        "form": form,
        "selected": queryset.count(),
        "active": queryset.exclude(status__in=FINAL_STATUSES).count(),
        "pks": [] if select_across else request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "select_across": select_across,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": model_admin.media,
    }
    return TemplateResponse(
        request, "admin/django_qtasks/task/cancel_selected_confirmation.html", context
    )


@admin.action(
    description=gettext_lazy("Retry selected tasks (as new tasks)"), permissions=["retry"]
)
def retry_selected(model_admin: TaskAdmin, request: HttpRequest, queryset: QuerySet[Task]) -> None:
    report = retry(model_admin, request, queryset)
    model_admin.message_user(request, report.message(), report.level)


def running_not_deleted(count: int) -> str:
    return ngettext(
        "%(count)d running task was not deleted: cancel it first, and delete it once it has ended.",
        "%(count)d running tasks were not deleted: cancel them first, and delete them once "
        "they have ended.",
        count,
    ) % {"count": count}


@admin.action(
    description=gettext_lazy("Delete selected %(verbose_name_plural)s"), permissions=["delete"]
)
def delete_selected(
    model_admin: TaskAdmin, request: HttpRequest, queryset: QuerySet[Task]
) -> HttpResponse | None:
    """Django's delete action, for the tasks that are not running.

    Deleting a running task's row would not stop it: it would run on and
    report to a row that is gone.
    """
    running = queryset.filter(status=TaskStatus.PROCESS).count()
    if running:
        model_admin.message_user(request, running_not_deleted(running), messages.ERROR)
    rest = queryset.exclude(status=TaskStatus.PROCESS)
    if not rest.exists():
        return None
    response: HttpResponse | None = django_delete_selected(model_admin, request, rest)
    return response
