"""The worker (``manage.py qtasks_worker``): ``worker.Worker`` and its parts.

Empty on purpose: ``worker.executor``, the documented extension point, is
also what the django.tasks backend runs tasks with, and importing it must not
load the whole worker.
"""
