"""Read-only views of the system: the task registry, live workers, counts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from django_qtasks import app
from django_qtasks.api.base import QTasksAPIView, document, errors
from django_qtasks.conf import qtasks_settings
from django_qtasks.costs import MAX_NAMES, WINDOWS, task_costs
from django_qtasks.models import Task, TaskStatus, WorkerHeartbeat
from django_qtasks.task import BaseTask


class RegisteredTaskSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(source="task_name")
    description = serializers.CharField(allow_null=True)
    priority = serializers.IntegerField()
    queue = serializers.SerializerMethodField(help_text="The queue its runs go to by default.")
    tags = serializers.ListField(child=serializers.CharField())
    retry = serializers.IntegerField(help_text="Attempts after the first one.")
    retry_on_exc = serializers.SerializerMethodField(help_text="Exceptions that are retried.")
    max_time = serializers.FloatField(allow_null=True, help_text="Time limit in seconds.")
    echo = serializers.BooleanField(help_text="Receives the task handle as `self`.")
    is_async = serializers.BooleanField()
    is_generator = serializers.BooleanField()
    extra = serializers.DictField(help_text="The decorator's other keywords.")

    def get_queue(self, handle: BaseTask) -> str:
        return handle.queue or str(qtasks_settings.DEFAULT_QUEUE)

    def get_retry_on_exc(self, handle: BaseTask) -> list[str]:
        return [
            exc.__qualname__
            if exc.__module__ == "builtins"
            else f"{exc.__module__}.{exc.__qualname__}"
            for exc in handle.retry_on_exc
        ]


class RunningTaskSerializer(serializers.Serializer[Any]):
    uuid = serializers.UUIDField()
    task_name = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)


class WorkerSerializer(serializers.ModelSerializer[WorkerHeartbeat]):
    running = serializers.SerializerMethodField()

    class Meta:
        model = WorkerHeartbeat
        fields = ["worker_id", "supervisor", "hostname", "pid", "queues", "concurrency"]
        fields += ["started_at"]
        fields += ["last_heartbeat", "running"]
        read_only_fields = fields

    @extend_schema_field(RunningTaskSerializer(many=True))
    def get_running(self, worker: WorkerHeartbeat) -> list[dict[str, Any]]:
        tasks = self.context["running"]
        return [tasks[uuid] for uuid in worker.running_uuids() if uuid in tasks]


StatusCountsSerializer = type(
    "StatusCountsSerializer",
    (serializers.Serializer,),
    {status.value: serializers.IntegerField() for status in TaskStatus},
)


class StatsSerializer(serializers.Serializer[Any]):
    by_status = StatusCountsSerializer(help_text="Tasks in each status, zeros included.")
    total = serializers.IntegerField()
    queue_depth = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Waiting tasks (new or retry, delayed ones included) per queue.",
    )
    workers = serializers.IntegerField(help_text="Live workers.")


class TaskCostSerializer(serializers.Serializer[Any]):
    task_name = serializers.CharField()
    runs = serializers.IntegerField(help_text="Tasks of this name that ended in the window.")
    failed = serializers.IntegerField(help_text="Of those, the ones that ended in error.")
    failure_rate = serializers.FloatField(help_text="failed / runs, from 0 to 1.")
    retries = serializers.IntegerField(help_text="Attempts beyond the first, over those tasks.")
    run_time_p50 = serializers.FloatField(
        allow_null=True, help_text="Median run time in seconds (a task's attempts summed)."
    )
    run_time_p95 = serializers.FloatField(
        allow_null=True, help_text="95th percentile of the run time, in seconds."
    )
    run_time_total = serializers.FloatField(help_text="Run time of all those tasks, in seconds.")
    cpu_time_total = serializers.FloatField(help_text="CPU time of all those tasks, in seconds.")
    cpu_time_mean = serializers.FloatField(
        allow_null=True, help_text="CPU time per task, in seconds."
    )


class CostsQuerySerializer(serializers.Serializer[Any]):
    period = serializers.ChoiceField(
        choices=list(WINDOWS), default="24h", help_text="The window: tasks that ended in it."
    )


def live_workers() -> Any:
    cutoff = timezone.now() - timedelta(seconds=qtasks_settings.HEARTBEAT_TIMEOUT)
    return WorkerHeartbeat.objects.filter(last_heartbeat__gte=cutoff)


class RegistryView(QTasksAPIView):
    @document(
        summary="The registered tasks and their options",
        responses={200: RegisteredTaskSerializer(many=True), **errors()},
    )
    def get(self, request: Request) -> Response:
        handles = [app.tasks[name] for name in sorted(app.tasks)]
        return Response(RegisteredTaskSerializer(handles, many=True).data)


class WorkerListView(QTasksAPIView):
    view_model = "workerheartbeat"
    view_what = "workers"

    @document(
        summary="Live workers (heartbeat within HEARTBEAT_TIMEOUT) and what they run",
        responses={200: WorkerSerializer(many=True), **errors()},
    )
    def get(self, request: Request) -> Response:
        workers = list(live_workers())
        uuids = {uuid for worker in workers for uuid in worker.running_uuids()}
        rows = Task.objects.filter(pk__in=uuids).values("uuid", "task_name", "started_at")
        running = {str(row["uuid"]): row for row in rows}
        serializer = WorkerSerializer(workers, many=True, context={"running": running})
        return Response(serializer.data)


class StatsView(QTasksAPIView):
    @document(
        summary="Task counts by status, and queue depth",
        responses={200: StatsSerializer, **errors()},
    )
    def get(self, request: Request) -> Response:
        counts = dict(Task.objects.order_by().values_list("status").annotate(count=Count("uuid")))
        depth = dict(
            Task.objects.ready().order_by().values_list("queue").annotate(count=Count("uuid"))
        )
        stats = {
            "by_status": {status.value: counts.get(status.value, 0) for status in TaskStatus},
            "total": sum(counts.values()),
            "queue_depth": dict(sorted(depth.items())),
            "workers": live_workers().count(),
        }
        return Response(StatsSerializer(stats).data)


class CostsView(QTasksAPIView):
    @document(
        summary=f"What each task cost over a window: the {MAX_NAMES} costliest task names",
        parameters=[CostsQuerySerializer],
        responses={200: TaskCostSerializer(many=True), **errors(400)},
    )
    def get(self, request: Request) -> Response:
        # A dict, not the QueryDict: "?period=" is then refused, not the default.
        params = request.query_params
        query = CostsQuerySerializer(data={key: params.get(key) for key in params})
        query.is_valid(raise_exception=True)
        since = timezone.now() - WINDOWS[query.validated_data["period"]]
        costs = [cost.as_dict() for cost in task_costs(since)]
        return Response(TaskCostSerializer(costs, many=True).data)
