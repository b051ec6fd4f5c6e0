import time

from celery import shared_task


@shared_task
def noop(x):
    return x


@shared_task
def stamp():
    # First line: when the task started, compared with the client's clock.
    return time.time()


@shared_task
def cpu(n):
    # W3: CPU-bound, holds the GIL throughout.
    return sum(range(n))
