import time


def noop(x):
    return x


def stamp():
    # First line: when the task started, compared with the client's clock.
    return time.time()
