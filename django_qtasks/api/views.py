"""Tasks: list, read, enqueue, cancel, retry. Each view parses the request
and calls the core (``app.enqueue``, ``Task.cancel``, ``Task.retry``)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.viewsets import GenericViewSet

from django_qtasks import app
from django_qtasks.api.base import QTasksAPIView, document, errors
from django_qtasks.api.exceptions import Conflict
from django_qtasks.api.filters import TaskFilterSerializer, filter_tasks
from django_qtasks.api.pagination import TaskCursorPagination
from django_qtasks.api.permissions import CanAddTask, CanCancelTask, CanRetryTask
from django_qtasks.api.serializers import (
    HEAVY_FIELDS,
    CancelSerializer,
    TaskCreateSerializer,
    TaskListSerializer,
    TaskSerializer,
)
from django_qtasks.exceptions import TaskArgumentsError, TaskSignatureError
from django_qtasks.models import Task, TaskStatus


@extend_schema_view(
    list=document(
        summary="List tasks, newest first",
        parameters=[TaskFilterSerializer],
        responses={200: TaskListSerializer(many=True), **errors(400)},
    ),
    retrieve=document(
        summary="One task, with its traceback and log",
        responses={200: TaskSerializer, **errors(404)},
    ),
)
class TaskViewSet(
    QTasksAPIView,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    GenericViewSet[Task],
):
    queryset = Task.objects.all()
    serializer_class = TaskSerializer
    pagination_class = TaskCursorPagination
    lookup_url_kwarg = "uuid"
    lookup_value_regex = "[^/]+"  # any text: a non-uuid gets the JSON 404 too
    action_permissions = {"create": CanAddTask, "cancel": CanCancelTask, "retry": CanRetryTask}

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        check_list_parameters(request, self.paginator)
        return super().list(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Task]:
        if self.action == "list":
            return filter_tasks(Task.objects.defer(*HEAVY_FIELDS), self.request.query_params)
        return Task.objects.all()

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        return TaskListSerializer if self.action == "list" else TaskSerializer

    def get_object(self) -> Task:
        raw = self.kwargs[self.lookup_url_kwarg]
        task = app.get(raw)
        if task is None:
            raise NotFound(f"No task with uuid {raw!r}.")
        self.check_object_permissions(self.request, task)
        return task

    @document(
        summary="Enqueue a registered task",
        request=TaskCreateSerializer,
        responses={201: TaskSerializer, **errors(400, 413, 415)},
    )
    def create(self, request: Request) -> Response:
        body = TaskCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            task = app.enqueue(
                app.get_task(data["task_name"]),
                data["args"],
                data["kwargs"],
                priority=data.get("priority"),
                queue=data.get("queue"),
                delay=data.get("delay"),
                eta=data.get("eta"),
            )
        except TaskSignatureError as exc:
            # Arguments that do not fit the task's function, under the field they are in.
            raise ValidationError({exc.field: [str(exc)]}) from exc
        except (TaskArgumentsError, ValueError) as exc:
            # Input the serializer let through but the core refuses (e.g. text the
            # database cannot store): the caller's mistake, and nothing was written.
            raise ValidationError({"non_field_errors": [str(exc)]}) from exc
        return self.created(task)

    @document(
        summary="Cancel a task",
        operation_id="tasks_cancel",
        description="A waiting task ends at once (200, status cancel). A running one is asked "
        "to stop (202); its worker ends it as cancel. Needs django_qtasks.cancel_task.",
        request=CancelSerializer,
        responses={
            200: TaskSerializer,
            202: TaskSerializer,
            **errors(400, 404, 409, 413, 415),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, uuid: str) -> Response:
        task = self.get_object()
        body = CancelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if not task.cancel(body.validated_data["reason"], by=request.user.get_username()):
            raise Conflict(
                f"Task {task.uuid} has already ended (status {task.status!r}): there is "
                "nothing to cancel."
            )
        code = status.HTTP_200_OK if task.status == TaskStatus.CANCEL else status.HTTP_202_ACCEPTED
        return Response(TaskSerializer(task).data, status=code)

    @document(
        summary="Run an ended task again, as a new task",
        operation_id="tasks_retry",
        description="The new task copies name, arguments and options, and its retry_of is "
        "this task. Needs django_qtasks.retry_task.",
        request=None,
        responses={201: TaskSerializer, **errors(404, 409)},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, uuid: str) -> Response:
        task = self.get_object()
        copy = task.retry()
        if copy is None:
            raise Conflict(
                f"Task {task.uuid} has not ended (status {task.status!r}): only a task in "
                "success, error or cancel can be retried."
            )
        return self.created(copy)

    def created(self, task: Task) -> Response:
        location = self.reverse_action("detail", kwargs={self.lookup_url_kwarg: str(task.uuid)})
        return Response(
            TaskSerializer(task).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": location},
        )


def check_list_parameters(request: Request, paginator: Any) -> None:
    """Raise one ValidationError (400) that names every bad query parameter of the list."""
    found: dict[str, Any] = {}
    checks = (
        lambda: filter_tasks(Task.objects.none(), request.query_params),
        lambda: paginator.get_page_size(request),
        lambda: paginator.decode_cursor(request),
    )
    for check in checks:
        try:
            check()
        except ValidationError as exc:
            found.update(exc.detail if isinstance(exc.detail, dict) else {})
    if found:
        raise ValidationError(found)
