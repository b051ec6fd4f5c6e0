"""On PostgreSQL, announce ready tasks with NOTIFY so that idle workers wake at once.

A row trigger sends the task's queue on the ``django_qtasks`` channel when a
row becomes ``new`` (enqueued, or handed back). PostgreSQL delivers it at
commit, and folds identical notifications of one transaction into one, so
enqueueing costs no extra round trip. Other databases are polled.
"""

from django.db import migrations

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
    dependencies = [("django_qtasks", "0002_schedules_and_chains")]

    operations = [migrations.RunPython(create_trigger, drop_trigger, elidable=False)]
