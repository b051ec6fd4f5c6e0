"""Bad input to the REST API: a 4xx that says what is wrong, and nothing changed."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from django_qtasks.models import Task
from tests.api_helpers import TASKS, cancel_url, client_for, make, snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(db: None) -> APIClient:
    return client_for("root", superuser=True)


def post_json(api: APIClient, body: Any) -> Any:
    return api.post(TASKS, body, format="json")


# Create: one bad field at a time -------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("task_name", 5, "Not a valid string."),
        ("task_name", "", "This field may not be blank."),
        ("args", "1, 2", 'Expected a list of items but got type "str".'),
        ("args", {"a": 1}, 'Expected a list of items but got type "dict".'),
        (
            "args",
            ["ok", "nul\x00"],
            "args cannot be stored: it holds U+0000 at character 3 of args[1].",
        ),
        ("kwargs", [1], 'Expected a dictionary of items but got type "list".'),
        (
            "kwargs",
            {"a": {"b\x00": 1}},
            "kwargs cannot be stored: it holds U+0000 at character 1 of a key of kwargs['a']",
        ),
        ("priority", "1", "A valid integer is required."),
        ("priority", 1.5, "A valid integer is required."),
        ("priority", True, "A valid integer is required."),
        ("priority", None, "This field may not be null."),
        ("priority", 2**31, "Ensure this value is less than or equal to 2147483647."),
        ("priority", -(2**31) - 1, "Ensure this value is greater than or equal to -2147483648."),
        ("queue", 5, "Not a valid string."),
        ("queue", "", "This field may not be blank."),
        ("queue", "q" * 101, "Ensure this field has no more than 100 characters."),
        ("queue", "a\x00b", "Null characters are not allowed."),
        ("delay", "5", "A valid number is required."),
        ("delay", True, "A valid number is required."),
        ("delay", -1, "Ensure this value is greater than or equal to 0."),
        ("delay", 10**9, "Ensure this value is less than or equal to 31536000."),
        ("eta", "2030-01-01T09:30:00", "Give the time's UTC offset"),
        ("eta", "tomorrow", "Give an ISO 8601 date and time"),
        ("eta", "2030-02-30T09:30:00Z", "Give an ISO 8601 date and time"),
        ("eta", "9999-12-31T23:59:59-14:00", "Give an ISO 8601 date and time"),
        ("eta", 1700000000, "Give an ISO 8601 date and time"),
        ("eta", "2999-01-01T00:00:00Z", "Ensure this is at most a year from now."),
    ],
)
def test_create_names_the_bad_field(api, field, value, message):
    before = snapshot()
    response = post_json(api, {"task_name": "echo", "args": [1], field: value})
    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == [field]
    assert errors[field][0].startswith(message)
    assert snapshot() == before


def test_a_lone_surrogate_in_the_arguments_is_400(api):
    # As JSON escapes it: no client library encodes a lone surrogate raw.
    before = snapshot()
    body = '{"task_name": "echo", "args": ["ok"], "kwargs": {"x": "\\ud800"}}'
    response = api.post(TASKS, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {
        "kwargs": ["kwargs cannot be stored: it holds U+D800 at character 0 of kwargs['x']."]
    }
    assert snapshot() == before


def test_create_takes_delay_or_eta_not_both(api):
    before = snapshot()
    eta = (timezone.now() + timedelta(hours=1)).isoformat()
    response = post_json(api, {"task_name": "echo", "args": [1], "delay": 5, "eta": eta})
    assert response.status_code == 400
    assert response.json() == {"eta": ["Give delay or eta, not both."]}
    assert snapshot() == before


def test_create_of_an_unknown_task_lists_the_registered_ones(api):
    response = post_json(api, {"task_name": "no_such_task"})
    assert response.status_code == 400
    [message] = response.json()["task_name"]
    assert message.startswith("No task named 'no_such_task' is registered (registered: ")
    assert "echo, echo_child," in message
    assert not Task.objects.exists()


def test_create_needs_a_task_name(api):
    response = post_json(api, {"args": [1]})
    assert response.status_code == 400
    assert response.json() == {"task_name": ["This field is required."]}
    assert not Task.objects.exists()


def test_create_reports_every_bad_field_at_once(api):
    response = post_json(api, {"task_name": "nope", "args": {}, "priority": "high"})
    assert response.status_code == 400
    assert set(response.json()) == {"task_name", "args", "priority"}
    assert not Task.objects.exists()


# Create: the body as a whole -----------------------------------------------------------------


def test_a_body_over_the_limit_is_413_and_nothing_is_written(api):
    huge = {"task_name": "echo", "args": ["x" * 70_000]}
    response = post_json(api, huge)
    assert response.status_code == 413
    assert response.json()["detail"].startswith(
        "The request body is larger than 65536 bytes, the limit set by QTASKS['API_MAX_BODY_SIZE']."
    )
    assert not Task.objects.exists()


def test_the_body_limit_is_a_setting(api):
    body = {"task_name": "echo", "args": ["x" * 200]}
    with override_settings(QTASKS={"API_MAX_BODY_SIZE": 100}):
        assert post_json(api, body).status_code == 413
    assert post_json(api, body).status_code == 201


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"task_name": "echo", "args": [', "JSON parse error - Expecting value"),
        (b'{"task_name": "echo", "args": [NaN]}', "JSON parse error - NaN is not valid JSON"),
        (b'{"task_name": "echo", "args": [Infinity]}', "JSON parse error - Infinity is not"),
        (b'{"args": ' + b"[" * 40 + b"]" * 40 + b"}", "JSON parse error - the body is nested"),
        (b"[" * 30_000 + b"]" * 30_000, "JSON parse error - the body is nested more than 32 "),
        (b"\xff\xfe", "JSON parse error - 'utf-8' codec can't decode"),
    ],
)  # fmt: skip
def test_a_body_that_is_not_acceptable_json_is_400(api, raw, message):
    response = api.generic("POST", TASKS, raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith(message)
    assert not Task.objects.exists()


def test_the_body_must_be_an_object(api):
    response = post_json(api, [1, 2])
    assert response.status_code == 400
    assert response.json() == {
        "non_field_errors": ["Invalid data. Expected a dictionary, but got list."]
    }


def test_only_json_is_accepted(api):
    response = api.post(TASKS, {"task_name": "echo"}, format="multipart")
    assert response.status_code == 415
    assert "Unsupported media type" in response.json()["detail"]
    assert not Task.objects.exists()


def test_cancel_reads_its_body_under_the_same_limit(api):
    task = make()
    before = snapshot()
    response = api.post(cancel_url(task), {"reason": "x" * 70_000}, format="json")
    assert response.status_code == 413
    assert snapshot() == before


# List: query parameters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"status": "bogus"}, "status", '"bogus" is not a valid choice.'),
        ({"status": "new,bogus"}, "status", '"bogus" is not a valid choice.'),
        ({"status": ""}, "status", '"" is not a valid choice.'),
        ({"created_after": "yesterday"}, "created_after", "Datetime has wrong format."),
        ({"created_before": "2024-13-01"}, "created_before", "Datetime has wrong format."),
        ({"task_name": "x" * 201}, "task_name", "Ensure this field has no more than 200"),
        ({"search": "a\x00"}, "search", "Null characters are not allowed."),
        ({"tag": ""}, "tag", "This field may not be blank."),
        ({"page_size": "0"}, "page_size", "Must be a whole number from 1 to 500, not '0'."),
        ({"page_size": "many"}, "page_size", "Must be a whole number from 1 to 500, not 'many'."),
        ({"page_size": "501"}, "page_size", "Must be a whole number from 1 to 500, not '501'."),
        (
            {"page_size": "\u00b2"},
            "page_size",
            "Must be a whole number from 1 to 500, not '\u00b2'.",
        ),
        (
            {"page_size": "\uff15"},
            "page_size",
            "Must be a whole number from 1 to 500, not '\uff15'.",
        ),
        ({"cursor": "garbage"}, "cursor", "Invalid cursor: use the 'next' or 'previous' link"),
    ],
)
def test_a_bad_query_parameter_is_400_naming_it(api, query, field, message):
    make()
    response = api.get(TASKS, query)
    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == [field]
    assert errors[field][0].startswith(message)


def test_every_bad_query_parameter_is_named_at_once(api):
    make()
    query = {"status": "bogus", "queue": "q" * 101, "page_size": "0", "cursor": "garbage"}
    response = api.get(TASKS, query)
    assert response.status_code == 400
    assert sorted(response.json()) == ["cursor", "page_size", "queue", "status"]


@pytest.mark.parametrize(
    "position", ["not a date", "2024-01-01 00:00:00", "9999-12-31 23:59:59-14:00"]
)
def test_a_forged_cursor_is_400(api, position):
    make()
    cursor = base64.b64encode(urlencode({"p": position}).encode()).decode()
    response = api.get(TASKS, {"cursor": cursor})
    assert response.status_code == 400
    assert list(response.json()) == ["cursor"]


def test_unknown_query_parameters_are_ignored(api):
    make()
    response = api.get(TASKS, {"colour": "red"})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 1


def test_errors_are_json_for_every_client(api):
    response = api.get(TASKS, {"status": "bogus"}, HTTP_ACCEPT="application/json")
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {"status": ['"bogus" is not a valid choice.']}
