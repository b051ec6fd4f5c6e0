import time

from django_qtasks import app


@app.task
def noop(x):
    return x


@app.task
def stamp():
    # First line: when the task started, compared with the client's clock.
    return time.time()


@app.task
def cpu(n):
    # W3: CPU-bound, holds the GIL throughout.
    return sum(range(n))


@app.task
def nap(seconds):
    # The pool's scenarios: a task that holds its slot without using the CPU.
    time.sleep(seconds)
