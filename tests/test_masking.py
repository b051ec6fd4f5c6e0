"""Secrets in QTASKS are masked wherever settings are shown: ctx.get_config(), and so
the task's log, result, the worker's log, the admin and the API; errors about BROKER_URL."""

from __future__ import annotations

import json
import os
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_qtasks import app
from django_qtasks.brokers import broker_class_for
from django_qtasks.conf import qtasks_settings
from django_qtasks.masking import mask_url, masked
from django_qtasks.models import TaskStatus
from tests.admin_helpers import url
from tests.api_helpers import client_for, detail
from tests.conftest import wait_status
from tests.testapp import tasks

SECRET = "hunter2"
#: Keys of the project's own, each hiding SECRET somewhere.
USER_KEYS = {
    "RESULTS_DSN": f"postgres://reporter:{SECRET}@db.example.invalid:5432/results",
    "WEBHOOK_SECRET": SECRET,
    "api_token": SECRET,
    "SIGNING_KEY": SECRET,
    "VENDOR": {"Password": SECRET, "urls": [f"redis://:{SECRET}@cache.invalid:6379/0"]},
}


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("amqp://guest:guest@127.0.0.1:5672//", "amqp://guest:***@127.0.0.1:5672//"),
        ("redis://:p%40ss@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("amqp://user@host//", "amqp://user@host//"),
        ("django://", "django://"),
        ("someone@example.com", "someone@example.com"),
        ("http://[::1:bad@x", "http://[::1:bad@x"),
    ],
)
def test_mask_url_masks_the_password_only(text, shown):
    assert mask_url(text) == shown


def test_get_config_masks_secrets_and_the_settings_keep_them():
    broker = "amqp://guest:guest@127.0.0.1:5672//"
    options = {"password": SECRET, "sentinel_kwargs": {"password": SECRET}, "max_retries": 3}
    keys = {"BROKER_URL": broker, "BROKER_TRANSPORT_OPTIONS": options, **USER_KEYS}
    with override_settings(QTASKS=keys):
        config = tasks.echo.ctx.get_config()
        assert SECRET not in json.dumps(config)
        assert config["BROKER_URL"] == "amqp://guest:***@127.0.0.1:5672//"
        assert config["BROKER_TRANSPORT_OPTIONS"] == {
            "password": "***",
            "sentinel_kwargs": {"password": "***"},
            "max_retries": 3,
        }
        assert config["RESULTS_DSN"] == "postgres://reporter:***@db.example.invalid:5432/results"
        assert config["WEBHOOK_SECRET"] == config["api_token"] == config["SIGNING_KEY"] == "***"
        assert config["VENDOR"] == {
            "Password": "***",
            "urls": ["redis://:***@cache.invalid:6379/0"],
        }
        # Everything else as it is.
        assert config["DEFAULT_QUEUE"] == "default"
        assert config["REDIS_CACHE_ALIAS"] is None
        # The code that needs the real values has them.
        assert broker == qtasks_settings.BROKER_URL
        assert options == qtasks_settings.BROKER_TRANSPORT_OPTIONS
        assert qtasks_settings.as_dict()["WEBHOOK_SECRET"] == SECRET
        assert tasks.echo.ctx.get_component("config").SIGNING_KEY == SECRET


def test_masked_leaves_empty_secrets_visible():
    # An unset secret is shown as unset: it hides nothing.
    assert masked({"PASSWORD": None, "TOKEN": "", "API_KEY": 0, "USER_KEYS": ["A"]}) == {
        "PASSWORD": None,
        "TOKEN": "",
        "API_KEY": "***",
        "USER_KEYS": ["A"],  # KEY only as a word of its own
    }


@pytest.mark.parametrize(
    "url", [f"nosuch://user:{SECRET}@host//", f"//user:{SECRET}@host/"], ids=["scheme", "none"]
)
def test_broker_url_errors_mask_the_password(url):
    with pytest.raises(ImproperlyConfigured) as raised:
        broker_class_for(url)
    assert SECRET not in str(raised.value)
    assert "user:***@host" in str(raised.value)


def test_a_task_that_logs_its_config_shows_no_secret_anywhere(
    start_worker, transactional_db, monkeypatch, admin_client
):
    extra = json.loads(os.environ.get("QTASKS_TEST_SETTINGS", "{}"))
    monkeypatch.setenv("QTASKS_TEST_SETTINGS", json.dumps({**extra, **USER_KEYS}))
    worker = start_worker("--queues", "masking")
    task = app.add_task("log_config", queue="masking")
    task = wait_status(task, timeout=60)
    assert task.status == TaskStatus.SUCCESS, task.traceback

    # The worker had the real keys, and showed them masked.
    assert task.returning["WEBHOOK_SECRET"] == "***"
    assert task.returning["RESULTS_DSN"].startswith("postgres://reporter:***@")
    broker_password = urlsplit(qtasks_settings.BROKER_URL).password  # amqp://guest:guest@...
    shown = {
        "result": json.dumps(task.returning),
        "log lines": json.dumps(task.logs),
        "worker log": worker.log,
        "API": client_for("root", superuser=True).get(detail(task)).content.decode(),
        "admin": admin_client.get(url("change", task.pk)).content.decode(),
    }
    assert "RESULTS_DSN" in shown["log lines"]  # the line is there, masked
    for where, text in shown.items():
        assert SECRET not in text, where
        if broker_password:
            assert f":{broker_password}@" not in text, where
