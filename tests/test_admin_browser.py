"""End to end in headless Chromium: log in, filter, open a task, cancel a running one.

A real worker runs the tasks; the admin is served by pytest-django's live
server. Screenshots go to ``QTASKS_SCREENSHOTS`` (a directory, e.g.
``docs/img``) when it is set, else to the test's temporary directory.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from django_qtasks import app
from django_qtasks.models import Task, TaskStatus
from tests.admin_sample import populate
from tests.conftest import wait_status

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
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


def open_admin(browser: Browser, live_server: Any, color_scheme: str = "light") -> Page:
    context = browser.new_context(
        viewport={"width": 1600, "height": 1000},
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
    wait_status(running, TaskStatus.PROCESS)
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
