"""The Celery app of the two Celery systems (``celery -A benchproject.celery worker``)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproject.settings")

app = Celery("benchproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
