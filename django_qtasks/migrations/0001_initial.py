"""The tables of tasks, schedules and worker heartbeats.

On PostgreSQL, a row trigger also announces ready tasks with NOTIFY, so that
idle workers wake at once: it sends the task's queue on the
``django_qtasks`` channel when a row becomes ``new`` (enqueued, or handed
back). PostgreSQL delivers it at commit, and folds identical notifications
of one transaction into one, so enqueueing costs no extra round trip. Other
databases are polled.
"""

import django.db.models.deletion
import django.utils.timezone
import uuid
from django.db import migrations, models


CREATE = """
CREATE OR REPLACE FUNCTION django_qtasks_notify_ready() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('django_qtasks', NEW.queue);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER django_qtasks_task_ready
AFTER INSERT OR UPDATE OF status ON django_qtasks_task
FOR EACH ROW WHEN (NEW.status = 'new')
EXECUTE FUNCTION django_qtasks_notify_ready();
"""

DROP = """
DROP TRIGGER IF EXISTS django_qtasks_task_ready ON django_qtasks_task;
DROP FUNCTION IF EXISTS django_qtasks_notify_ready();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Schedule",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=200, unique=True, verbose_name="name")),
                ("task_name", models.CharField(max_length=200, verbose_name="task name")),
                (
                    "cron",
                    models.CharField(
                        blank=True,
                        help_text="Five fields: minute hour day-of-month month day-of-week, in the project's time zone. Example: */5 * * * * (every five minutes).",
                        max_length=200,
                        verbose_name="cron expression",
                    ),
                ),
                (
                    "interval",
                    models.DurationField(
                        blank=True,
                        help_text="Instead of a cron expression: run every so long, e.g. 00:05:00.",
                        null=True,
                        verbose_name="interval",
                    ),
                ),
                ("args", models.JSONField(blank=True, default=list, verbose_name="args")),
                ("kwargs", models.JSONField(blank=True, default=dict, verbose_name="kwargs")),
                (
                    "queue",
                    models.CharField(
                        blank=True,
                        help_text="Empty: the task's own queue.",
                        max_length=100,
                        verbose_name="queue",
                    ),
                ),
                (
                    "priority",
                    models.IntegerField(
                        blank=True,
                        help_text="Empty: the task's own priority.",
                        null=True,
                        verbose_name="priority",
                    ),
                ),
                ("enabled", models.BooleanField(default=True, verbose_name="enabled")),
                (
                    "one_off",
                    models.BooleanField(
                        default=False,
                        help_text="Run once, at the next due time, then disable.",
                        verbose_name="one-off",
                    ),
                ),
                (
                    "expires_at",
                    models.DateTimeField(
                        blank=True,
                        help_text="No run is enqueued after this.",
                        null=True,
                        verbose_name="expires at",
                    ),
                ),
                (
                    "next_run_at",
                    models.DateTimeField(
                        blank=True, db_index=True, null=True, verbose_name="next run at"
                    ),
                ),
                (
                    "last_run_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="last run at"),
                ),
                ("run_count", models.PositiveIntegerField(default=0, verbose_name="runs")),
                (
                    "source",
                    models.CharField(
                        choices=[
                            ("admin", "admin"),
                            ("code", "code (@app.task(schedule=...))"),
                            ("settings", "settings (QTASKS['SCHEDULES'])"),
                        ],
                        default="admin",
                        max_length=10,
                        verbose_name="declared in",
                    ),
                ),
                ("description", models.TextField(blank=True, verbose_name="description")),
                (
                    "created_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, verbose_name="created at"
                    ),
                ),
                ("updated_at", models.DateTimeField(auto_now=True, verbose_name="updated at")),
            ],
            options={
                "verbose_name": "schedule",
                "verbose_name_plural": "schedules",
                "ordering": ["name"],
                "permissions": [("run_schedule", "Can run schedules now")],
            },
        ),
        migrations.CreateModel(
            name="WorkerHeartbeat",
            fields=[
                (
                    "worker_id",
                    models.CharField(
                        max_length=200, primary_key=True, serialize=False, verbose_name="worker"
                    ),
                ),
                ("hostname", models.CharField(max_length=200, verbose_name="hostname")),
                ("pid", models.PositiveIntegerField(verbose_name="pid")),
                ("queues", models.JSONField(default=list, verbose_name="queues")),
                ("concurrency", models.PositiveIntegerField(verbose_name="concurrency")),
                (
                    "running",
                    models.JSONField(blank=True, default=list, verbose_name="running tasks"),
                ),
                (
                    "started_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, verbose_name="started at"
                    ),
                ),
                (
                    "last_heartbeat",
                    models.DateTimeField(
                        db_index=True,
                        default=django.utils.timezone.now,
                        verbose_name="last heartbeat",
                    ),
                ),
            ],
            options={
                "verbose_name": "worker",
                "verbose_name_plural": "workers",
                "ordering": ["worker_id"],
            },
        ),
        migrations.CreateModel(
            name="Task",
            fields=[
                (
                    "uuid",
                    models.UUIDField(
                        default=uuid.uuid4,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                        verbose_name="uuid",
                    ),
                ),
                ("task_name", models.CharField(max_length=200, verbose_name="task name")),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("new", "new"),
                            ("process", "process"),
                            ("success", "success"),
                            ("error", "error"),
                            ("cancel", "cancel"),
                            ("retry", "retry"),
                        ],
                        default="new",
                        max_length=10,
                        verbose_name="status",
                    ),
                ),
                (
                    "priority",
                    models.IntegerField(
                        default=0, help_text="Lower runs first.", verbose_name="priority"
                    ),
                ),
                (
                    "queue",
                    models.CharField(default="default", max_length=100, verbose_name="queue"),
                ),
                ("args", models.JSONField(blank=True, default=list, verbose_name="args")),
                ("kwargs", models.JSONField(blank=True, default=dict, verbose_name="kwargs")),
                ("extra", models.JSONField(blank=True, default=dict, verbose_name="extra")),
                ("tags", models.JSONField(blank=True, default=list, verbose_name="tags")),
                ("returning", models.JSONField(blank=True, null=True, verbose_name="result")),
                ("traceback", models.TextField(blank=True, verbose_name="traceback")),
                ("logs", models.JSONField(blank=True, default=list, verbose_name="log lines")),
                ("cancel_reason", models.TextField(blank=True, verbose_name="cancel reason")),
                (
                    "canceled_by",
                    models.CharField(blank=True, max_length=200, verbose_name="canceled by"),
                ),
                (
                    "cancel_requested_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="cancel requested at"),
                ),
                ("attempts", models.PositiveIntegerField(default=0, verbose_name="attempts")),
                (
                    "max_attempts",
                    models.PositiveIntegerField(default=1, verbose_name="max attempts"),
                ),
                (
                    "attempt_log",
                    models.JSONField(blank=True, default=list, verbose_name="attempt log"),
                ),
                (
                    "worker",
                    models.CharField(
                        blank=True, db_index=True, max_length=200, verbose_name="worker"
                    ),
                ),
                (
                    "chain_steps",
                    models.JSONField(blank=True, default=list, verbose_name="next chain steps"),
                ),
                (
                    "created_at",
                    models.DateTimeField(
                        db_index=True, default=django.utils.timezone.now, verbose_name="created at"
                    ),
                ),
                ("updated_at", models.DateTimeField(auto_now=True, verbose_name="updated at")),
                (
                    "run_after",
                    models.DateTimeField(blank=True, null=True, verbose_name="run after"),
                ),
                (
                    "published_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="published at"),
                ),
                (
                    "started_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="started at"),
                ),
                (
                    "finished_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="finished at"),
                ),
                (
                    "chain_previous",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="chain_next",
                        to="django_qtasks.task",
                        verbose_name="previous in chain",
                    ),
                ),
                (
                    "retry_of",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="retries",
                        to="django_qtasks.task",
                        verbose_name="retry of",
                    ),
                ),
                (
                    "schedule",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="tasks",
                        to="django_qtasks.schedule",
                        verbose_name="schedule",
                    ),
                ),
            ],
            options={
                "verbose_name": "task",
                "verbose_name_plural": "tasks",
                "ordering": ["-created_at"],
                "permissions": [
                    ("cancel_task", "Can cancel tasks"),
                    ("retry_task", "Can retry tasks"),
                ],
            },
        ),
        migrations.AddField(
            model_name="schedule",
            name="last_task",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="django_qtasks.task",
                verbose_name="last task",
            ),
        ),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(
                condition=models.Q(("status__in", ["new", "retry"])),
                fields=["queue", "priority", "created_at"],
                name="qtasks_waiting_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(fields=["status", "-created_at"], name="qtasks_status_created_idx"),
        ),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(fields=["task_name", "-created_at"], name="qtasks_name_created_idx"),
        ),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(fields=["finished_at"], name="qtasks_finished_idx"),
        ),
        migrations.RunPython(create_trigger, drop_trigger, elidable=False),
    ]
