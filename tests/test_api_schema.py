"""The OpenAPI 3 schema: valid, complete, and true of the live API (schemathesis)."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from testproject.urls import api_patterns

from django_qtasks import app
from django_qtasks.models import TaskStatus, WorkerHeartbeat
from tests.api_helpers import make

pytestmark = pytest.mark.db_independent

OPERATIONS = {
    ("GET", "/api/qtasks/tasks/"),
    ("POST", "/api/qtasks/tasks/"),
    ("GET", "/api/qtasks/tasks/{uuid}/"),
    ("POST", "/api/qtasks/tasks/{uuid}/cancel/"),
    ("POST", "/api/qtasks/tasks/{uuid}/retry/"),
    ("GET", "/api/qtasks/registry/"),
    ("GET", "/api/qtasks/workers/"),
    ("GET", "/api/qtasks/stats/"),
    ("GET", "/api/qtasks/costs/"),
}
#: The schemathesis checks every response must pass, besides "no 5xx".
CONFORMANCE = [
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
]
#: A queue no worker serves: fuzzed tasks must not run (sync_busy(1e9) would hold a thread).
UNSERVED = "fuzz-unserved"
#: Examples per operation and generation mode: the same cases on every machine
#: (derandomized), about 10 s on a quiet one.
MAX_EXAMPLES = 20


def generate() -> dict[str, Any]:
    GENERATOR_STATS.reset()
    schema = SchemaGenerator(patterns=api_patterns).get_schema(request=None, public=True)
    assert not GENERATOR_STATS, "drf-spectacular warned or failed; see the captured stderr"
    return schema


def test_schema_is_valid_openapi_3_and_describes_every_operation():
    schema = generate()
    validate_schema(schema)  # raises on an invalid document
    assert schema["openapi"].startswith("3.")
    found = {(method.upper(), path) for path, item in schema["paths"].items() for method in item}
    assert found == OPERATIONS
    create = schema["components"]["schemas"]["TaskCreate"]
    assert create["required"] == ["task_name"]
    assert set(create["properties"]) == {
        "task_name",
        "args",
        "kwargs",
        "priority",
        "queue",
        "delay",
        "eta",
    }
    assert schema["components"]["schemas"]["TaskNameEnum"]["enum"] == sorted(app.tasks)
    list_parameters = {
        p["name"] for p in schema["paths"]["/api/qtasks/tasks/"]["get"]["parameters"]
    }
    assert list_parameters == {
        "status", "task_name", "queue", "tag", "worker", "created_after", "created_before",
        "search", "cursor", "page_size",
    }  # fmt: skip


@pytest.mark.django_db
def test_the_schema_is_served(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "django-qtasks demo API"
    assert {path for path in response.json()["paths"]} == {path for _, path in OPERATIONS}
    assert client.get("/api/docs/").status_code == 200


@pytest.mark.django_db(transaction=True)
# A fixed number of cases, not a time budget: on a busy machine it takes
# longer, and proves as much.
@pytest.mark.timeout(900)
def test_schemathesis_finds_no_server_error_and_no_departure_from_the_schema(live_server):
    """Valid and invalid requests to every operation: no 5xx, and every response
    (status, content type, headers, body) is one the schema describes."""
    # schemathesis 4 needs Python 3.11+: on 3.10 only this test is skipped.
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import strategies as st
    from schemathesis.generation import GenerationMode
    from schemathesis.specs.openapi import checks as openapi_checks

    always = [schemathesis.checks.not_a_server_error]
    always += [getattr(openapi_checks, name) for name in CONFORMANCE]
    User.objects.create_superuser("fuzz", password="fuzz-pw")
    # Real tasks in every status, so that reads, cancels and retries also succeed or conflict.
    # No worker serves their queue, and their "running" ones belong to a worker that
    # looks alive: a shared worker of the test session must leave them as they are.
    alive = timezone.now() + timedelta(hours=1)
    WorkerHeartbeat.objects.create(
        worker_id="fuzz", hostname="fuzz", pid=1, concurrency=1, last_heartbeat=alive
    )
    uuids = [
        str(make(status, queue=UNSERVED, worker="fuzz").uuid)
        for status in TaskStatus
        for _ in range(2)
    ]
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/")
    runs = list(itertools.product(schema.get_all_operations(), GenerationMode))
    calls: dict[str, set[int]] = {}
    for result, mode in runs:
        operation = result.ok()
        negative = [] if mode.is_positive else [openapi_checks.negative_data_rejection]
        checks = [*always, *negative]
        strategy = operation.as_strategy(mode)
        if operation.label == "POST /api/qtasks/tasks/":
            strategy = strategy.map(unserved)
        if "{uuid}" in operation.path and mode.is_positive:
            known = st.sampled_from(uuids).flatmap(
                lambda uuid, op=operation: op.as_strategy(path_parameters={"uuid": uuid})
            )
            strategy = st.one_of(strategy, known)
        statuses = calls.setdefault(f"{mode} {operation.label}", set())
        fuzz(strategy, checks, statuses)
    assert set(calls) == {
        f"{mode} {method} {path}" for mode in GenerationMode for method, path in OPERATIONS
    }
    # Every success and conflict answer too, on purpose rather than by chance.
    operations = {op.label: op for op in (result.ok() for result in schema.get_all_operations())}
    answers: dict[str, set[int]] = {}
    create = {"task_name": "echo", "args": [1], "queue": UNSERVED}
    cases = [("POST /api/qtasks/tasks/", {}, create)]
    cases += [("GET /api/qtasks/tasks/", {}, None)]
    fresh = [str(make(status, queue=UNSERVED, worker="fuzz").uuid) for status in TaskStatus]
    for uuid in fresh:
        cases += [
            ("GET /api/qtasks/tasks/{uuid}/", {"uuid": uuid}, None),
            ("POST /api/qtasks/tasks/{uuid}/cancel/", {"uuid": uuid}, {"reason": "schema"}),
            ("POST /api/qtasks/tasks/{uuid}/retry/", {"uuid": uuid}, None),
        ]
    for label, path_parameters, body in cases:
        case = operations[label].Case(
            path_parameters=path_parameters, **({} if body is None else {"body": body})
        )
        response = case.call_and_validate(auth=("fuzz", "fuzz-pw"), checks=always)
        answers.setdefault(label, set()).add(response.status_code)
    assert answers == {
        "POST /api/qtasks/tasks/": {201},
        "GET /api/qtasks/tasks/": {200},
        "GET /api/qtasks/tasks/{uuid}/": {200},
        "POST /api/qtasks/tasks/{uuid}/cancel/": {200, 202, 409},
        "POST /api/qtasks/tasks/{uuid}/retry/": {201, 409},
    }


def fuzz(strategy: Any, checks: list[Any], statuses: set[int]) -> None:
    """Call and validate MAX_EXAMPLES cases (fewer if the strategy has fewer)."""
    from hypothesis import HealthCheck, Phase, given, settings

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call_and_validate(auth=("fuzz", "fuzz-pw"), checks=checks)
        statuses.add(response.status_code)

    run()


def unserved(case: Any) -> Any:
    """The case, with its task sent to the UNSERVED queue when its queue is valid or absent.

    An invalid queue stays: the request is refused anyway, and must be.
    """
    body = case.body
    if isinstance(body, dict):
        queue = body.get("queue", "")
        if isinstance(queue, str) and len(queue) <= 100:
            case.body = {**body, "queue": UNSERVED}
    return case
