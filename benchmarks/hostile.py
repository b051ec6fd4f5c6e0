"""Hostile inputs against the REST API, the admin and a real worker.

    make hostile                                   # PostgreSQL 127.0.0.1:5432, trust auth
    PROBE_SKIP_WORKER=1 .venv/bin/python benchmarks/hostile.py   # the API and the admin only

It (re)creates the database ``qtasks_hostile`` (PROBE_DB names another),
migrates it with the tests' settings (tests/settings.py, QTASKS_DB=postgres),
sends every input through Django's test Client (real database, autocommit:
nothing is rolled back), then starts two real ``manage.py qtasks_worker``
processes (queues hostile, and hostilesmall with RESULT_MAX_BYTES 1000) and
writes rows for them, by hand where the input is a row no enqueue would write.
Each input is recorded with its surface, HTTP status (or the worker's outcome)
and the number of task and schedule rows written when it was refused. The
table is printed and written to hostile-results.md in the temporary
directory; the exit status is 1 if any
5xx was seen, or on the worker's side a row left unended, a failing side loop,
a stray future traceback or a worker that did not stop on SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = os.environ.get("PROBE_DB", "qtasks_hostile")
ENV = {
    "DJANGO_SETTINGS_MODULE": "tests.settings",
    "QTASKS_DB": "postgres",
    "QTASKS_DB_NAME": DB_NAME,
    "QTASKS_TEST_RUN": "hostile",
}
os.environ.update(ENV)
sys.path[:0] = [str(ROOT), str(ROOT / "testproject")]


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


recreate_database()

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import Permission, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.core.signals import got_request_exception  # noqa: E402
from django.db import transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

call_command("migrate", verbosity=0)

import logging  # noqa: E402

for _name in ("django.request", "django.security", "django.server"):
    logging.getLogger(_name).disabled = True
SKIP_WORKER = bool(os.environ.get("PROBE_SKIP_WORKER"))

from django_qtasks import app  # noqa: E402
from django_qtasks.models import Schedule, Task, TaskStatus, WorkerHeartbeat  # noqa: E402

# ---------------------------------------------------------------------------------------
# Recording


@dataclass
class Row:
    surface: str
    label: str
    outcome: str  # HTTP status, or the worker's outcome
    refused: bool
    written: int  # rows written while the input was refused
    note: str = ""
    server_error: bool = False


ROWS: list[Row] = []
EXCEPTIONS: list[str] = []


def _on_exception(sender, request=None, **kwargs):
    exc = sys.exc_info()[1]
    EXCEPTIONS.append(f"{type(exc).__name__}: {str(exc)[:200]}")


got_request_exception.connect(_on_exception)


def rows_count() -> int:
    return Task.objects.count() + Schedule.objects.count()


def http(
    surface: str,
    label: str,
    client: Client,
    method: str,
    path: str,
    *,
    expect_refusal: bool = True,
    check=None,
    **kwargs,
) -> object:
    before, exc_before = rows_count(), len(EXCEPTIONS)
    if method == "raw_post":  # the body's bytes as they are, whatever the charset says
        response = client.generic("POST", path, kwargs.pop("data"), **kwargs)
    else:
        response = getattr(client, method)(path, **kwargs)
    written = rows_count() - before
    status = response.status_code
    note = ""
    if len(EXCEPTIONS) > exc_before:
        note = EXCEPTIONS[-1]
    refused = expect_refusal
    if check is not None:
        problem = check(response)
        if problem:
            note = (note + " " + problem).strip()
    ROWS.append(
        Row(
            surface,
            label,
            str(status),
            refused,
            written if refused else 0,
            note,
            server_error=status >= 500,
        )
    )
    return response


def body_has(text: str):
    def check(response):
        content = response.content.decode(errors="replace")
        return "" if text in content else f"MISSING {text!r}"

    return check


def size_below(limit: int):
    def check(response):
        size = len(response.content)
        return f"{size} bytes" + ("" if size < limit else f" OVER {limit}")

    return check


# ---------------------------------------------------------------------------------------
# Users and sample rows

Task.objects.all().delete()
Schedule.objects.all().delete()
WorkerHeartbeat.objects.all().delete()
User.objects.all().delete()


def user(name: str, *codenames: str, staff: bool = True, superuser: bool = False) -> Client:
    account = User.objects.create_user(
        name, password="pw", is_staff=staff or superuser, is_superuser=superuser
    )
    account.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_qtasks", codename__in=codenames)
    )
    client = Client(raise_request_exception=False)
    client.force_login(account)
    return client


root = user("root", superuser=True)
staff_noperm = user("staffnoperm")
viewer = user("viewer", "view_task", "view_workerheartbeat", "view_schedule")
plain = user("plain", staff=False)
anon = Client(raise_request_exception=False)

now = timezone.now()
QUEUE_API = "hostile-api"  # no worker listens here
sample_new = Task.objects.create(task_name="echo", queue=QUEUE_API, created_at=now)
sample_running = Task.objects.create(
    task_name="sync_sleeper",
    queue=QUEUE_API,
    status=TaskStatus.PROCESS,
    started_at=now,
    worker="host:9:live",
    attempts=1,
)
BIG = 5 * 1024 * 1024
sample_big = Task.objects.create(
    task_name="echo",
    queue=QUEUE_API,
    status=TaskStatus.SUCCESS,
    started_at=now,
    finished_at=now,
    attempts=1,
    returning="x" * BIG,
    logs=[{"time": "", "level": "INFO", "message": "y" * 4000}] * 200,
)
sample_done = Task.objects.create(
    task_name="echo",
    queue=QUEUE_API,
    status=TaskStatus.SUCCESS,
    started_at=now,
    finished_at=now,
    attempts=1,
    returning=1,
)
# Live heartbeats written by "another program": non-uuid running entries, odd queues.
for worker_id, running, queues in [
    ("odd:1:list", ["not-a-uuid", 5, None, {"a": 1}, str(sample_running.pk)], ["default"]),
    ("odd:2:int", 5, ["default"]),
    ("odd:3:text", "text", "default"),
]:
    WorkerHeartbeat.objects.create(
        worker_id=worker_id, hostname="h", pid=1, queues=queues, concurrency=1, running=running
    )

# ---------------------------------------------------------------------------------------
# REST API

API = "/api/qtasks/"
TASKS = API + "tasks/"


def detail(pk: object) -> str:
    return f"{TASKS}{pk}/"


def post_json(label: str, raw: str | bytes, *, client: Client = root, **kw) -> object:
    return http(
        "API",
        label,
        client,
        "raw_post" if isinstance(raw, bytes) else "post",
        TASKS,
        data=raw,
        content_type=kw.pop("content_type", "application/json"),
        **kw,
    )


def create(label: str, payload: dict, **kw) -> object:
    return post_json(label, json.dumps(payload), **kw)


E = "echo"
create_cases = [
    ("args lone surrogate", '{"task_name": "echo", "args": ["\\ud800"]}'),
    ("args low surrogate", '{"task_name": "echo", "args": ["a\\udfffb"]}'),
    ("args NUL", '{"task_name": "echo", "args": ["a\\u0000b"]}'),
    ("kwargs key surrogate", '{"task_name": "echo", "kwargs": {"\\ud800": 1}}'),
    ("kwargs key NUL", '{"task_name": "echo", "kwargs": {"\\u0000": 1}}'),
    ("kwargs value surrogate", '{"task_name": "echo", "kwargs": {"v": ["\\udbff"]}}'),
    ("args NaN", '{"task_name": "echo", "args": [NaN]}'),
    ("args Infinity", '{"task_name": "echo", "args": [Infinity]}'),
    ("args 1e999 (inf)", '{"task_name": "echo", "args": [1e999]}'),
    ("args 5000-digit int", '{"task_name": "echo", "args": [' + "9" * 5000 + "]}"),
    ("args nested 40 deep", '{"task_name": "echo", "args": ' + "[" * 40 + "]" * 40 + "}"),
    ("args nested 20000 deep", '{"task_name": "echo", "args": ' + "[" * 20000 + "]" * 20000 + "}"),
    ("body over 64 KiB", json.dumps({"task_name": E, "args": ["x" * 70000]})),
    ("body not JSON", "{not json"),
    ("body empty", ""),
    ("body a list", "[]"),
    ("body a string", '"echo"'),
    ("body null", "null"),
    ("body invalid UTF-8", b'{"task_name": "echo", "args": ["\xff\xfe"]}'),
    ("task_name int", '{"task_name": 5}'),
    ("task_name unknown os.system", '{"task_name": "os.system"}'),
    ("task_name NUL", '{"task_name": "echo\\u0000"}'),
    ("task_name surrogate", '{"task_name": "\\ud800"}'),
    ("task_name 100k chars", json.dumps({"task_name": "e" * 60000})),
    ("task_name missing", '{"args": []}'),
    ("args a dict", '{"task_name": "echo", "args": {"a": 1}}'),
    ("kwargs a list", '{"task_name": "echo", "kwargs": [1]}'),
    ("priority string", '{"task_name": "echo", "priority": "1"}'),
    ("priority 2**31", '{"task_name": "echo", "priority": 2147483648}'),
    ("priority -2**31-1", '{"task_name": "echo", "priority": -2147483649}'),
    ("priority true", '{"task_name": "echo", "priority": true}'),
    ("priority 1.5", '{"task_name": "echo", "priority": 1.5}'),
    ("queue empty", '{"task_name": "echo", "queue": ""}'),
    ("queue 101 chars", json.dumps({"task_name": E, "queue": "q" * 101})),
    ("queue NUL", '{"task_name": "echo", "queue": "a\\u0000"}'),
    ("queue surrogate", '{"task_name": "echo", "queue": "\\ud800"}'),
    ("queue int", '{"task_name": "echo", "queue": 5}'),
    ("delay -1", '{"task_name": "echo", "delay": -1}'),
    ("delay 1e999", '{"task_name": "echo", "delay": 1e999}'),
    ("delay string", '{"task_name": "echo", "delay": "10"}'),
    ("delay 2 years", '{"task_name": "echo", "delay": 63072000}'),
    ("eta garbage", '{"task_name": "echo", "eta": "tomorrow"}'),
    ("eta naive", '{"task_name": "echo", "eta": "2030-01-01T00:00:00"}'),
    ("eta year 10000", '{"task_name": "echo", "eta": "10000-01-01T00:00:00Z"}'),
    ("eta overflow offset", '{"task_name": "echo", "eta": "9999-12-31T23:59:59-23:59"}'),
    ("eta underflow offset", '{"task_name": "echo", "eta": "0001-01-01T00:00:00+23:59"}'),
    ("eta Feb 30", '{"task_name": "echo", "eta": "2030-02-30T00:00:00Z"}'),
    ("eta 5 years ahead", '{"task_name": "echo", "eta": "2099-01-01T00:00:00Z"}'),
    ("eta int", '{"task_name": "echo", "eta": 5}'),
    ("delay and eta", '{"task_name": "echo", "delay": 1, "eta": "2030-01-01T00:00:00Z"}'),
    ("every field bad", '{"task_name": 1, "priority": "x", "queue": "", "delay": -1}'),
]
for label, raw in create_cases:
    post_json(label, raw)
post_json(
    "content-type text/plain",
    '{"task_name": "echo"}',
    content_type="text/plain",
)
post_json(
    "content-type form",
    "task_name=echo",
    content_type="application/x-www-form-urlencoded",
)
post_json(
    "charset latin-1 surrogate-free",
    '{"task_name": "echo", "args": ["\xe9"]}'.encode("latin-1"),
    content_type="application/json; charset=latin-1",
    expect_refusal=False,
)
post_json(
    "charset bogus (ignored: read as UTF-8)",
    b'{"task_name": "echo"}',
    content_type="application/json; charset=no-such-codec",
    expect_refusal=False,
)
post_json(
    "charset utf-16 surrogate pair split",
    '{"task_name": "echo", "args": ["\\ud83d"]}'.encode("utf-16"),
    content_type="application/json; charset=utf-16",
)
# Enqueue rights
create("create: staff, no permission", {"task_name": E}, client=staff_noperm)
create("create: viewer (no add_task)", {"task_name": E}, client=viewer)
create("create: not staff", {"task_name": E}, client=plain)
create("create: anonymous", {"task_name": E}, client=anon)

# Cancel / retry
for label, raw in [
    ("cancel reason 1001 chars", json.dumps({"reason": "r" * 1001})),
    ("cancel reason NUL", '{"reason": "a\\u0000"}'),
    ("cancel reason surrogate", '{"reason": "\\ud800"}'),
    ("cancel reason missing", "{}"),
    ("cancel reason int", '{"reason": 5}'),
    ("cancel reason empty", '{"reason": ""}'),
    ("cancel body not JSON", "nope"),
]:
    http(
        "API",
        label,
        root,
        "post",
        detail(sample_new.pk) + "cancel/",
        data=raw,
        content_type="application/json",
    )
http(
    "API",
    "cancel: viewer (no cancel_task)",
    viewer,
    "post",
    detail(sample_new.pk) + "cancel/",
    data='{"reason": "x"}',
    content_type="application/json",
)
http(
    "API",
    "cancel of an ended task",
    root,
    "post",
    detail(sample_done.pk) + "cancel/",
    data='{"reason": "x"}',
    content_type="application/json",
)
http(
    "API",
    "cancel of unknown uuid",
    root,
    "post",
    detail(uuid.uuid4()) + "cancel/",
    data='{"reason": "x"}',
    content_type="application/json",
)
http(
    "API",
    "cancel of non-uuid",
    root,
    "post",
    detail("not-a-uuid") + "cancel/",
    data='{"reason": "x"}',
    content_type="application/json",
)
http("API", "retry of a waiting task", root, "post", detail(sample_new.pk) + "retry/")
http("API", "retry: viewer (no retry_task)", viewer, "post", detail(sample_done.pk) + "retry/")
http("API", "retry of NUL uuid", root, "post", TASKS + "%00/retry/")

# Reads: detail lookups
for label, pk in [
    ("detail NUL", "%00"),
    ("detail surrogate bytes", "%ED%A0%80"),
    ("detail non-uuid", "not-a-uuid"),
    ("detail 5000 chars", "a" * 5000),
    ("detail unknown uuid", str(uuid.uuid4())),
]:
    http("API", label, root, "get", detail(pk))

# Reads: list parameters


def names_all(response):
    """With several bad parameters, the 400 names each of them."""
    if "&" not in response.request["QUERY_STRING"]:
        return ""
    keys = set(response.json()) if response.status_code == 400 else set()
    want = {"page_size", "status", "created_after"}
    return "" if want <= keys else f"NAMES ONLY {sorted(keys)}"


for label, query in [
    ("page_size superscript 2", "page_size=%C2%B2"),
    ("page_size fullwidth 10", "page_size=%EF%BC%91%EF%BC%90"),
    ("page_size arabic-indic 5", "page_size=%D9%A5"),
    ("page_size 0", "page_size=0"),
    ("page_size 501", "page_size=501"),
    ("page_size -1", "page_size=-1"),
    ("page_size 1e3", "page_size=1e3"),
    ("page_size 10**30", "page_size=" + "1" * 31),
    ("queue NUL", "queue=%00"),
    ("task_name NUL", "task_name=%00"),
    ("worker NUL", "worker=%00"),
    ("tag NUL", "tag=%00"),
    ("search NUL", "search=%00"),
    ("search surrogate bytes", "search=%ED%A0%80"),
    ("status bogus", "status=bogus"),
    ("status NUL", "status=%00"),
    ("created_after garbage", "created_after=yesterday"),
    ("created_after year 10000", "created_after=10000-01-01T00:00:00Z"),
    ("created_after overflow", "created_after=9999-12-31T23:59:59-23:59"),
    ("created_before underflow", "created_before=0001-01-01T00:00:00%2B23:59"),
    ("cursor garbage", "cursor=garbage"),
    ("cursor NUL position", "cursor=cD0AAA%3D%3D"),  # base64 of "p=\0\0"
    ("cursor huge offset", "cursor=bz05OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"),
    ("tag 201 chars", "tag=" + "t" * 201),
    ("three bad parameters", "page_size=%C2%B2&status=bogus&created_after=x"),
]:
    http("API", f"list ?{label}", root, "get", TASKS + "?" + query, check=names_all)

# Lists do not carry big results; the detail does.
http(
    "API",
    "list with a 5 MB result stored",
    root,
    "get",
    TASKS,
    expect_refusal=False,
    check=size_below(200_000),
)
http(
    "API",
    "workers with non-uuid running entries",
    root,
    "get",
    API + "workers/",
    expect_refusal=False,
)
http("API", "stats", root, "get", API + "stats/", expect_refusal=False)
# Privilege
for label, client in [
    ("staff without permission", staff_noperm),
    ("not staff", plain),
    ("anonymous", anon),
]:
    for path in [TASKS, detail(sample_big.pk), API + "workers/", API + "stats/", API + "registry/"]:
        http(
            "API",
            f"GET {path.replace(str(sample_big.pk), '<uuid>')} as {label}",
            client,
            "get",
            path,
        )
for method in ["delete", "put", "patch"]:
    http("API", f"{method.upper()} a task", root, method, detail(sample_done.pk))
http(
    "API",
    "POST to workers",
    root,
    "post",
    API + "workers/",
    data="{}",
    content_type="application/json",
)

# ---------------------------------------------------------------------------------------
# Admin

CL = reverse("admin:django_qtasks_task_changelist")
SL = reverse("admin:django_qtasks_schedule_changelist")
SADD = reverse("admin:django_qtasks_schedule_add")


def task_url(name: str, *args: object) -> str:
    return reverse(f"admin:django_qtasks_task_{name}", args=args)


def refused_redirect(response):
    if response.status_code == 302 and not response.url.endswith("?e=1"):
        return f"redirect to {response.url}"
    return ""


for label, query in [
    ("task list queue NUL", "queue=%00"),
    ("task list task_name NUL", "task_name=%00"),
    ("task list tag NUL", "tag=%00"),
    ("task list search NUL", "q=%00"),
    ("task list worker__regex", "worker__regex=.*"),
    ("task list args__contains", "args__contains=x"),
    ("task list returning__isnull", "returning__isnull=False"),
    ("task list uuid__startswith", "uuid__startswith=0"),
    ("task list status__exact bogus", "status__exact=bogus"),
    ("task list created_at__gte garbage", "created_at__gte=garbage"),
    ("task list created_at__gte year 10000", "created_at__gte=10000-01-01"),
    ("task list created_at__gte underflow", "created_at__gte=0001-01-01+00:00:00%2B14:00"),
    ("task list created_at__year abc", "created_at__year=abc"),
    ("task list created_at__year 9999", "created_at__year=9999"),
    ("task list created_at__year 9999 month 12", "created_at__year=9999&created_at__month=12"),
    (
        "task list created_at 9999-12-31",
        "created_at__year=9999&created_at__month=12&created_at__day=31",
    ),
    ("task list created_at__year superscript", "created_at__year=%C2%B2"),
    ("task list schedule id abc", "schedule__id__exact=abc"),
    ("task list schedule id superscript", "schedule__id__exact=%C2%B2"),
    ("task list schedule id 10**25", "schedule__id__exact=" + "9" * 25),
    ("task list p=abc", "p=abc"),
    ("task list p=999999", "p=999999"),
    ("task list o=99", "o=99"),
    ("task list _to_field=password", "_to_field=password"),
    ("task list q 5000 chars", "q=" + "x" * 5000),
]:
    http("admin", label, root, "get", f"{CL}?{query}", check=refused_redirect)

for label, query in [
    ("schedule list task_name NUL", "task_name=%00"),
    ("schedule list search NUL", "q=%00"),
    ("schedule list name__regex", "name__regex=.*"),
    ("schedule list enabled__exact maybe", "enabled__exact=maybe"),
    ("schedule list id__gt", "id__gt=0"),
]:
    http("admin", label, root, "get", f"{SL}?{query}", check=refused_redirect)

# Live heartbeats whose queues are not a list of names (written by another program).
odd_queues = [
    WorkerHeartbeat.objects.create(
        worker_id=worker_id, hostname="h", pid=1, queues=queues, concurrency=1, running=[]
    )
    for worker_id, queues in [("odd:4:intqueues", 5), ("odd:5:dictqueues", [{"a": 1}, None, 5])]
]
http(
    "admin",
    "task list with heartbeats whose queues are not lists of names",
    root,
    "get",
    CL,
    expect_refusal=False,
)
http(
    "admin",
    "dashboard data with those heartbeats",
    root,
    "get",
    task_url("dashboard_data"),
    expect_refusal=False,
)
http(
    "API",
    "workers with queues that are not lists of names",
    root,
    "get",
    API + "workers/",
    expect_refusal=False,
)
for beat in odd_queues:
    beat.delete()
http(
    "admin",
    "schedule action on a non-integer selection",
    root,
    "post",
    SL,
    data={"action": "run_selected", "_selected_action": ["abc"]},
)
http(
    "admin",
    "schedule action on a superscript selection",
    root,
    "post",
    SL,
    data={"action": "run_selected", "_selected_action": ["\u00b2"]},
)
http(
    "admin",
    "task action on a NUL selection",
    root,
    "post",
    CL,
    data={"action": "cancel_selected", "_selected_action": ["\x00"]},
)
far = Task.objects.create(
    task_name="echo",
    queue=QUEUE_API,
    status=TaskStatus.SUCCESS,
    created_at=timezone.now().replace(year=9999, month=12, day=31),
)
http("admin", "task list with a row created in year 9999", root, "get", CL, expect_refusal=False)
http(
    "admin",
    "task list drilled into year 9999 (row there)",
    root,
    "get",
    f"{CL}?created_at__year=9999&created_at__month=12",
    expect_refusal=False,
)
far.delete()

# Detail pages and their URLs
for label, pk in [
    ("task page non-uuid", "not-a-uuid"),
    ("task page NUL", "%00"),
    ("task page 5000 chars", "a" * 5000),
]:
    http("admin", label, root, "get", f"{CL}{pk}/change/")
http(
    "admin",
    "task page with a 5 MB result and a full log",
    root,
    "get",
    task_url("change", sample_big.pk),
    expect_refusal=False,
    check=size_below(1_000_000),
)
big_result_only = Task.objects.create(
    task_name="echo",
    queue=QUEUE_API,
    status=TaskStatus.SUCCESS,
    started_at=now,
    finished_at=now,
    attempts=1,
    returning={"rows": ["x" * 100] * 50_000},
)
http(
    "admin",
    "task page with a 5 MB result",
    root,
    "get",
    task_url("change", big_result_only.pk),
    expect_refusal=False,
    check=size_below(100_000),
)
http(
    "admin",
    "result download of a 5 MB result",
    root,
    "get",
    task_url("result", big_result_only.pk),
    expect_refusal=False,
)
big_traceback = Task.objects.create(
    task_name="echo",
    queue=QUEUE_API,
    status=TaskStatus.ERROR,
    started_at=now,
    finished_at=now,
    attempts=1,
    traceback="ValueError: " + "t" * 2_000_000,
    attempt_log=[{"attempt": 1, "status": "error", "error": "ValueError: " + "t" * 2_000_000}],
)
http(
    "admin",
    "task page with a 2 MB traceback",
    root,
    "get",
    task_url("change", big_traceback.pk),
    expect_refusal=False,
    check=size_below(1_000_000),
)
http("admin", "result download of unknown uuid", root, "get", task_url("result", uuid.uuid4()))
http("admin", "result download of non-uuid", root, "get", f"{CL}zzz/result/")
http("admin", "retry by GET", root, "get", task_url("retry", sample_done.pk))
http(
    "admin",
    "cancel reason 1001 chars",
    root,
    "post",
    task_url("cancel", sample_new.pk),
    data={"reason": "r" * 1001},
    check=body_has("at most 1000 characters"),
)
http(
    "admin",
    "cancel reason NUL",
    root,
    "post",
    task_url("cancel", sample_new.pk),
    data={"reason": "a\x00b"},
)
http(
    "admin",
    "cancel reason empty",
    root,
    "post",
    task_url("cancel", sample_new.pk),
    data={"reason": ""},
)
http(
    "admin",
    "cancel_selected reason 5000 chars",
    root,
    "post",
    CL,
    data={
        "action": "cancel_selected",
        "_selected_action": [str(sample_new.pk)],
        "post": "yes",
        "reason": "r" * 5000,
    },
    check=body_has("at most 1000 characters"),
)
http(
    "admin",
    "action unknown",
    root,
    "post",
    CL,
    data={"action": "no_such_action", "_selected_action": [str(sample_new.pk)]},
)
http(
    "admin",
    "action on non-uuid selection",
    root,
    "post",
    CL,
    data={"action": "retry_selected", "_selected_action": ["not-a-uuid"]},
)
http(
    "admin",
    "delete page of a running task",
    root,
    "post",
    task_url("delete", sample_running.pk),
    data={"post": "yes"},
)
http(
    "admin",
    "delete_selected of a running task",
    root,
    "post",
    CL,
    data={"action": "delete_selected", "_selected_action": [str(sample_running.pk)], "post": "yes"},
)
assert Task.objects.filter(pk=sample_running.pk).exists(), "a running task was deleted"

# Privilege: staff without view_task
for label, path in [
    ("task list", CL),
    ("task page", task_url("change", sample_big.pk)),
    ("result download", task_url("result", sample_big.pk)),
    ("dashboard", task_url("dashboard")),
    ("dashboard data", task_url("dashboard_data")),
    ("schedule list", SL),
]:
    http("admin", f"{label} as staff without permission", staff_noperm, "get", path)

# Dashboard with odd heartbeats
http(
    "admin",
    "dashboard with odd heartbeats",
    root,
    "get",
    task_url("dashboard"),
    expect_refusal=False,
)
http(
    "admin",
    "dashboard data with odd heartbeats",
    root,
    "get",
    task_url("dashboard_data"),
    expect_refusal=False,
)
http(
    "admin",
    "dashboard ?period=bogus&refresh=%C2%B2",
    root,
    "get",
    task_url("dashboard") + "?period=bogus&refresh=%C2%B2",
    expect_refusal=False,
)

# Schedule form
base = {
    "name": "probe",
    "task_name": "echo",
    "description": "",
    "cron": "",
    "interval": "00:05:00",
    "args": "[]",
    "kwargs": "{}",
    "queue": "",
    "priority": "",
    "enabled": "on",
    "expires_at_0": "",
    "expires_at_1": "",
}


def schedule_refused(response):
    if response.status_code == 200 and "errornote" not in response.content.decode():
        return "200 WITHOUT an error note"
    return ""


for label, changes in [
    ("schedule args NUL", {"args": '["a\\u0000b"]'}),
    ("schedule args surrogate", {"args": '["\\ud800"]'}),
    ("schedule kwargs key surrogate", {"kwargs": '{"\\udfff": 1}'}),
    ("schedule args NaN", {"args": "[NaN]"}),
    ("schedule args not JSON", {"args": "[1,"}),
    ("schedule args a dict", {"args": '{"a": 1}'}),
    ("schedule args 5000-digit int", {"args": "[" + "9" * 5000 + "]"}),
    ("schedule args nested 20000", {"args": "[" * 20000 + "]" * 20000}),
    ("schedule cron garbage", {"cron": "every day", "interval": ""}),
    ("schedule cron NUL", {"cron": "* * * * *\x00", "interval": ""}),
    ("schedule interval 10**12 days", {"interval": "999999999999 00:00:00"}),
    ("schedule interval negative", {"interval": "-1 00:00:00"}),
    ("schedule priority 2**40", {"priority": str(2**40)}),
    ("schedule name NUL", {"name": "a\x00b"}),
    ("schedule name 1000 chars", {"name": "n" * 1000}),
    ("schedule task unknown", {"task_name": "os.system"}),
    ("schedule queue 1000 chars", {"queue": "q" * 1000}),
]:
    http("admin", label, root, "post", SADD, data={**base, **changes}, check=schedule_refused)
http(
    "admin",
    "schedule expires 9999-12-31 23:59:59 (valid)",
    root,
    "post",
    SADD,
    data={**base, "name": "far", "expires_at_0": "9999-12-31", "expires_at_1": "23:59:59"},
    expect_refusal=False,
)
http("admin", "schedule list with that schedule", root, "get", SL, expect_refusal=False)
Schedule.objects.filter(name="far").delete()
# Deep but readable JSON is accepted, as add_task accepts it (the API's 32 levels are a
# limit of its request bodies); its page still shows.
http(
    "admin",
    "schedule args nested 900 (accepted)",
    root,
    "post",
    SADD,
    data={**base, "name": "deep", "args": "[" * 900 + "]" * 900},
    expect_refusal=False,
)
deep = Schedule.objects.filter(name="deep").first()
if deep is not None:
    http(
        "admin",
        "schedule page of that schedule",
        root,
        "get",
        reverse("admin:django_qtasks_schedule_change", args=[deep.pk]),
        expect_refusal=False,
    )
    deep.delete()
for label, pk in [
    ("schedule page superscript id", "%C2%B2"),
    ("schedule page 10**25 id", "9" * 25),
    ("schedule run superscript id", None),
]:
    if pk is None:
        http("admin", label, root, "post", f"{SL}%C2%B2/run/")
    else:
        http("admin", label, root, "get", f"{SL}{pk}/change/")

# ---------------------------------------------------------------------------------------
# Worker

TAIL: list[str] = []


def worker_phase() -> None:
    QUEUE = "hostile"
    SMALL = "hostilesmall"

    class Worker:
        def __init__(self, queue: str, settings: dict | None = None) -> None:
            env = dict(os.environ)
            env.update(ENV)
            env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "testproject")])
            env["PYTHONUNBUFFERED"] = "1"
            if settings:
                env["QTASKS_TEST_SETTINGS"] = json.dumps(settings)
            self.log_path = Path(tempfile.mkstemp(prefix=f"hostile-{queue}-", suffix=".log")[1])
            self.log_file = self.log_path.open("w")
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "django",
                    "qtasks_worker",
                    "--queues",
                    queue,
                    "--concurrency",
                    "4",
                ],
                env=env,
                cwd=ROOT,
                stdout=self.log_file,
                stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + 180
            while "started:" not in self.log:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"worker did not start:\n{self.log}")
                time.sleep(0.1)

        @property
        def log(self) -> str:
            return self.log_path.read_text(errors="replace")

        def stop(self) -> int:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(30)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.log_file.close()
            return self.process.returncode

    submitted: list[uuid.UUID] = []

    def submit(task_name: str, *, queue: str = QUEUE, **fields) -> Task:
        record = app.submit(Task(task_name=task_name, queue=queue, **fields))
        submitted.append(record.pk)
        return record

    def wait_final(task: Task, timeout: float = 120, watch=None) -> Task:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = Task.objects.get(pk=task.pk)
            if watch is not None:
                watch(row)
            if row.status in (TaskStatus.SUCCESS, TaskStatus.ERROR, TaskStatus.CANCEL):
                return row
            time.sleep(0.05)
        return Task.objects.get(pk=task.pk)

    worker_cases: list[tuple[str, Task, callable]] = []

    def worker_case(label: str, task: Task, judge) -> None:
        worker_cases.append((label, task, judge))

    def last_line(row: Task) -> str:
        return (row.traceback.strip().splitlines() or [""])[-1][:160]

    print("starting workers ...", flush=True)
    main_worker = Worker(QUEUE)
    small_worker = Worker(SMALL, {"RESULT_MAX_BYTES": 1000})
    rows_before = set(Task.objects.values_list("pk", flat=True))
    marker_file = Path(tempfile.gettempdir()) / f"hostile-touched-{uuid.uuid4().hex}"

    def expect(status: str, text: str = ""):
        def judge(row: Task) -> str:
            problems = []
            if row.status != status:
                problems.append(f"expected {status}")
            if text and text not in row.traceback:
                problems.append(f"traceback lacks {text!r}")
            return "; ".join(problems)

        return judge

    worker_case(
        "django_task row naming this.s",
        submit("this.s", extra={"django_task": {"backend": "default"}}),
        expect("error", "which was refused"),
    )
    worker_case(
        "django_task row naming subprocess.run",
        submit(
            "subprocess.run",
            args=[["touch", str(marker_file)]],
            extra={"django_task": {"backend": "default"}},
        ),
        expect("error", "not a django.tasks Task"),
    )
    worker_case(
        "django_task row naming antigravity.geohash",
        submit("antigravity.geohash", extra={"django_task": {"backend": "default"}}),
        expect("error", "which was refused"),
    )
    worker_case(
        "django_task marker not a dict",
        submit("echo", args=[1], extra={"django_task": "x"}),
        expect("error"),
    )
    worker_case(
        "django_task of an alias not ours",
        submit(
            "tests.testapp.django_tasks.add",
            args=[1, 2],
            extra={"django_task": {"backend": "nope"}},
        ),
        expect("error"),
    )
    worker_case(
        "extra a list (no marker)", submit("echo", args=[1], extra=["x"]), expect("success")
    )
    worker_case("task_name not registered", submit("no.such.task"), expect("error"))
    worker_case("task_name empty", submit(""), expect("error"))
    for label, fields in [
        ("logs not a list (5)", {"logs": 5}),
        ("attempt_log not a list (5)", {"attempt_log": 5}),
        ("tags not a list (5)", {"tags": 5}),
        ("chain_steps [5]", {"chain_steps": [5]}),
        ("chain_steps a string", {"chain_steps": "text"}),
        ("chain_steps step without args", {"chain_steps": [{"task_name": "echo"}]}),
        (
            "chain_steps unknown task",
            {"chain_steps": [{"task_name": "os.system", "args": [], "kwargs": {}}]},
        ),
        ("max_attempts 0", {"max_attempts": 0}),
    ]:
        worker_case(
            f"row with {label}",
            submit("echo", args=[1], **fields),
            lambda row: "",
        )
    worker_case("args a dict", submit("echo", args={"a": 1}), lambda row: "")
    worker_case("args an int", submit("echo", args=5), lambda row: "")
    worker_case("kwargs a list", submit("echo", kwargs=[1, 2]), lambda row: "")
    worker_case("args a string", submit("echo", args="abc"), lambda row: "")
    worker_case(
        "result 11 MB (limit 10 MiB)",
        submit("echo", args=["x" * (11 * 1024 * 1024)]),
        expect("error", "over the limit of 10485760 bytes"),
    )
    worker_case("result NUL", submit("unstorable_result", args=[0]), expect("error", "U+0000"))
    worker_case(
        "result surrogate", submit("unstorable_result", args=[0xD800]), expect("error", "U+D800")
    )

    def log_cut(row: Task) -> str:
        longest = max((len(line.get("message", "")) for line in row.logs), default=0)
        return "" if row.status == "success" and longest <= 4100 else f"log line of {longest} chars"

    worker_case("log line 20 MB", submit("log_line", args=["z" * (20 * 1024 * 1024)]), log_cut)

    def traceback_size(row: Task) -> str:
        size = len(row.traceback)
        attempts = len(json.dumps(row.attempt_log))
        return f"traceback {size} chars, attempt_log {attempts} chars" + (
            " UNBOUNDED" if size > 1_000_000 else ""
        )

    worker_case(
        "exception message 20 MB",
        submit("fails_with", args=["m" * (20 * 1024 * 1024)]),
        traceback_size,
    )
    worker_case(
        "task cancels itself with a 50,000-char reason",
        submit("probe_cancel_sync", args=["s" * 50_000]),
        lambda row: (
            ""
            if row.status == "cancel" and len(row.cancel_reason) <= 1000
            else f"cancel_reason kept {len(row.cancel_reason)} chars (limit 1000)"
        ),
    )
    worker_case("sync task cancelled", submit("sync_sleeper", args=[30]), expect("cancel"))
    worker_case("sync task over max_time", submit("sync_too_slow"), expect("error", "max_time"))

    # Progress of a generator, on the worker whose RESULT_MAX_BYTES is 1000.
    progress_seen = {"max": 0}

    def watch_progress(row: Task) -> None:
        if row.status == TaskStatus.PROCESS and row.returning is not None:
            progress_seen["max"] = max(progress_seen["max"], len(json.dumps(row.returning)))

    gen = submit("slow_gen", queue=SMALL, args=[600, 0.005])
    gen_row = wait_final(gen, watch=watch_progress)

    def progress_judge(row: Task) -> str:
        note = f"progress stored up to {progress_seen['max']} bytes (limit 1000)"
        if row.status != "error":
            note += "; expected error"
        if progress_seen["max"] > 1000:
            note += " OVER THE LIMIT while running"
        return note

    far_future = submit("echo", args=[1], run_after=timezone.now().replace(year=9999))
    # Cancel a long reason from outside, on a waiting task of a queue no worker reads.
    waiting = submit("echo", queue=QUEUE_API, args=[1])
    waiting.cancel("w" * 50_000, by="probe")

    # Dead workers whose heartbeats hold odd values, each with an orphan row.
    long_ago = timezone.now() - timedelta(minutes=1)
    orphans = {}
    for worker_id, running, queues in [
        ("ghost:1:list", ["not-a-uuid", 5, None, {"a": 1}], [QUEUE]),
        ("ghost:2:int", 5, [QUEUE]),
        ("ghost:3:queues", [], 5),
        ("ghost:4:dictqueue", [], [{"a": 1}]),
    ]:
        # The dead heartbeat first, and both at once: an orphan of a worker with no
        # heartbeat at all is taken over (error), which is another case.
        with transaction.atomic():
            WorkerHeartbeat.objects.create(
                worker_id=worker_id,
                hostname="ghost",
                pid=1,
                queues=queues,
                concurrency=1,
                running=running,
                last_heartbeat=long_ago,
            )
            orphans[worker_id] = Task.objects.create(
                task_name="echo",
                args=[1],
                queue=QUEUE,
                status=TaskStatus.PROCESS,
                worker=worker_id,
                started_at=long_ago - timedelta(minutes=1),
                attempts=1,
                max_attempts=1,
            )

    # Stop the two stoppable runs once they started.
    for label, task, _judge in worker_cases:
        if label == "sync task cancelled":
            deadline = time.monotonic() + 60
            while Task.objects.get(pk=task.pk).status != TaskStatus.PROCESS:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            Task.objects.get(pk=task.pk).cancel("probe", by="probe")

    for label, task, judge in worker_cases:
        row = wait_final(task)
        problem = judge(row)
        ROWS.append(
            Row(
                "worker",
                label,
                row.status,
                row.status in ("error", "cancel"),
                0,
                (problem or last_line(row)) if row.status != "success" else problem,
                # A row its worker never ends: the worker's 5xx.
                server_error=row.status not in ("success", "error", "cancel"),
            )
        )
    ROWS.append(
        Row(
            "worker",
            "generator progress (RESULT_MAX_BYTES 1000)",
            gen_row.status,
            True,
            0,
            progress_judge(gen_row),
        )
    )
    far_row = Task.objects.get(pk=far_future.pk)
    ROWS.append(
        Row(
            "worker",
            "row with run_after in year 9999",
            far_row.status,
            False,
            0,
            "waits, as it should" if far_row.status == TaskStatus.NEW else "RAN",
        )
    )
    waiting.refresh_from_db()
    ROWS.append(
        Row(
            "worker",
            "Task.cancel() reason 50,000 chars",
            waiting.status,
            True,
            0,
            f"reason kept {len(waiting.cancel_reason)} chars",
        )
    )
    time.sleep(8)  # a few fail-over rounds
    for worker_id, orphan in orphans.items():
        row = Task.objects.get(pk=orphan.pk)
        still = WorkerHeartbeat.objects.filter(worker_id=worker_id).exists()
        note = "heartbeat row still there" if still else ""
        ROWS.append(
            Row(
                "worker",
                f"dead heartbeat {worker_id} + orphan",
                row.status,
                True,
                0,
                note,
                server_error=row.status == TaskStatus.PROCESS,
            )
        )
    ROWS.append(
        Row(
            "worker",
            "marker file of subprocess.run",
            "absent" if not marker_file.exists() else "CREATED",
            True,
            0,
            server_error=marker_file.exists(),
        )
    )

    main_log, small_log = main_worker.log, small_worker.log
    codes = main_worker.stop(), small_worker.stop()
    logs = main_log + small_log
    new_rows = Task.objects.exclude(pk__in=rows_before).exclude(pk__in=submitted)
    chain_steps = new_rows.filter(chain_previous__in=submitted).count()
    extra_rows = new_rows.count() - chain_steps - len(orphans)
    noise = {
        "Future exception was never retrieved": logs.count("Future exception was never retrieved"),
        "Beautiful is better than ugly (this imported)": logs.count(
            "Beautiful is better than ugly"
        ),
        "fail_over failed": logs.count("fail_over failed"),
        "side loop ended": logs.count("side loop"),
        "refusal WARNING logged": logs.count("refused, nothing imported"),
    }
    for key, count in noise.items():
        bad = count > 0 and key != "refusal WARNING logged"
        ROWS.append(Row("worker", f"worker log: {key!r}", f"{count}x", True, 0, server_error=bad))
    ROWS.append(
        Row(
            "worker",
            "new rows written by the worker for refused rows",
            str(extra_rows),
            True,
            max(extra_rows, 0),
        )
    )
    ROWS.append(
        Row(
            "worker",
            "next chain steps written (by design, for a chain whose step succeeded)",
            str(chain_steps),
            False,
            0,
        )
    )
    ROWS.append(Row("worker", "worker exit codes", f"{codes}", False, 0, server_error=any(codes)))
    TAIL[:] = [line for line in logs.splitlines() if "Traceback" in line or "Error" in line][:12]


if not SKIP_WORKER:
    worker_phase()

# ---------------------------------------------------------------------------------------
# Report

lines = [
    "| # | surface | input | status / outcome | rows written on refusal | note |",
    "|---|---|---|---|---|---|",
]
for number, row in enumerate(ROWS, 1):
    flag = " **5xx**" if row.server_error else ""
    lines.append(
        f"| {number} | {row.surface} | {row.label} | {row.outcome}{flag} | "
        f"{row.written if row.refused else '-'} | {row.note.replace('|', '/')[:200]} |"
    )
summary = [
    "| surface | inputs | statuses seen | 5xx | rows written on refusal |",
    "|---|---|---|---|---|",
]
by_surface: dict[str, list[Row]] = defaultdict(list)
for row in ROWS:
    by_surface[row.surface].append(row)
for surface, rows in by_surface.items():
    counts = Counter(row.outcome for row in rows)
    seen = ", ".join(f"{status} x{count}" for status, count in sorted(counts.items()))
    summary.append(
        f"| {surface} | {len(rows)} | {seen} | {sum(r.server_error for r in rows)} | "
        f"{sum(r.written for r in rows if r.refused)} |"
    )
report = "\n".join(
    [
        "# Hostile inputs: results",
        "",
        *summary,
        "",
        *lines,
        "",
        "Worker log lines with Traceback/Error (first 12):",
        "",
        *[f"    {line[:200]}" for line in TAIL],
    ]
)
results = Path(tempfile.gettempdir()) / "hostile-results.md"
results.write_text(report + "\n")
print(f"Written to {results}")
print(report)
sys.exit(1 if any(row.server_error for row in ROWS) else 0)
