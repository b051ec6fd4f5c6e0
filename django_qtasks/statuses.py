"""A task's statuses, and which of them wait or have ended."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class TaskStatus(models.TextChoices):
    NEW = "new", _("new")
    PROCESS = "process", _("process")
    SUCCESS = "success", _("success")
    ERROR = "error", _("error")
    CANCEL = "cancel", _("cancel")
    RETRY = "retry", _("retry")


#: Waiting to run: claimable by a worker once ``run_after`` has passed.
READY_STATUSES = (TaskStatus.NEW, TaskStatus.RETRY)
#: A task in one of these has ended and never changes again.
FINAL_STATUSES = (TaskStatus.SUCCESS, TaskStatus.ERROR, TaskStatus.CANCEL)
