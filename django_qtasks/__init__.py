"""django-qtasks: background tasks for Django with the QTasks API."""

from django_qtasks.app import QTasksApp
from django_qtasks.chains import chain
from django_qtasks.registry import set_default_app
from django_qtasks.task import AsyncTask, SyncTask

__all__ = ["AsyncTask", "QTasksApp", "SyncTask", "app", "chain", "shared_task", "task"]

#: The project's application: its task registry, ``add_task`` and ``get``.
app = QTasksApp()
set_default_app(app)

#: ``@task`` and ``@shared_task`` register with ``app``, like ``@app.task``.
task = app.task
shared_task = app.task
