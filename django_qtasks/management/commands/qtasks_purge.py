"""``manage.py qtasks_purge``: delete tasks that ended, in short batches."""

from __future__ import annotations

import argparse
import logging
import re
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from django_qtasks.conf import qtasks_settings
from django_qtasks.management.commands.qtasks_worker import positive_int
from django_qtasks.retention import (
    ENDED,
    NOT_ENDED,
    Counts,
    Selection,
    count,
    count_kept,
    describe,
    purge,
)

logger = logging.getLogger("django_qtasks.retention")

DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhdw]?)")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(value: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` or a number of seconds."""
    match = DURATION.fullmatch(value.strip().lower())
    try:
        if match is None:
            raise ValueError(value)
        period = timedelta(seconds=float(match[1]) * UNITS[match[2]])
        timezone.now() - period  # a date before year 1 cannot be compared with
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"must be a duration such as 30d, 12h, 90m, 45s or 3600 (seconds), not {value!r}"
        ) from None
    return period


def ended_statuses(value: str) -> list[str]:
    """``success,cancel``: statuses a task ends in."""
    statuses = [part.strip() for part in value.split(",") if part.strip()]
    for status in statuses:
        if status in NOT_ENDED:
            raise argparse.ArgumentTypeError(
                f"{status!r}: a task in {status!r} has not ended, and is never deleted; "
                f"the statuses a task ends in are {', '.join(ENDED)}"
            )
        if status not in ENDED:
            raise argparse.ArgumentTypeError(
                f"{status!r} is no status; the statuses a task ends in are {', '.join(ENDED)}"
            )
    if not statuses:
        raise argparse.ArgumentTypeError(f"must name statuses among {', '.join(ENDED)}")
    return statuses


def task_names(value: str) -> list[str]:
    names = [part.strip() for part in value.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("must name a task")
    return names


def flat(lists: list[list[str]] | None) -> tuple[str, ...]:
    """The items of repeated options, each once, in order."""
    return tuple(dict.fromkeys(item for items in lists or [] for item in items))


class Command(BaseCommand):
    help = (
        "Delete tasks that ended (success, error, cancel), in short batches. Tasks that "
        "have not ended, and those that one that has not ended points to (a chain's next "
        "step, a retry), are kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=duration,
            metavar="DURATION",
            help="Only tasks that ended longer ago than this: 30d, 12h, 90m, 45s, 2w, or "
            "seconds (0: every one).",
        )
        parser.add_argument(
            "--status",
            type=ended_statuses,
            action="append",
            metavar="STATUSES",
            help=f"Only tasks that ended in these statuses, comma-separated or repeated "
            f"(default: {','.join(ENDED)}).",
        )
        parser.add_argument(
            "--task",
            type=task_names,
            action="append",
            metavar="NAME",
            help="Only tasks of this name; comma-separated or repeated.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Delete nothing; print how many tasks would be deleted, by status and name.",
        )
        parser.add_argument(
            "--batch-size",
            type=positive_int,
            help="Tasks deleted per transaction (default: QTASKS['RETENTION_BATCH_SIZE'], 1000).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        qtasks_settings.as_dict()  # a broken QTASKS fails here, with its message
        statuses, names = flat(options["status"]), flat(options["task"])
        older_than = options["older_than"]
        if older_than is None and not statuses and not names:
            raise CommandError(
                "Say which tasks to delete: --older-than (e.g. 30d), --status or --task. "
                "--older-than 0 deletes every task that ended."
            )
        selection = Selection(statuses=statuses or ENDED, older_than=older_than, task_names=names)
        now = timezone.now()
        if options["dry_run"]:
            self.stdout.write(table("Would delete", count(selection, now=now)))
            kept = count_kept(selection, now=now)
            if kept:
                self.stdout.write(
                    f"Kept: {kept} more that match, which a task not yet ended points to "
                    "(a chain's next step or a retry)."
                )
            return
        purged = purge(selection, batch_size=options["batch_size"], now=now)
        logger.info(
            "qtasks_purge deleted %s tasks (%s) in %s batches",
            purged.total,
            describe(purged.deleted) or "none",
            purged.batches,
        )
        self.stdout.write(table("Deleted", purged.deleted))


def table(verb: str, counts: Counts) -> str:
    """``Deleted 3 tasks (success 2, cancel 1):`` then a line per status and task name."""
    total = sum(counts.values())
    if not total:
        return f"{verb} no task."
    rows = sorted(counts.items(), key=lambda item: (ENDED.index(item[0][0]), item[0][1]))
    status_width = max(len(status) for (status, _), _ in rows)
    name_width = max(len(name) for (_, name), _ in rows)
    number_width = len(str(total))
    lines = [f"{verb} {total} task{'s' if total != 1 else ''} ({describe(counts)}):"]
    lines += [
        f"  {status:<{status_width}}  {name:<{name_width}}  {number:>{number_width}}"
        for (status, name), number in rows
    ]
    return "\n".join(lines)
