"""How the task admin shows values: badges, durations, JSON, logs and attempts.

Every function returns escaped HTML (``format_html``), so nothing a task
stored (arguments, results, log lines) can inject markup into the admin.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from django_qtasks.models import TaskStatus

EMPTY = "-"


def status_badge(status: str) -> SafeString:
    label = TaskStatus(status).label if status in TaskStatus.values else status
    return format_html('<span class="qtasks-badge qtasks-status-{}">{}</span>', status, label)


def tag_chips(tags: Any) -> SafeString | str:
    if not tags:
        return EMPTY
    if not isinstance(tags, list):
        tags = [tags]
    return format_html_join(" ", '<span class="qtasks-tag">{}</span>', ((tag,) for tag in tags))


def format_duration(value: timedelta | None) -> str:
    """``0.25 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``."""
    if value is None:
        return EMPTY
    seconds = value.total_seconds()
    if seconds < 60:
        return _("%(seconds).3g s") % {"seconds": seconds}
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return _("%(minutes)d min %(seconds)02d s") % {"minutes": minutes, "seconds": secs}
    hours, minutes = divmod(minutes, 60)
    return _("%(hours)d h %(minutes)02d min") % {"hours": hours, "minutes": minutes}


def pretty_json(value: Any) -> SafeString | str:
    if value is None or value == [] or value == {}:
        return EMPTY
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    return format_html('<pre class="qtasks-pre qtasks-json">{}</pre>', text)


def preformatted(text: str) -> SafeString | str:
    if not text:
        return EMPTY
    return format_html('<pre class="qtasks-pre qtasks-traceback">{}</pre>', text.rstrip())


def log_table(lines: list[dict[str, Any]] | None) -> SafeString | str:
    """The task's own log lines (``ctx.get_logger()``, INFO and up), oldest first."""
    if not lines:
        return _("No log lines were recorded for this task.")
    rows = format_html_join(
        "\n",
        '<tr class="qtasks-log-{}"><td class="qtasks-nowrap">{}</td>'
        '<td><span class="qtasks-level">{}</span></td><td class="qtasks-message">{}</td></tr>',
        (
            (
                str(line.get("level", "")).lower(),
                line.get("time", ""),
                line.get("level", ""),
                line.get("message", ""),
            )
            for line in lines
        ),
    )
    return format_html(
        '<table class="qtasks-table qtasks-log"><thead><tr><th>{}</th><th>{}</th><th>{}</th>'
        "</tr></thead><tbody>{}</tbody></table>",
        _("Time"),
        _("Level"),
        _("Message"),
        rows,
    )


def attempt_table(attempts: list[dict[str, Any]] | None) -> SafeString | str:
    """One row per attempt the workers recorded: who ran it, when, and how it ended."""
    if not attempts:
        return EMPTY
    rows = format_html_join(
        "\n",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
        '<td class="qtasks-message">{}</td></tr>',
        (
            (
                entry.get("attempt", ""),
                entry.get("worker", ""),
                entry.get("started_at") or EMPTY,
                entry.get("finished_at") or EMPTY,
                status_badge(str(entry.get("status", ""))),
                entry.get("error") or "",
            )
            for entry in attempts
        ),
    )
    return format_html(
        '<table class="qtasks-table"><thead><tr><th>#</th><th>{}</th><th>{}</th><th>{}</th>'
        "<th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>",
        _("Worker"),
        _("Started"),
        _("Finished"),
        _("Status"),
        _("Error"),
        rows,
    )
