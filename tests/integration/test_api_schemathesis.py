"""The served OpenAPI document, fuzzed by schemathesis against the app on a real Redis.

Every operation gets generated requests as an authorised caller of stack 1, most of them
aimed at resources that exist. Checks: no 5xx, and every status code, content type,
header set and body as the document itself declares them.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tickwork.api import create_app
from tickwork.store import Store

from .api_support import ALICE, Api, tokens

# Tens of seconds of generated requests: part of the full suite, not the quick subset.
pytestmark = pytest.mark.slow

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

# The document is read from an app that serves nothing but /openapi.json (building one
# connects to nothing); each test sends its cases to its own app on a real Redis.
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(Store(redis.Redis()), tokens=tokens())
)


@pytest.fixture
def seeded_app(app: FastAPI, api: Api) -> FastAPI:
    """One of each resource, all with id 1 under this test's fresh key prefix."""
    project = api.project()
    load_test = api.load_test(project)
    api.schedule(
        load_test, {"starts": "2026-12-01T08:00:00Z", "recurrence_rule": {"frequency": "DAILY"}}
    )
    api.post(f"/cloud/v6/load_tests/{load_test}/start")
    return app


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_served_document_holds_for_generated_requests(seeded_app: FastAPI, case: Any) -> None:
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {ALICE}", "X-Stack-Id": "1"}
    if case.path_parameters and "id" in case.path_parameters:
        generated = case.path_parameters["id"]
        if isinstance(generated, int) and generated % 4 != 0:
            case.path_parameters["id"] = 1
    case.call_and_validate(app=seeded_app, checks=CHECKS)
