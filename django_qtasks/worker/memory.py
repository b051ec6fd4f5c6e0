"""How much memory this process uses, for ``--max-memory-per-child``.

Read from ``/proc`` on Linux. Elsewhere the resident size falls back to the
peak (``ru_maxrss``), which only grows: a limit then recycles a little early,
never late.
"""

from __future__ import annotations

import os
import resource
import sys


def rss_kib() -> int:
    """Resident set size of this process, in KiB."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS
