"""Who may use the API, and how often.

Every endpoint checks the permission classes of
``QTASKS['API_PERMISSION_CLASSES']``. The default lets in staff users (DRF's
``IsAdminUser``) who hold the view permission that the admin asks for the
same data (:class:`CanView`). Actions that change tasks also need the model
permission that guards the same change elsewhere: ``django_qtasks.add_task``
to enqueue, and the admin actions' ``django_qtasks.cancel_task`` and
``django_qtasks.retry_task`` to cancel and retry.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView


class HasModelPermission(BasePermission):
    """The user holds the Django permission ``django_qtasks.<codename>``."""

    codename = ""
    doing = ""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return bool(request.user and request.user.has_perm(f"django_qtasks.{self.codename}"))

    @property
    def message(self) -> str:
        return f"You need the permission django_qtasks.{self.codename} to {self.doing}."


class CanAddTask(HasModelPermission):
    codename = "add_task"
    doing = "enqueue tasks"


class CanCancelTask(HasModelPermission):
    codename = "cancel_task"
    doing = "cancel tasks"


class CanRetryTask(HasModelPermission):
    codename = "retry_task"
    doing = "retry tasks"


class CanView(BasePermission):
    """Reads need the view permission of the model they show, as in the admin.

    A view names its model in ``view_model`` ("task", "workerheartbeat") and
    what it shows in ``view_what``; as in the admin, the change permission
    includes the view one. Writes are left to the permission of each action.
    """

    def has_permission(self, request: Request, view: APIView) -> bool:
        model = getattr(view, "view_model", "")
        if request.method in SAFE_METHODS and model:
            self.message = (
                f"You need the permission django_qtasks.view_{model} to read "
                f"{getattr(view, 'view_what', model)}."
            )
            user = request.user
            return bool(
                user
                and (
                    user.has_perm(f"django_qtasks.view_{model}")
                    or user.has_perm(f"django_qtasks.change_{model}")
                )
            )
        return True
