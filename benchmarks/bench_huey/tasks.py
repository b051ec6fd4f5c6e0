import time

from huey.contrib.djhuey import task


@task()
def noop(x):
    return x


@task()
def stamp():
    # First line: when the task started, compared with the client's clock.
    return time.time()


@task()
def cpu(n):
    # W3: CPU-bound, holds the GIL throughout.
    return sum(range(n))
