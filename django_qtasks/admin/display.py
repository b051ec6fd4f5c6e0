"""How the task admin shows values: badges, durations, JSON, logs and attempts.

Every function returns escaped HTML (``format_html``), so nothing a task
stored (arguments, results, log lines) can inject markup into the admin.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from django_qtasks.models import TaskStatus

if TYPE_CHECKING:
    from django_qtasks.models import Task

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


#: The most characters of a result the task page shows; the rest is a download.
PREVIEW_CHARS = 10_000


def json_preview(value: Any, download_url: str) -> SafeString | str:
    """``pretty_json``, cut at PREVIEW_CHARS characters, with a link to the whole value."""
    if value is None or value == [] or value == {}:
        return EMPTY
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    if len(text) <= PREVIEW_CHARS:
        return pretty_json(value)
    note = _("The first %(shown)s of %(total)s characters.") % {
        "shown": f"{PREVIEW_CHARS:,}",
        "total": f"{len(text):,}",
    }
    return format_html(
        '<pre class="qtasks-pre qtasks-json">{}\u2026</pre><p class="qtasks-preview-note">{} '
        '<a href="{}" download>{}</a></p>',
        text[:PREVIEW_CHARS],
        note,
        download_url,
        _("Download it whole (JSON)"),
    )


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
        '<tr class="qtasks-log-{}"><td class="qtasks-nowrap">{}</td><td>{}</td>'
        '<td><span class="qtasks-level">{}</span></td><td class="qtasks-message">{}</td></tr>',
        (
            (
                str(line.get("level", "")).lower(),
                line.get("time", ""),
                line.get("attempt", ""),
                line.get("level", ""),
                line.get("message", ""),
            )
            for line in lines
        ),
    )
    return format_html(
        '<table class="qtasks-table qtasks-log"><thead><tr><th>{}</th><th>{}</th><th>{}</th>'
        "<th>{}</th></tr></thead><tbody>{}</tbody></table>",
        _("Time"),
        _("Attempt"),
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


def call_text(
    name: str, args: Any, kwargs: Any, *, then_result: bool = False, limit: int = 120
) -> str:
    """``push(2, key="x")``: a step's call, its values as JSON, cut at ``limit`` characters."""

    def value(item: Any) -> str:
        return json.dumps(item, ensure_ascii=False, default=str)

    parts = [value(item) for item in (args if isinstance(args, list) else [])]
    if then_result:  # a step not run yet gets the previous step's result last
        parts.append(f"<{_('previous result')}>")
    if isinstance(kwargs, dict):
        parts += [f"{key}={value(item)}" for key, item in kwargs.items()]
    text = f"{name}({', '.join(parts)})"
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def chain_table(
    steps: Sequence[Task], current: Any, link: Callable[[Any, str], SafeString]
) -> SafeString:
    """The steps of a chain in order: the tasks that exist (this one marked), then
    the steps not run, greyed; and where the chain is, or why it stopped."""
    last = steps[-1]
    pending = [step for step in last.chain_steps or [] if isinstance(step, dict)]
    stopped = last.status in (TaskStatus.ERROR, TaskStatus.CANCEL)
    rows = [
        format_html(
            '<tr class="qtasks-chain-step{}"><td>{}</td><td>{}{}</td><td>{}</td>'
            '<td><code class="qtasks-message">{}</code></td></tr>',
            " qtasks-chain-this" if step.pk == current else "",
            number,
            link(step.pk, f"{step.task_name} {str(step.pk)[:8]}"),
            format_html(" <strong>({})</strong>", _("this task")) if step.pk == current else "",
            status_badge(step.status),
            call_text(step.task_name, step.args, step.kwargs),
        )
        for number, step in enumerate(steps, 1)
    ]
    # A chain still running will run them; one that stopped never will.
    not_run = _("not run") if stopped or last.status == TaskStatus.SUCCESS else _("not run yet")
    rows += [
        format_html(
            '<tr class="qtasks-chain-pending qtasks-quiet"><td>{}</td><td>{}</td>'
            '<td><span class="qtasks-badge qtasks-chain-not-run">{}</span></td>'
            '<td><code class="qtasks-message">{}</code></td></tr>',
            number,
            step.get("task_name", "?"),
            not_run,
            call_text(
                str(step.get("task_name", "?")),
                step.get("args"),
                step.get("kwargs"),
                then_result=True,
            ),
        )
        for number, step in enumerate(pending, len(steps) + 1)
    ]
    total = len(steps) + len(pending)
    label = TaskStatus(last.status).label if last.status in TaskStatus.values else last.status
    if stopped:
        note = _("The chain stopped: step %(step)d (%(name)s) ended with status %(status)s.") % {
            "step": len(steps),
            "name": last.task_name,
            "status": label,
        }
        if pending:
            note += " " + ngettext(
                "The step after it did not run.",
                "The %(count)d steps after it did not run.",
                len(pending),
            ) % {"count": len(pending)}
    elif last.status != TaskStatus.SUCCESS:
        note = _("The chain is at step %(step)d of %(total)d (%(status)s).") % {
            "step": len(steps),
            "total": total,
            "status": label,
        }
    elif pending:
        note = _(
            "Step %(step)d succeeded, but the task of the next step was not found "
            "(it may have been deleted)."
        ) % {"step": len(steps)}
    else:
        note = ngettext(
            "The chain is done: its %(count)d step succeeded.",
            "The chain is done: all %(count)d steps succeeded.",
            total,
        ) % {"count": total}
    css = "qtasks-chain-note errornote" if stopped else "qtasks-chain-note"
    return format_html(
        '<table class="qtasks-table qtasks-chain"><thead><tr><th>#</th><th>{}</th><th>{}</th>'
        '<th>{}</th></tr></thead><tbody>{}</tbody></table><p class="{}">{}</p>',
        _("Task"),
        _("Status"),
        _("Call"),
        format_html_join("\n", "{}", ((row,) for row in rows)),
        css,
        note,
    )
