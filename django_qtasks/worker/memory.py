"""How much memory a process uses, for ``--max-memory-per-child`` and the benchmarks.

Read from ``/proc`` on Linux. Elsewhere the resident size falls back to the
peak (``ru_maxrss``), which only grows: a limit then recycles a little early,
never late.
"""

from __future__ import annotations

import os
import resource
import sys


def rss_kib(pid: int | None = None) -> int:
    """Resident set size of ``pid`` (default: this process), in KiB."""
    try:
        with open(f"/proc/{pid or 'self'}/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        if pid is not None and pid != os.getpid():
            raise
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS


def pss_kib(pid: int) -> int:
    """Proportional set size of ``pid`` in KiB: shared pages split among their users.

    The sum over a process and its forked children is what they cost together.
    """
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise OSError(f"no Pss line in /proc/{pid}/smaps_rollup")
