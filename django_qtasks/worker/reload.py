"""Restarting a pool on new code: ``--reload`` (files changed) and SIGHUP (a deploy).

The supervisor first checks that the new code loads, in a fresh process:
code that does not import leaves the running children as they are, with the
error in the log. Then it replaces itself (``exec``) with the same command,
keeping its pid and its children, which the new image replaces one by one.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from django.utils import autoreload

logger = logging.getLogger("django_qtasks.worker")

#: Carries the pool (its id and children) across the supervisor's ``exec``.
STATE_ENV = "QTASKS_SUPERVISOR_STATE"
#: Set for the process that only checks that the code loads.
CHECK_ENV = "QTASKS_WORKER_CHECK_ONLY"
#: How long that check may take before it counts as failed.
CHECK_TIMEOUT = 120.0


class CodeWatch:
    """The Python files loaded in this process, and whether they changed since the last look."""

    def __init__(self) -> None:
        self.mtimes = self.snapshot()

    def snapshot(self) -> dict[Path, float]:
        mtimes = {}
        for path in autoreload.iter_all_python_module_files():
            try:
                mtimes[path] = path.stat().st_mtime
            except OSError:
                continue  # removed: a change only if it comes back
        return mtimes

    def changed(self) -> list[Path]:
        mtimes = self.snapshot()
        changed = [path for path, mtime in mtimes.items() if self.mtimes.get(path, mtime) != mtime]
        self.mtimes = mtimes
        return changed


def command_line() -> list[str]:
    """This process's command line, as Django's autoreloader starts it again."""
    return [str(part) for part in autoreload.get_child_arguments()]


def new_code_error() -> str | None:
    """None if the project loads in a fresh process (settings, apps, tasks, checks), else why."""
    try:
        result = subprocess.run(
            command_line(),
            env={**os.environ, CHECK_ENV: "1"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    if result.returncode == 0:
        return None
    return (result.stderr or result.stdout).strip() or f"exit code {result.returncode}"


def exec_again(state: dict[str, Any]) -> None:
    """Replace this process with the same command, handing it ``state``. Does not return."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    args = command_line()
    os.execve(args[0], args, {**os.environ, STATE_ENV: json.dumps(state)})
