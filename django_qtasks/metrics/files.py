"""Where a worker's counters live: prometheus_client's multiprocess files, a directory a run.

Every process of a worker (a lone worker; a pool's supervisor and each of
its children) writes its counters and histograms to memory-mapped files of
its own in the run's directory (``counter_<pid>.db``, ``histogram_<pid>.db``:
prometheus_client's multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``). A
scrape merges the files of the directory, so that the counts of every
process add up, those of children that exited or were replaced included.

- Without ``QTASKS["METRICS_DIR"]``, the directory is a new temporary one,
  removed when the worker stops.
- With it, a directory under it named after the worker (its id, quoted),
  with the permissions of ``METRICS_DIR``, which the worker holds locked
  (``flock``) for its life, its children included. A worker that starts
  removes those that no process holds any more (a worker killed with
  SIGKILL); the Django view reads all of them, each with a ``worker`` label.

Either way a run starts with an empty directory, as prometheus_client's
documentation requires: nothing of an earlier run is counted again.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote

from prometheus_client import values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.samples import Sample

logger = logging.getLogger("django_qtasks.metrics")

ENV = "PROMETHEUS_MULTIPROC_DIR"
#: In each worker's directory under METRICS_DIR: held locked by the worker's processes.
LOCK = "lock"
#: A directory being made (its lock not yet taken): neither removed nor read.
STARTING = ".starting-"


def record_in(path: str) -> None:
    """Have this process, and the children it forks from now on, record metrics in ``path``."""
    os.environ[ENV] = path
    # prometheus_client picks its value class when it is imported, which may
    # have been before this (another app's metrics): metrics made from now on
    # get one of their own, file-backed, as prometheus_client's own tests do.
    values.ValueClass = values.MultiProcessValue()


class RunDirectory:
    """The directory of one run of a worker (or a pool): its processes' files."""

    def __init__(self, path: str, lock: int | None) -> None:
        self.path = path
        #: The file descriptor that holds the lock (None: a temporary directory).
        self.lock = lock

    @classmethod
    def create(cls, worker_id: str, root: str | None) -> RunDirectory:
        """A new, empty directory: temporary, or under ``root`` (``QTASKS["METRICS_DIR"]``).

        Raises OSError when the directory cannot be made, FileExistsError when a
        live worker of this id holds it.
        """
        if root is None:
            return cls(tempfile.mkdtemp(prefix="qtasks-metrics-"), None)
        os.makedirs(root, exist_ok=True)
        remove_stale(root)
        starting = tempfile.mkdtemp(prefix=STARTING, dir=root)
        lock = None
        path = os.path.join(root, quote(worker_id, safe=""))
        try:
            # Readable as METRICS_DIR is (mkdtemp makes it private): the web
            # processes that serve the view may run as another user.
            os.chmod(starting, os.stat(root).st_mode & 0o777)
            lock = os.open(os.path.join(starting, LOCK), os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(starting, path)  # locked before anyone sees it
        except OSError as exc:
            if lock is not None:
                os.close(lock)
            shutil.rmtree(starting, ignore_errors=True)
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise FileExistsError(
                    exc.errno,
                    f"{path} is held by a live worker of the same id ({worker_id}); "
                    "two live workers must not share a --worker-id",
                ) from None
            raise
        return cls(path, lock)

    @classmethod
    def adopt(cls, state: dict[str, Any]) -> RunDirectory:
        """The directory of the image this process replaced (a pool's restart, ``exec``)."""
        lock = state.get("lock")
        if lock is not None:
            os.set_inheritable(lock, False)
        return cls(str(state["path"]), lock)

    def state(self) -> dict[str, Any]:
        """What ``adopt`` needs; the lock is kept open across the ``exec`` that follows."""
        if self.lock is not None:
            os.set_inheritable(self.lock, True)
        return {"path": self.path, "lock": self.lock}

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self.lock is not None:
            with contextlib.suppress(OSError):
                os.close(self.lock)
            self.lock = None


def remove_stale(root: str) -> None:
    """Remove the directories under ``root`` that no live process holds."""
    for entry in os.scandir(root):
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            lock = os.open(os.path.join(entry.path, LOCK), os.O_RDWR)
        except OSError:
            continue  # not a worker's
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pass  # held: its worker runs
        else:
            logger.info("Removing the metrics of a worker that is gone: %s", entry.path)
            shutil.rmtree(entry.path, ignore_errors=True)
        finally:
            os.close(lock)


class WorkersCollector:
    """The counters of every worker under ``root`` (``METRICS_DIR``), each with a ``worker`` label.

    For the Django view, in a process of the same host. Each worker's files
    are merged apart: a worker that stops ends its series, where one sum of
    every worker would drop and read as a counter reset.
    """

    def __init__(self, root: str) -> None:
        self.root = root

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        try:
            entries = sorted(os.scandir(self.root), key=lambda entry: entry.name)
        except FileNotFoundError:
            return []
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            worker = unquote(entry.name)
            try:
                merged = MultiProcessCollector.merge(glob.glob(os.path.join(entry.path, "*.db")))
            except FileNotFoundError:
                continue  # its worker stopped meanwhile and removed it
            except OSError as exc:
                logger.warning("Metrics: cannot read those of worker %s: %s", worker, exc)
                continue
            for metric in merged:
                samples = [
                    Sample(s.name, {**s.labels, "worker": worker}, s.value, s.timestamp, s.exemplar)
                    for s in metric.samples
                ]
                family = families.setdefault(metric.name, metric)
                if family is metric:
                    metric.samples = samples
                else:
                    family.samples.extend(samples)
        return list(families.values())
