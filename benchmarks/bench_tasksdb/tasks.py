import time

from django.tasks import task


@task
def noop(x):
    return x


@task
def stamp():
    # First line: when the task started, compared with the client's clock.
    return time.time()
