"""What generator tasks have yielded, and new log lines, written while tasks run."""

from __future__ import annotations

from typing import Any

from django_qtasks.conf import qtasks_settings
from django_qtasks.models import task_store
from django_qtasks.store import still_mine
from django_qtasks.validation import is_storable
from django_qtasks.worker.slots import Running


def save_progress(entries: list[Running], worker_id: str) -> None:
    """Write the progress these runs made since the last time (in the lane)."""
    for entry in entries:
        run = entry.run
        lines = len(run.log_lines) + run.dropped_lines
        if run.progress_version == entry.saved_progress and lines == entry.saved_lines:
            continue
        fields: dict[str, Any] = {"logs": [*entry.record.logs, *run.stored_log()]}
        limit = qtasks_settings.RESULT_MAX_BYTES
        if run.progress is not None and is_storable(run.progress, limit):
            # Items that are not storable JSON, or more of them than RESULT_MAX_BYTES
            # holds, are not shown: the task ends in error when it returns them (the
            # progress stored last stays), and other tasks' progress still saves.
            fields["returning"] = run.progress
        task_store().update(entry.record.pk, still_mine(worker_id), fields)
        entry.saved_progress, entry.saved_lines = run.progress_version, lines
