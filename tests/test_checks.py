"""settings.QTASKS: defaults, reloads, and the system checks of docs/checks.md."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from django.test import override_settings

from django_qtasks.checks import check_settings
from django_qtasks.conf import OPTIONS, qtasks_settings
from tests.testapp import tasks

HINT = "See the settings reference in the django-qtasks docs."


def qtasks_errors() -> list[checks.CheckMessage]:
    """What ``manage.py check`` reports for django-qtasks."""
    return [m for m in checks.run_checks() if (m.id or "").startswith("django_qtasks.")]


def ids(messages: list[checks.CheckMessage]) -> list[str]:
    return [message.id for message in messages]


# --- Valid settings ------------------------------------------------------------------


@pytest.mark.django_db  # Django's own model checks (JSONField) ask the database
def test_project_settings_pass_the_checks():
    assert check_settings() == []
    assert qtasks_errors() == []
    out, err = io.StringIO(), io.StringIO()
    # With the database's own checks, which Django before 6.1 runs only when asked.
    call_command("check", databases=["default"], stdout=out, stderr=err)
    if connection.vendor == "mysql":
        # The one warning docs/getting-started.md tells MySQL and MariaDB users of:
        # the claim index's condition is dropped there (it covers every row).
        assert "django_qtasks.Task: (models.W037)" in err.getvalue()
        assert "System check identified 1 issue (0 silenced)." in err.getvalue()
    else:
        assert "System check identified no issues" in out.getvalue()


@pytest.mark.django_db  # Django's own model checks (JSONField) ask the database
@pytest.mark.parametrize(
    "value",
    [
        {},
        {"BROKER_URL": "django://", "DEFAULT_QUEUE": "main", "CONCURRENCY": 1},
        {"POLL_INTERVAL": 0.01, "RETRY_BACKOFF": 0, "REDIS_CACHE_ALIAS": None},
        {"HEARTBEAT_INTERVAL": 30, "HEARTBEAT_TIMEOUT": 31, "SHUTDOWN_TIMEOUT": 0},
        {"REDIS_CACHE_ALIAS": "qtasks", "QUEUE_PREFIX": "myproject"},  # (W002 without it)
        # The project's own keys, declared: never checked.
        {"MY_OWN_KEY": object(), "USER_KEYS": ["MY_OWN_KEY"]},
        {"CONCURENCY": 3, "USER_KEYS": ("CONCURENCY",)},
    ],
)
def test_valid_values_pass(value):
    with override_settings(QTASKS=value):
        assert check_settings() == []
        assert qtasks_errors() == []


def test_qtasks_setting_may_be_absent(settings):
    del settings.QTASKS
    assert check_settings() == []


# --- E001: wrong type or shape ---------------------------------------------------------


@pytest.mark.django_db  # Django's own model checks (JSONField) ask the database
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["CONCURRENCY", 10], "QTASKS must be a dict, not list ['CONCURRENCY', 10]."),
        ("django://", "QTASKS must be a dict, not str 'django://'."),
        (
            {"CONCURRENCY": "10"},
            "QTASKS['CONCURRENCY'] must be int (tasks a worker runs at once), not str '10'.",
        ),
        (
            {"CONCURRENCY": True},
            "QTASKS['CONCURRENCY'] must be int (tasks a worker runs at once), not bool True.",
        ),
        (
            {"CONCURRENCY": 2.0},
            "QTASKS['CONCURRENCY'] must be int (tasks a worker runs at once), not float 2.0.",
        ),
        (
            {"CONCURRENCY": 0},
            "QTASKS['CONCURRENCY'] must be int, at least 1 (tasks a worker runs at once), not 0.",
        ),
        (
            {"POLL_INTERVAL": -1},
            "QTASKS['POLL_INTERVAL'] must be int or float, more than 0 "
            "(seconds between polls of the database broker), not -1.",
        ),
        (
            # 0 would make the worker's look for due tasks spin.
            {"POLL_INTERVAL": 0},
            "QTASKS['POLL_INTERVAL'] must be int or float, more than 0 "
            "(seconds between polls of the database broker), not 0.",
        ),
        (
            {"HEARTBEAT_INTERVAL": 0.0},
            "QTASKS['HEARTBEAT_INTERVAL'] must be int or float, more than 0 "
            "(seconds between worker heartbeats), not 0.0.",
        ),
        (
            {"HEARTBEAT_TIMEOUT": 5},
            "QTASKS['HEARTBEAT_TIMEOUT'] (5) must be more than HEARTBEAT_INTERVAL (5.0): live "
            "workers would be taken for dead between two heartbeats, and their tasks run twice.",
        ),
        (
            {"REDELIVER_AFTER": 0},
            "QTASKS['REDELIVER_AFTER'] must be int or float, more than 0 (seconds a due task "
            "waits unclaimed after its message was sent before a worker sends it again), not 0.",
        ),
        (
            # Lost messages are looked for at the outbox sweeps.
            {"REDELIVER_AFTER": 1.5},
            "QTASKS['REDELIVER_AFTER'] (1.5) must be at least twice OUTBOX_INTERVAL (1.0): "
            "workers look for lost messages at their outbox sweeps, and would send again "
            "messages that a worker is about to receive.",
        ),
        (
            {"POLL_INTERVAL": "0.5"},
            "QTASKS['POLL_INTERVAL'] must be int or float "
            "(seconds between polls of the database broker), not str '0.5'.",
        ),
        (
            {"BROKER_URL": None},
            "QTASKS['BROKER_URL'] must be str (where tasks are queued), not NoneType None.",
        ),
        (
            {"PREFETCH": "8"},
            "QTASKS['PREFETCH'] must be 'auto' or int (tasks a worker claims ahead of its "
            "free slots), not str '8'.",
        ),
        (
            {"PREFETCH": -1},
            "QTASKS['PREFETCH'] must be 'auto' or int, 0 or more (tasks a worker claims ahead "
            "of its free slots), not -1.",
        ),
        (
            {"REDIS_CACHE_ALIAS": 1},
            "QTASKS['REDIS_CACHE_ALIAS'] must be str or None (a django-redis CACHES alias), "
            "not int 1.",
        ),
        (
            {"LOG_LINE_MAX_CHARS": 0},
            "QTASKS['LOG_LINE_MAX_CHARS'] must be int, at least 1 (longest log line kept with "
            "a task, in characters), not 0.",
        ),
        (
            {"RESULT_MAX_BYTES": "10MB"},
            "QTASKS['RESULT_MAX_BYTES'] must be int (largest result a task may store, in bytes "
            "of JSON), not str '10MB'.",
        ),
        (
            {"RESULT_MAX_BYTES": -1},
            "QTASKS['RESULT_MAX_BYTES'] must be int, at least 1 (largest result a task may "
            "store, in bytes of JSON), not -1.",
        ),
    ],
)
def test_e001_wrong_type_or_shape(value, message):
    with override_settings(QTASKS=value):
        errors = check_settings()
        assert ids(errors) == ["django_qtasks.E001"]
        assert errors[0].msg == message
        assert errors[0].hint == HINT
        assert errors[0].level == checks.ERROR
        assert ids(qtasks_errors()) == ["django_qtasks.E001"]


def test_e001_one_error_per_key_in_settings_order():
    with override_settings(QTASKS={"POLL_INTERVAL": -1, "CONCURRENCY": "10", "LOG_LINES": 2.5}):
        errors = check_settings()
    assert ids(errors) == ["django_qtasks.E001"] * 3
    assert [error.msg.split(" must ")[0] for error in errors] == [
        "QTASKS['CONCURRENCY']",
        "QTASKS['POLL_INTERVAL']",
        "QTASKS['LOG_LINES']",
    ]


def test_every_documented_option_is_type_checked():
    for key, option in OPTIONS.items():
        # (A list of strings is right for USER_KEYS: a list of a float is wrong everywhere.)
        with override_settings(QTASKS={key: [1.5]}):
            errors = check_settings()
        assert ids(errors) == ["django_qtasks.E001"], key
        assert errors[0].msg.startswith(f"QTASKS[{key!r}] must be {option.describe_types()} ")
        assert errors[0].msg.endswith("not list [1.5].")


# --- E002: unknown broker URL ------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "nope://x",
            "QTASKS['BROKER_URL'] = 'nope://x': no broker serves nope:// (known: django://",
        ),
        ("", "QTASKS['BROKER_URL'] = '' has no scheme; use 'django://' for the database."),
        (
            "localhost:6379",
            "QTASKS['BROKER_URL'] = 'localhost:6379': no broker serves localhost://",
        ),
    ],
)
def test_e002_unknown_broker_scheme(url, message):
    with override_settings(QTASKS={"BROKER_URL": url}):
        errors = check_settings()
    assert ids(errors) == ["django_qtasks.E002"]
    assert errors[0].msg.startswith(message)
    assert errors[0].hint == HINT


def test_e002_is_reported_along_with_e001():
    with override_settings(QTASKS={"CONCURRENCY": "10", "BROKER_URL": "nope://x"}):
        assert ids(check_settings()) == ["django_qtasks.E001", "django_qtasks.E002"]


# --- E003: REDIS_CACHE_ALIAS not in CACHES ---------------------------------------------------


def test_e003_cache_alias_not_in_caches():
    with override_settings(QTASKS={"REDIS_CACHE_ALIAS": "redis"}):
        errors = check_settings()
    assert ids(errors) == ["django_qtasks.E003"]
    assert errors[0].msg == (
        "QTASKS['REDIS_CACHE_ALIAS'] = 'redis' is not a key of CACHES "
        "(CACHES has: 'default', 'qtasks')."
    )
    assert errors[0].hint == "Name a django-redis cache from CACHES, or set it to None."


def test_e003_with_a_matching_cache_passes():
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "redis": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1"},
    }
    config = {"REDIS_CACHE_ALIAS": "redis", "QUEUE_PREFIX": "myproject"}
    with override_settings(CACHES=caches, QTASKS=config):
        assert check_settings() == []


# --- E004: REDIS_CACHE_ALIAS is not a django-redis cache ---------------------------------------


def test_e004_cache_alias_of_another_backend():
    with override_settings(QTASKS={"REDIS_CACHE_ALIAS": "default"}):
        errors = check_settings()
    assert ids(errors) == ["django_qtasks.E004"]
    assert errors[0].msg == (
        "QTASKS['REDIS_CACHE_ALIAS'] = 'default' names a cache whose BACKEND is "
        "'django.core.cache.backends.locmem.LocMemCache', not django-redis."
    )
    assert "django_redis.cache.RedisCache" in errors[0].hint


def test_all_three_at_once():
    value = {"CONCURRENCY": True, "BROKER_URL": "nope://x", "REDIS_CACHE_ALIAS": "redis"}
    with override_settings(QTASKS=value):
        assert ids(check_settings()) == [
            "django_qtasks.E001",
            "django_qtasks.E002",
            "django_qtasks.E003",
        ]


# --- W001: a key that is neither ours nor declared the project's own ---------------------


@pytest.mark.parametrize(
    ("key", "guess"),
    [
        ("CONCURENCY", "CONCURRENCY"),
        ("concurrency", "CONCURRENCY"),
        ("BROKER_ULR", "BROKER_URL"),
        ("HEARTBEAT_TIMOUT", "HEARTBEAT_TIMEOUT"),
        ("USER_KEY", "USER_KEYS"),
    ],
)
def test_misspelled_key_warns_with_the_key_it_resembles(key, guess):
    with override_settings(QTASKS={key: 3, "DEFAULT_QUEUE": "main"}):
        warnings = check_settings()
        assert ids(warnings) == ["django_qtasks.W001"]
        assert warnings[0].level == checks.WARNING
        assert warnings[0].msg == (
            f"QTASKS[{key!r}] is not a django-qtasks setting: nothing of django-qtasks reads it."
        )
        assert warnings[0].hint == (
            f"Did you mean {guess!r}? If it is a key of your own, list it in "
            f"QTASKS['USER_KEYS'] (e.g. 'USER_KEYS': [{key!r}])."
        )
        # Still kept, as every unknown key: a warning, not a refusal.
        assert qtasks_settings.as_dict()[key] == 3


def test_undeclared_key_far_from_ours_warns_without_a_guess():
    with override_settings(QTASKS={"REPORTS_BUCKET": "s3://x", 7: "seven"}):
        warnings = check_settings()
    assert ids(warnings) == ["django_qtasks.W001"] * 2
    assert warnings[0].hint == (
        "If it is a key of your own, list it in QTASKS['USER_KEYS'] "
        "(e.g. 'USER_KEYS': ['REPORTS_BUCKET'])."
    )
    assert "QTASKS[7]" in warnings[1].msg


def test_user_keys_declare_some_keys_only():
    value = {"GREETING": "hi", "GRETING": "typo", "USER_KEYS": ["GREETING"]}
    with override_settings(QTASKS=value):
        warnings = check_settings()
        assert [w.msg.split(" ")[0] for w in warnings] == ["QTASKS['GRETING']"]
        assert tasks.echo.ctx.get_config()["GREETING"] == "hi"


@pytest.mark.parametrize("value", ["GREETING", ["GREETING", 3]])
def test_user_keys_must_be_a_list_of_strings(value):
    with override_settings(QTASKS={"GREETING": "hi", "USER_KEYS": value}):
        errors = check_settings()
    assert ids(errors)[0] == "django_qtasks.E001"
    assert "QTASKS['USER_KEYS'] must be list or tuple" in errors[0].msg


@pytest.mark.django_db  # Django's own model checks (JSONField) ask the database
def test_manage_py_check_shows_the_warning_and_passes():
    out, err = io.StringIO(), io.StringIO()
    with override_settings(QTASKS={"CONCURENCY": 4}):
        call_command("check", stdout=out, stderr=err)  # a warning does not fail it
    assert "?: (django_qtasks.W001) QTASKS['CONCURENCY'] is not a django-qtasks setting" in (
        err.getvalue()
    )
    assert "HINT: Did you mean 'CONCURRENCY'?" in err.getvalue()


# --- manage.py check ---------------------------------------------------------------------


@pytest.mark.django_db  # Django's own model checks (JSONField) ask the database
def test_manage_py_check_fails_with_id_key_value_and_type():
    with (
        override_settings(QTASKS={"CONCURRENCY": "10", "BROKER_URL": "nope://x"}),
        pytest.raises(SystemCheckError) as raised,
    ):
        call_command("check")
    text = str(raised.value)
    assert (
        "?: (django_qtasks.E001) QTASKS['CONCURRENCY'] must be int "
        "(tasks a worker runs at once), not str '10'." in text
    )
    assert "?: (django_qtasks.E002) QTASKS['BROKER_URL'] = 'nope://x'" in text
    assert f"HINT: {HINT}" in text


@pytest.mark.django_db  # Django's own model checks (JSONField) ask the database
def test_manage_py_check_reports_a_non_dict_setting():
    message = r"\(django_qtasks\.E001\) QTASKS must be a dict, not NoneType None\."
    with override_settings(QTASKS=None), pytest.raises(SystemCheckError, match=message):
        call_command("check")


# --- conf.qtasks_settings ------------------------------------------------------------------


def test_settings_reload_on_override():
    assert qtasks_settings.DEFAULT_QUEUE == "default"
    assert qtasks_settings.POLL_INTERVAL == 0.05  # tests/settings.py
    with override_settings(QTASKS={"DEFAULT_QUEUE": "low", "MINE": {"a": 1}}):
        assert qtasks_settings.DEFAULT_QUEUE == "low"
        assert qtasks_settings.POLL_INTERVAL == 0.5  # back to the default
        assert qtasks_settings.MINE == {"a": 1}
        config = tasks.echo.ctx.get_config()
        assert config["MINE"] == {"a": 1}  # unknown keys are kept
        assert config["DEFAULT_QUEUE"] == "low"
        assert "GREETING" not in config
        assert set(OPTIONS) <= set(config)
    assert qtasks_settings.DEFAULT_QUEUE == "default"
    assert tasks.echo.ctx.get_config()["GREETING"] == "hello"


def test_get_config_is_a_copy():
    config = tasks.echo.ctx.get_config()
    config["DEFAULT_QUEUE"] = "changed"
    assert qtasks_settings.DEFAULT_QUEUE == "default"


def test_defaults():
    with override_settings(QTASKS={}):
        config = qtasks_settings.as_dict()
    assert config == {key: option.default for key, option in OPTIONS.items()}
    assert config["BROKER_URL"] == "django://"
    assert config["REDIS_CACHE_ALIAS"] is None
    assert config["DEFAULT_QUEUE"] == "default"
    assert config["CONCURRENCY"] == 10


def test_missing_key_is_an_attribute_error():
    with pytest.raises(AttributeError, match="QTASKS has no key 'NOT_A_KEY'"):
        qtasks_settings.NOT_A_KEY  # noqa: B018


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            {"CONCURRENCY": "10"},
            r"QTASKS\['CONCURRENCY'\] must be int \(tasks a worker runs at once\), not str '10'\.",
        ),
        ({"POLL_INTERVAL": -1}, r"QTASKS\['POLL_INTERVAL'\] must be int or float, more than 0"),
        ({"RETRY_BACKOFF": -1}, r"QTASKS\['RETRY_BACKOFF'\] must be int or float, 0 or more"),
        ([], r"QTASKS must be a dict, not list \[\]\."),
    ],
)
def test_broken_setting_raises_improperly_configured_on_access(value, message):
    with override_settings(QTASKS=value):
        with pytest.raises(ImproperlyConfigured, match=message):
            qtasks_settings.DEFAULT_QUEUE  # noqa: B018
        with pytest.raises(ImproperlyConfigured, match=message):
            tasks.echo.ctx.get_config()
    # Fixed again once the override ends.
    assert qtasks_settings.CONCURRENCY == 10


def test_every_check_id_is_documented():
    root = Path(__file__).resolve().parent.parent
    source = (root / "django_qtasks" / "checks.py").read_text()
    docs = (root / "docs" / "checks.md").read_text()
    check_ids = sorted(set(re.findall(r"django_qtasks\.[EW]\d{3}", source)))
    assert check_ids == [
        "django_qtasks.E001",
        "django_qtasks.E002",
        "django_qtasks.E003",
        "django_qtasks.E004",
        "django_qtasks.E005",
        "django_qtasks.E006",
        "django_qtasks.E007",
        "django_qtasks.W001",
        "django_qtasks.W002",
    ]
    for check_id in check_ids:
        assert f"## {check_id}: " in docs
        assert f"?: ({check_id}) QTASKS" in docs  # an example message
