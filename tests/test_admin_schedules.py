"""Periodic schedules and chains in the admin, through Django's test client."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from django_qtasks import chain
from django_qtasks.beat import sync_declared_schedules
from django_qtasks.models import Schedule, Task, TaskStatus
from tests.admin_helpers import CHANGELIST, make, messages_of, staff, text, url
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

SCHEDULES = "admin:django_qtasks_schedule_changelist"


def schedule_url(name: str, *args: Any) -> str:
    return reverse(f"admin:django_qtasks_schedule_{name}", args=args)


def schedule(name: str = "nightly", **fields: Any) -> Schedule:
    defaults: dict[str, Any] = {"task_name": "echo", "cron": "0 9 * * MON-FRI", "args": [1]}
    defaults.update(fields)
    row = Schedule(name=name, **defaults)
    row.next_run_at = row.next_run_after(timezone.now()) if row.enabled else None
    row.save()
    return row


def form_data(**values: Any) -> dict[str, Any]:
    data = {
        "name": "every five",
        "task_name": "echo",
        "description": "",
        "cron": "*/5 * * * *",
        "interval": "",
        "args": '["hello"]',
        "kwargs": "{}",
        "queue": "",
        "priority": "",
        "enabled": "on",
        "expires_at_0": "",
        "expires_at_1": "",
    }
    data.update(values)
    return {key: value for key, value in data.items() if value is not None}


def act(client: Any, action: str, rows: list[Schedule]) -> Any:
    payload = {"action": action, "_selected_action": [str(row.pk) for row in rows]}
    return client.post(reverse(SCHEDULES), payload, follow=True)


def field_html(page: str, name: str) -> str:
    """The form row of one field: its label, input and errors."""
    match = re.search(rf'<div class="form-row[^"]*field-{name}[^"]*">(.*?)</fieldset>', page, re.S)
    assert match, f"no field {name}"
    return match.group(1).split('<div class="form-row')[0]


# The changelist -----------------------------------------------------------------


def test_changelist_shows_timing_next_run_last_task_and_source(admin_client):
    last = make(TaskStatus.SUCCESS)
    cron = schedule(last_task=last, run_count=3, last_run_at=timezone.now())
    interval = schedule("often", cron="", interval=timedelta(minutes=5), task_name="push")
    off = schedule("paused", enabled=False, source="settings")
    page = text(admin_client.get(reverse(SCHEDULES))).replace("\xa0", " ")
    assert '<code class="qtasks-nowrap">0 9 * * MON-FRI</code>' in page
    assert "At 09:00 on Monday through Friday" in page
    assert "every 0:05:00" in page
    assert re.search(r'"qtasks-quiet">in [45] minutes</span>', page)  # the interval's next run
    assert f'href="{url("change", last.pk)}"><code>{str(last.pk)[:8]}</code></a>' in page
    assert '<span class="qtasks-badge qtasks-status-success">success</span>' in page
    assert f'{reverse(CHANGELIST)}?schedule__id__exact={cron.pk}"' in page
    assert f'{reverse(CHANGELIST)}?schedule__id__exact={interval.pk}"' in page
    assert ">settings</span>" in page
    assert page.count('alt="False"') == 4  # one-off of all three, enabled of "paused"
    assert off.next_run_at is None


def test_changelist_runs_few_queries_whatever_the_number_of_rows(
    admin_client, django_assert_max_num_queries
):
    def add(count: int, start: int) -> None:
        for index in range(start, start + count):
            schedule(f"s{index}", last_task=make(TaskStatus.ERROR), run_count=index)

    add(3, 0)
    with django_assert_max_num_queries(6) as few:
        assert admin_client.get(reverse(SCHEDULES)).status_code == 200
    add(60, 3)
    with django_assert_max_num_queries(6) as many:
        page = text(admin_client.get(reverse(SCHEDULES)))
    assert page.count("qtasks-status-error") == 63
    assert len(many.captured_queries) == len(few.captured_queries)
    with django_assert_max_num_queries(6):
        filtered = admin_client.get(reverse(SCHEDULES), {"enabled__exact": "1", "q": "s1"})
    assert filtered.status_code == 200


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"enabled__exact": "0"}, {"paused"}),
        ({"source__exact": "code"}, {"hourly", "minute_report"}),  # tests' and demo's
        ({"task_name": "push"}, {"pusher"}),
        ({"q": "nigh"}, {"nightly"}),
        ({"q": "PUSH"}, {"pusher"}),
    ],
)
def test_filters_and_search(admin_client, params, expected):
    schedule("nightly")
    schedule("paused", enabled=False)
    schedule("pusher", task_name="push")
    sync_declared_schedules()  # "hourly", declared in code
    response = admin_client.get(reverse(SCHEDULES), params)
    assert {row.name for row in response.context["cl"].result_list} == expected


# Adding and changing --------------------------------------------------------------


def test_add_a_schedule_with_a_cron_expression_shows_its_next_run(admin_client):
    form = text(admin_client.get(schedule_url("add")))
    assert '<option value="push">push</option>' in form  # registered tasks to choose from
    assert 'placeholder="*/5 * * * *"' in form
    before = timezone.now()
    response = admin_client.post(schedule_url("add"), form_data(), follow=True)
    row = Schedule.objects.get(name="every five")
    assert messages_of(response) == [
        f'The schedule “<a href="{schedule_url("change", row.pk)}">every five</a>” was added '
        "successfully."
    ]
    assert (row.task_name, row.cron, row.args, row.kwargs, row.source) == (
        "echo",
        "*/5 * * * *",
        ["hello"],
        {},
        "admin",
    )
    assert row.next_run_at is not None
    assert before < row.next_run_at <= before + timedelta(minutes=5)
    assert row.next_run_at.minute % 5 == 0
    page = text(response)  # back on the list
    assert "Every fifth minute of every hour" in page
    assert re.search(r'"qtasks-quiet">(in \d+\s+minutes?|in less than a minute|due)</span>', page)
    page = text(admin_client.get(schedule_url("change", row.pk)))
    assert "Every fifth minute of every hour" in field_html(page, "timing")
    assert "Run now" in page


def test_add_an_interval_schedule_with_empty_arguments(admin_client):
    data = form_data(
        name="often", task_name="decoded", cron="", interval="00:10:00", args="", kwargs=""
    )
    response = admin_client.post(schedule_url("add"), data)
    assert response.status_code == 302
    row = Schedule.objects.get(name="often")
    assert (row.interval, row.args, row.kwargs) == (timedelta(minutes=10), [], {})
    assert timedelta(minutes=9) < row.next_run_at - timezone.now() <= timedelta(minutes=10)


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        (
            {"cron": "61 * * * *"},
            "cron",
            "Invalid cron expression &#x27;61 * * * *&#x27;: Bad minute. Use five fields: "
            "minute hour day-of-month month day-of-week",
        ),
        ({"cron": "* * *"}, "cron", "Wrong number of fields"),
        ({"cron": ""}, "cron", "Give either a cron expression or an interval (one of the two)."),
        (
            {"interval": "00:05:00"},
            "cron",
            "Give either a cron expression or an interval (one of the two).",
        ),
        ({"cron": "", "interval": "-00:05:00"}, "interval", "The interval must be positive."),
        ({"args": '{"a": 1}'}, "args", "Arguments must be a JSON list, e.g. [1, 2]."),
        ({"kwargs": "[1]"}, "kwargs", "Keyword arguments must be a JSON object"),
        ({"args": "[1,"}, "args", "Enter a valid JSON."),
        ({"args": "[NaN]"}, "args", "NaN and infinity cannot be stored as JSON."),
        # What the database would refuse (a 500 on PostgreSQL), and what json cannot read.
        ({"args": '["a\\u0000b"]'}, "args", "U+0000 at character 1 of args[0]"),
        ({"args": '["\\ud800"]'}, "args", "U+D800 at character 0 of args[0]"),
        ({"kwargs": '{"\\udfff": 1}'}, "kwargs", "U+DFFF at character 0 of a key of kwargs"),
        ({"args": "[" + "9" * 5000 + "]"}, "args", "Enter a valid JSON."),
        ({"args": "[" * 100_000 + "]" * 100_000}, "args", "Enter a valid JSON."),
        ({"task_name": "no_such_task"}, "task_name", "Select a valid choice."),
        ({"name": "hourly"}, "name", "A schedule named hourly is declared in code or settings"),
    ],
)
def test_a_bad_schedule_is_refused_with_the_problem_next_to_its_field(
    admin_client, values, field, message
):
    response = admin_client.post(schedule_url("add"), form_data(**values))
    assert response.status_code == 200
    page = text(response)
    assert "Please correct the error below." in page
    errors = field_html(page, field)
    assert 'class="errorlist' in errors
    assert message in errors
    assert not Schedule.objects.exists()


def test_changing_the_timing_gives_a_new_next_run_and_keeps_what_the_beat_wrote(admin_client):
    last = make(TaskStatus.SUCCESS)
    row = schedule(run_count=7, last_task=last, next_run_at=timezone.now() - timedelta(days=1))
    Schedule.objects.filter(pk=row.pk).update(next_run_at=timezone.now() - timedelta(days=1))
    described = form_data(name="nightly", cron=row.cron, args="[1]", description="Mornings")
    admin_client.post(schedule_url("change", row.pk), described)
    unchanged = Schedule.objects.get(pk=row.pk)
    assert unchanged.description == "Mornings"
    assert unchanged.next_run_at < timezone.now()  # not a timing change: left to the beat

    # Meanwhile the beat runs it: the form's save must not undo that.
    Schedule.objects.filter(pk=row.pk).update(run_count=8, last_run_at=timezone.now())
    admin_client.post(schedule_url("change", row.pk), {**described, "cron": "*/5 * * * *"})
    changed = Schedule.objects.get(pk=row.pk)
    assert changed.cron == "*/5 * * * *"
    assert timezone.now() < changed.next_run_at <= timezone.now() + timedelta(minutes=5)
    assert (changed.run_count, changed.last_task_id) == (8, last.pk)
    assert changed.last_run_at is not None

    disabled = form_data(name="nightly", cron="*/5 * * * *", args="[1]", enabled=None)
    admin_client.post(schedule_url("change", row.pk), disabled)
    assert Schedule.objects.get(pk=row.pk).next_run_at is None


def test_an_expiry_in_the_past_leaves_no_next_run_and_says_so(admin_client):
    past = timezone.localtime() - timedelta(days=1)
    data = form_data(expires_at_0=past.strftime("%Y-%m-%d"), expires_at_1="00:00:00")
    response = admin_client.post(schedule_url("add"), data, follow=True)
    assert "“every five” is enabled but has no next run: its expiry has passed." in (
        messages_of(response)
    )
    assert Schedule.objects.get().next_run_at is None


# Schedules declared in code or settings ---------------------------------------------


def test_a_schedule_declared_in_code_has_read_only_task_timing_and_arguments(admin_client):
    sync_declared_schedules()
    row = Schedule.objects.get(name="hourly")
    assert (row.source, row.interval) == ("code", timedelta(hours=1))
    page = text(admin_client.get(schedule_url("change", row.pk)))
    assert "Declared in code, by @app.task(schedule=...) on hourly." in page
    for name in ("name", "task_name", "cron", "interval", "args", "kwargs", "queue", "priority"):
        assert f'name="{name}"' not in page, name
        assert f"field-{name}" in page, name  # shown, read-only
    assert "every 1:00:00" in page
    for name in ("enabled", "one_off", "expires_at_0"):
        assert f'name="{name}"' in page, name
    assert schedule_url("delete", row.pk) not in page
    assert admin_client.get(schedule_url("delete", row.pk)).status_code == 403
    bulk = admin_client.post(
        reverse(SCHEDULES),
        {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"},
    )
    assert bulk.status_code == 403  # deleting it needs a permission nobody has
    assert Schedule.objects.filter(pk=row.pk).exists()

    # What it posts for a read-only field is ignored; the rest is saved.
    response = admin_client.post(
        schedule_url("change", row.pk),
        form_data(name="renamed", cron="* * * * *", interval="", enabled=None, one_off="on"),
        follow=True,
    )
    assert messages_of(response) == [
        f'The schedule “<a href="{schedule_url("change", row.pk)}">hourly</a>” was changed '
        "successfully."
    ]
    row.refresh_from_db()
    assert (row.name, row.cron, row.interval) == ("hourly", "", timedelta(hours=1))
    assert (row.enabled, row.one_off, row.next_run_at) == (False, True, None)


def test_a_declared_schedule_whose_task_is_gone_shows_why_and_can_still_be_disabled(
    admin_client,
):
    row = schedule("legacy", task_name="removed_task", source="settings")
    page = text(admin_client.get(schedule_url("change", row.pk)))
    assert 'Declared in settings, in QTASKS["SCHEDULES"]["legacy"].' in page
    problems = page.split('class="errornote qtasks-declared-problems"')[1].split("</div>")[0]
    assert "<li>task name: No task named &#x27;removed_task&#x27; is registered.</li>" in problems
    response = admin_client.post(schedule_url("change", row.pk), form_data(enabled=None))
    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.enabled, row.next_run_at) == (False, None)


# Run now, Enable, Disable --------------------------------------------------------------


def test_run_now_enqueues_a_task_linked_to_each_schedule(admin_client):
    first, second = schedule("nightly"), schedule("pusher", task_name="push", args=[2, [1]])
    response = act(admin_client, "run_selected", [first, second])
    runs = {row.schedule_id: row for row in Task.objects.filter(schedule__isnull=False)}
    assert set(runs) == {first.pk, second.pk}
    assert (runs[second.pk].task_name, runs[second.pk].args) == ("push", [2, [1]])
    [message] = messages_of(response)
    assert message.startswith("Enqueued 2 runs: ")
    for row in (first, second):
        task = runs[row.pk]
        assert f'<a href="{url("change", task.pk)}">{task.task_name} {str(task.pk)[:8]}</a>' in (
            message
        )
        assert f"({row.name})" in message
        row.refresh_from_db()
        assert (row.run_count, row.last_task_id) == (1, task.pk)
        assert row.last_run_at is not None
    assert f'<a href="{url("change", runs[first.pk].pk)}">' in text(response)  # not escaped
    assert LogEntry.objects.filter(change_message=f"Ran now: task {runs[first.pk].pk}").exists()


def test_run_now_says_which_schedules_could_not_run(admin_client):
    ok, gone = schedule("nightly"), schedule("legacy", task_name="removed_task")
    response = act(admin_client, "run_selected", [ok, gone])
    [message] = messages_of(response)
    assert message.startswith("Enqueued 1 run: ")
    assert message.endswith(
        "; 1 schedule could not run because its task is not registered: legacy (removed_task)."
    )
    assert response.context["messages"]._loaded_messages[0].tags == "warning"
    assert Task.objects.filter(schedule=gone).count() == 0


def test_run_now_button_of_a_schedule_page(admin_client):
    row = schedule()
    page = text(admin_client.get(schedule_url("change", row.pk)))
    assert f'action="{schedule_url("run", row.pk)}"' in page
    assert admin_client.get(schedule_url("run", row.pk)).status_code == 405  # POST only
    response = admin_client.post(schedule_url("run", row.pk), follow=True)
    assert response.redirect_chain[-1][0] == schedule_url("change", row.pk)
    task = Task.objects.get(schedule=row)
    assert messages_of(response)[0].startswith(
        f'Enqueued 1 run: <a href="{url("change", task.pk)}">echo'
    )
    assert admin_client.post(schedule_url("run", 999999)).status_code == 404


def test_run_now_needs_the_run_schedule_permission():
    row = schedule()
    client = staff("view_schedule", "change_schedule")
    page = text(client.get(reverse(SCHEDULES)))
    assert 'value="run_selected"' not in page
    assert 'value="disable_selected"' in page
    assert schedule_url("run", row.pk) not in text(client.get(schedule_url("change", row.pk)))
    assert client.post(schedule_url("run", row.pk)).status_code == 403
    act(client, "run_selected", [row])
    assert not Task.objects.exists()

    runner = staff("view_schedule", "run_schedule")
    assert 'value="run_selected"' in text(runner.get(reverse(SCHEDULES)))
    assert 'value="disable_selected"' not in text(runner.get(reverse(SCHEDULES)))
    assert messages_of(act(runner, "run_selected", [row]))[0].startswith("Enqueued 1 run: ")
    assert runner.post(schedule_url("run", row.pk)).status_code == 302
    assert Task.objects.filter(schedule=row).count() == 2


def test_enable_and_disable_selected(admin_client):
    on = schedule("on")
    off = schedule("off", enabled=False)
    expired = schedule("expired", enabled=False, expires_at=timezone.now() - timedelta(hours=1))
    response = act(admin_client, "enable_selected", [on, off, expired])
    assert messages_of(response) == [
        "Enabled 1 schedule; 1 schedule was already enabled; 1 schedule could not be enabled "
        "because it has expired (change its expiry first)."
    ]
    off.refresh_from_db()
    assert off.enabled
    assert off.next_run_at is not None
    assert off.next_run_at > timezone.now()
    assert not Schedule.objects.get(pk=expired.pk).enabled

    response = act(admin_client, "disable_selected", [on, off, expired])
    assert messages_of(response) == ["Disabled 2 schedules; 1 schedule was already disabled."]
    for row in (on, off):
        row.refresh_from_db()
        assert (row.enabled, row.next_run_at) == (False, None)
    assert LogEntry.objects.filter(change_message="Disabled").count() == 2


# The task side: a task's schedule, the tasks of a schedule, chains -----------------------


def test_a_task_page_links_to_its_schedule_and_the_schedule_to_its_tasks(admin_client):
    row = schedule()
    runs = [make(TaskStatus.SUCCESS, schedule=row), make(schedule=row)]
    other = make()
    page = text(admin_client.get(url("change", runs[0].pk)))
    link = f'<a href="{schedule_url("change", row.pk)}" class="qtasks-schedule-link">nightly</a>'
    assert link in page
    tasks_url = f"{reverse(CHANGELIST)}?schedule__id__exact={row.pk}"
    assert f'href="{tasks_url}"' in page
    assert "field-schedule_link" not in text(admin_client.get(url("change", other.pk)))
    assert f'href="{tasks_url}"' in text(admin_client.get(schedule_url("change", row.pk)))

    listed = admin_client.get(tasks_url)
    assert {task.pk for task in listed.context["cl"].result_list} == {task.pk for task in runs}
    assert "By schedule" in text(listed)  # the filter says which schedule
    assert f'<a href="?schedule__id__exact={row.pk}">nightly</a>' in text(listed)
    assert admin_client.get(reverse(CHANGELIST)).context["cl"].has_filters
    assert "By schedule" not in text(admin_client.get(reverse(CHANGELIST)))
    wrong = admin_client.get(reverse(CHANGELIST), {"schedule__id__exact": "x"})
    assert wrong.url.endswith("?e=1")


def test_a_chain_that_stopped_shows_its_steps_and_what_did_not_run(admin_client):
    rest = [
        {"task_name": "push", "args": [2], "kwargs": {}},
        {"task_name": "push", "args": [3], "kwargs": {"note": "last"}},
    ]
    first = make(TaskStatus.SUCCESS, args=[[1]], returning=[1], chain_steps=rest)
    second = make(
        TaskStatus.ERROR,
        task_name="push",
        args=[2, [1]],
        chain_previous=first,
        chain_steps=rest[1:],
    )
    page = text(admin_client.get(url("change", second.pk)))
    chain_html = page.split('class="qtasks-table qtasks-chain"')[1].split("</fieldset>")[0]
    rows = re.findall(r"<tr class=\"([^\"]+)\">(.*?)</tr>", chain_html, re.S)
    assert [css for css, _html in rows] == [
        "qtasks-chain-step",
        "qtasks-chain-step qtasks-chain-this",
        "qtasks-chain-pending qtasks-quiet",
    ]
    assert url("change", first.pk) in rows[0][1]
    assert "qtasks-status-success" in rows[0][1]
    assert "echo([1])" in rows[0][1]
    assert "(this task)" in rows[1][1]
    assert "qtasks-status-error" in rows[1][1]
    assert ">not run<" in rows[2][1]
    assert "push(3, &lt;previous result&gt;, note=&quot;last&quot;)" in rows[2][1]
    assert (
        "The chain stopped: step 2 (push) ended with status error. The step after it did not run."
    ) in chain_html
    first_page = text(admin_client.get(url("change", first.pk)))
    assert "(this task)</strong>" in first_page.split(url("change", first.pk))[1][:200]
    assert "Chain</h2>" not in text(admin_client.get(url("change", make().pk)))


def test_a_chain_still_running_shows_the_steps_to_come(admin_client):
    first = make(
        TaskStatus.PROCESS,
        chain_steps=[{"task_name": "push", "args": [2], "kwargs": {}}],
    )
    page = text(admin_client.get(url("change", first.pk)))
    assert ">not run yet<" in page
    assert "The chain is at step 1 of 2 (process)." in page


@pytest.mark.django_db(transaction=True)
def test_a_real_chain_run_by_a_worker(admin_client, worker):
    steps = chain(tasks.echo.s([1]), tasks.push.s(2)).add_task(timeout=20)
    assert [step.status for step in steps] == ["success", "success"]
    assert steps[1].returning == [1, 2]
    for step in steps:
        page = text(admin_client.get(url("change", step.pk)))
        assert "The chain is done: all 2 steps succeeded." in page
        assert url("change", steps[0].pk) in page
        assert url("change", steps[1].pk) in page
        assert "push(2, [1])" in page
        assert "not run" not in page
