"""The ``django.tasks`` backend (Django 6.0+)::

    TASKS = {"default": {"BACKEND": "django_qtasks.backends.QTasksBackend"}}

Tasks written with ``from django.tasks import task`` then run on
``qtasks_worker``, and show in the admin and the API like any other task.
Nothing else in django_qtasks imports this package at import time, so the
rest of the app works on older Django versions.
"""

import django

if django.VERSION < (6, 0):
    raise ImportError(
        "django_qtasks.backends is a backend for django.tasks, which needs Django 6.0 or "
        f"later; this project runs Django {django.get_version()}. Remove it from TASKS, or "
        "use django-qtasks' own API (@app.task and add_task), which works on every version."
    )

from django_qtasks.backends.qtasks import QTasksBackend, QTasksTask

__all__ = ["QTasksBackend", "QTasksTask"]
