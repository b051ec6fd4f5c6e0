"""The Cancel and Retry buttons of one task's page."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views import View

from django_qtasks.admin import actions
from django_qtasks.conf import qtasks_settings
from django_qtasks.models import Task

if TYPE_CHECKING:
    from django_qtasks.admin.task_admin import TaskAdmin


class TaskView(View):
    model_admin: TaskAdmin | None = None
    permission = ""

    @property
    def admin(self) -> TaskAdmin:
        assert self.model_admin is not None
        return self.model_admin

    def get_task(self, request: HttpRequest, object_id: str) -> Task:
        task = self.admin.get_object(request, unquote(object_id))
        if task is None:
            raise Http404(_("No task with the uuid %(uuid)s.") % {"uuid": object_id})
        if not getattr(self.admin, f"has_{self.permission}_permission")(request, task):
            raise PermissionDenied
        return task

    def task_url(self, task: Task) -> str:
        opts = self.admin.opts
        return reverse(
            f"{self.admin.admin_site.name}:{opts.app_label}_{opts.model_name}_change",
            args=[task.pk],
        )


class CancelView(TaskView):
    """Ask for a reason, then cancel: a waiting task never starts, a running one stops."""

    permission = "cancel"

    def get(self, request: HttpRequest, object_id: str) -> HttpResponse:
        task = self.get_task(request, object_id)
        if task.is_finished:
            return self.already_ended(request, task)
        return self.render(request, task, actions.CancelForm())

    def post(self, request: HttpRequest, object_id: str) -> HttpResponse:
        task = self.get_task(request, object_id)
        form = actions.CancelForm(request.POST)
        if not form.is_valid():
            return self.render(request, task, form)
        queryset = Task.objects.filter(pk=task.pk)
        report = actions.cancel(self.admin, request, queryset, form.cleaned_data["reason"])
        self.admin.message_user(request, report.message(), report.level)
        return HttpResponseRedirect(self.task_url(task))

    def already_ended(self, request: HttpRequest, task: Task) -> HttpResponse:
        self.admin.message_user(
            request,
            _("This task could not be cancelled because it had already ended (%(status)s).")
            % {"status": task.get_status_display()},
            messages.WARNING,
        )
        return HttpResponseRedirect(self.task_url(task))

    def render(self, request: HttpRequest, task: Task, form: actions.CancelForm) -> HttpResponse:
        context: dict[str, Any] = {
            **self.admin.admin_site.each_context(request),
            "title": _("Cancel task %(name)s") % {"name": task.task_name},
            "opts": self.admin.opts,
            "task": task,
            "task_url": self.task_url(task),
            "form": form,
            "grace": qtasks_settings.CANCEL_GRACE,
            "media": self.admin.media,
        }
        return TemplateResponse(request, "admin/django_qtasks/task/cancel.html", context)


class ResultView(TaskView):
    """The whole stored result as a JSON download: the task page shows only its start."""

    permission = "view"

    def get(self, request: HttpRequest, object_id: str) -> HttpResponse:
        task = self.get_task(request, object_id)
        response = HttpResponse(json.dumps(task.returning), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{task.pk}-result.json"'
        return response


class RetryView(TaskView):
    """Enqueue an ended task again, as a new task linked to this one."""

    permission = "retry"
    http_method_names = ["post"]

    def post(self, request: HttpRequest, object_id: str) -> HttpResponse:
        task = self.get_task(request, object_id)
        report = actions.retry(self.admin, request, Task.objects.filter(pk=task.pk))
        self.admin.message_user(request, report.message(), report.level)
        target = report.created[0] if report.created else task
        return HttpResponseRedirect(self.task_url(target))
