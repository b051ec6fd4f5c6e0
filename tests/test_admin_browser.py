"""End to end in headless Chromium: log in, filter, open a task, cancel a running one,
add a schedule and run it, look at a chain.

A real worker runs the tasks; the admin is served by pytest-django's live
server. Screenshots go to ``QTASKS_SCREENSHOTS`` (a directory, e.g.
``docs/img``) when it is set, else to the test's temporary directory.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect, sync_playwright

from django_qtasks import app, chain
from django_qtasks.beat import sync_declared_schedules
from django_qtasks.models import Schedule, Task, TaskStatus
from tests.admin_sample import populate
from tests.conftest import wait_status
from tests.testapp import tasks

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.db_independent,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"
    ),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(scope="module")
def browser(shared_worker: Any) -> Iterator[Browser]:
    # Playwright's sync API runs an event loop in this thread, and Django
    # refuses ORM calls from a thread with a running loop unless told. The
    # worker is started first, so that it does not inherit this.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()
    if previous is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("QTASKS_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_admin(
    browser: Browser, live_server: Any, color_scheme: str = "light", scale: float = 1
) -> Page:
    context = browser.new_context(
        viewport={"width": 1600, "height": 1000},
        device_scale_factor=scale,  # below 1: smaller screenshots of the same page
        color_scheme=color_scheme,  # type: ignore[arg-type]
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/?next=/admin/django_qtasks/task/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    expect(page.locator("#changelist")).to_be_visible()
    return page


def test_log_in_filter_and_open_a_task(browser, live_server, admin_user, worker, shots):
    rich = populate()
    # app.add_task, not the handle's: AsyncTask.add_task is awaitable under a running loop.
    sleepers = [app.add_task("async_sleeper", 60), app.add_task("sync_sleeper", 60)]
    try:
        for sleeper in sleepers:
            wait_status(sleeper, TaskStatus.PROCESS)
        page = open_admin(browser, live_server)
        expect(page.locator("#result_list .qtasks-status-process")).to_have_count(2)
        page.click("#toggle-nav-sidebar")  # more room for the columns
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=shots / "admin-changelist.png")

        page.locator("#changelist-filter").get_by_role("link", name="error", exact=True).click()
        expect(page).to_have_url(re.compile(r"status__exact=error"))
        expect(page.locator("#result_list .qtasks-status-error").first).to_be_visible()
        expect(page.locator("#result_list .qtasks-badge:not(.qtasks-status-error)")).to_have_count(
            0
        )

        page.fill("#searchbar", str(rich.uuid)[:8])
        page.press("#searchbar", "Enter")
        page.locator("#changelist-filter").get_by_role("link", name="All").first.click()
        page.get_by_role("link", name=str(rich.uuid)[:8]).click()
        expect(page.locator(".field-status_badge")).to_contain_text("success")
        expect(page.locator(".field-log_lines")).to_contain_text("3 contacts without e-mail")
        expect(page.locator(".field-result_pretty")).to_contain_text('"pushed": 118')
        expect(page.locator(".field-retry_of_link a")).to_have_count(1)
        page.screenshot(path=shots / "admin-task-detail.png", full_page=True)

        page.goto(f"{live_server.url}/admin/django_qtasks/task/dashboard/?refresh=1")
        expect(page.locator("[data-count=process]")).to_have_text("2")
        expect(page.locator("#qtasks-workers")).to_contain_text(worker.log.split("Worker ")[1][:8])
        expect(page.locator("#qtasks-workers a")).to_have_count(2)  # its running tasks
        expect(page.locator("#qtasks-chart .qtasks-fill-success").first).to_be_visible()
        updated = page.locator("#qtasks-updated").inner_text()
        expect(page.locator("#qtasks-updated")).not_to_have_text(updated, timeout=5_000)
        page.goto(f"{live_server.url}/admin/django_qtasks/task/dashboard/")
        expect(page.locator("[data-count=process]")).to_have_text("2")
        page.screenshot(path=shots / "admin-dashboard.png", full_page=True)

        dark = open_admin(browser, live_server, color_scheme="dark")
        dark.goto(f"{live_server.url}/admin/django_qtasks/task/dashboard/")
        expect(dark.locator("[data-count=process]")).to_have_text("2")
        dark.screenshot(path=shots / "admin-dashboard-dark.png", full_page=True)
    finally:
        for sleeper in sleepers:
            sleeper.cancel("test over")
        for sleeper in sleepers:
            wait_status(sleeper)


@pytest.mark.parametrize("sleeper", ["async_sleeper", "sync_sleeper"])
def test_cancel_a_running_task_from_its_page(browser, live_server, admin_user, worker, sleeper):
    running = app.add_task(sleeper, 60)
    # Started, not only claimed: a claimed task can go back to the queue
    # (held ahead behind a long run), and its cancel is then another one.
    worker.wait_for_log(f"Task {running.uuid} ({sleeper}) started", timeout=60)
    page = open_admin(browser, live_server)
    page.get_by_role("link", name=str(running.uuid)[:8]).click()
    expect(page.locator(".field-status_badge")).to_contain_text("process")
    page.get_by_role("link", name="Cancel task").click()
    page.fill("#id_reason", "Stopped from the browser")
    page.get_by_role("button", name="Cancel task").click()
    expect(page.locator(".messagelist")).to_contain_text("Asked 1 running task to stop")
    # The page refreshes itself until the worker has stopped the task.
    expect(page.locator(".field-status_badge")).to_contain_text("cancel")
    expect(page.locator(".field-cancel_reason")).to_contain_text("Stopped from the browser")
    expect(page.locator(".field-canceled_by")).to_contain_text("admin")
    done = Task.objects.get(pk=running.pk)
    assert (done.status, done.cancel_reason, done.canceled_by) == (
        "cancel",
        "Stopped from the browser",
        "admin",
    )
    worker.wait_for_log(f"Task {running.uuid} was canceled due to: Stopped from the browser")


def test_add_a_schedule_fix_its_cron_run_it_and_see_a_chain(
    browser, live_server, admin_user, worker, shots
):
    sync_declared_schedules()  # the schedules declared in code: hourly, minute_report
    now = timezone.now()
    report = Task.objects.create(
        task_name="options_report",
        status=TaskStatus.SUCCESS,
        created_at=now - timedelta(hours=2),
        started_at=now - timedelta(hours=2),
        finished_at=now - timedelta(hours=2) + timedelta(seconds=3),
    )
    weekday = Schedule(
        name="weekday-report",
        task_name="options_report",
        cron="0 9 * * MON-FRI",
        source="settings",
        run_count=41,
        last_run_at=report.created_at,
        last_task=report,
    )
    paused = Schedule(name="cleanup", task_name="echo", interval=timedelta(hours=6), enabled=False)
    for row in (weekday, paused):
        row.next_run_at = row.next_run_after(now) if row.enabled else None
        row.save()

    page = open_admin(browser, live_server, scale=0.75)  # screenshots 1200 pixels wide
    page.goto(f"{live_server.url}/admin/django_qtasks/schedule/add/")
    page.fill("#id_name", "morning-digest")
    page.select_option("#id_task_name", "echo")
    page.fill("#id_cron", "61 * * * *")
    page.fill("#id_args", '["digest"]')
    page.click("input[name=_save]")
    error = page.locator(".field-cron .errorlist")
    expect(error).to_contain_text("Invalid cron expression '61 * * * *': Bad minute. Use five")
    expect(page.locator("#id_cron")).to_have_value("61 * * * *")  # kept, to be fixed
    assert not Schedule.objects.filter(name="morning-digest").exists()

    page.fill("#id_cron", "*/5 * * * *")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("morning-digest” was added successfully")
    row = page.locator("#result_list tr", has_text="morning-digest")
    expect(row.locator(".field-timing")).to_contain_text("Every fifth minute of every hour")
    expect(row.locator(".field-next_run")).to_contain_text(
        re.compile(r"in (\d+\s+minutes?|less than a minute)|due")
    )
    created = Schedule.objects.get(name="morning-digest")
    assert created.next_run_at is not None
    assert created.next_run_at.minute % 5 == 0

    row.locator("input.action-select").check()
    page.select_option("select[name=action]", "run_selected")
    page.click("button[name=index]")
    expect(page.locator(".messagelist")).to_contain_text("Enqueued 1 run: echo")
    run = Task.objects.get(schedule=created)
    wait_status(run, TaskStatus.SUCCESS)
    page.reload()
    expect(row.locator(".field-last_task_link .qtasks-status-success")).to_be_visible()
    expect(row.locator(".field-runs_link")).to_have_text("1")
    page.click("#toggle-nav-sidebar")  # more room for the columns
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=shots / "admin-schedules.png")

    row.locator(".field-last_task_link a").click()
    expect(page.locator(".field-status_badge")).to_contain_text("success")
    expect(page.locator(".field-schedule_link")).to_contain_text("morning-digest")
    page.locator(".field-schedule_link").get_by_role("link", name="all its tasks").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#changelist-filter")).to_contain_text("morning-digest")

    # A chain whose third step fails: the fourth never runs.
    steps = chain(
        tasks.echo.s([1]), tasks.push.s(2), tasks.retry_wrong_exc.s(), tasks.push.s(4)
    ).add_task(timeout=20)
    assert [step.status for step in steps] == ["success", "success", "error"]
    page = open_admin(browser, live_server)
    page.goto(f"{live_server.url}/admin/django_qtasks/task/{steps[1].pk}/change/")
    section = page.locator("fieldset", has=page.locator(".field-chain_table"))
    expect(section.locator("tr.qtasks-chain-this")).to_contain_text("push")
    expect(section.locator("tr.qtasks-chain-step .qtasks-badge")).to_have_text(
        ["success", "success", "error"]
    )
    expect(section.locator("tr.qtasks-chain-pending")).to_contain_text("not run")
    expect(section).to_contain_text(
        "The chain stopped: step 3 (retry_wrong_exc) ended with status error. "
        "The step after it did not run."
    )
    section.scroll_into_view_if_needed()
    box = section.bounding_box()
    assert box is not None
    page.screenshot(path=shots / "admin-chain.png", clip={**box, "width": min(box["width"], 800)})
    section.locator("tr.qtasks-chain-step a").nth(2).click()
    expect(page.locator(".field-traceback_pretty")).to_contain_text("ValueError: not retried")
