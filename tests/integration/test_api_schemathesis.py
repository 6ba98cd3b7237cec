"""The served OpenAPI document, fuzzed by schemathesis against the app on a real Redis.

Every operation gets generated requests as an authorised caller of stack 1, most of them
aimed at resources that exist. Checks: no 5xx, and every status code, content type,
header set and body as the document itself declares them.

Each generated case meets a flushed database seeded the same way, at the same hand-set
instant (and the operation's app, which keeps nothing else a response shows): no case sees
what an earlier one created, counted or deleted, so a failure found reproduces, and
Hypothesis can shrink it. The cases come from the session's Hypothesis
profile: the same ones on every run under ``ci`` (the default), new ones under ``dev``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from redis_claims import CLAIM_KEY, MARKER_KEY
from tickwork.api import create_app
from tickwork.store import Store

from .api_support import ALICE, MAX_BODY, T0, Api, Clock, tokens
from .seeding import Dumped, dumped

# Tens of seconds of generated requests: part of the full suite, not the quick subset.
pytestmark = pytest.mark.slow

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

PREFIX = "fuzz"  # the same keys for every case: the database is flushed in between

# The document is read from an app that serves nothing but /openapi.json (building one
# connects to nothing); each case is sent to an app of its own on a real Redis.
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(Store(redis.Redis()), tokens=tokens())
)


def _app(store: Store) -> FastAPI:
    return create_app(
        store,
        tokens=tokens(),
        max_body_bytes=MAX_BODY,
        queue_name=f"{PREFIX}-runs",
        clock=Clock(T0),
    )


def _seed(client: redis.Redis) -> Dumped:
    """One of each resource, all id 1, made through the API; the database they left, as
    each key's name, time to live and DUMP."""
    with TestClient(_app(Store(client, PREFIX))) as http:
        api = Api(http)
        project = api.project("fuzzed")
        load_test = api.load_test(project, name="fuzzed")
        api.schedule(
            load_test,
            {"starts": "2026-12-01T08:00:00Z", "recurrence_rule": {"frequency": "DAILY"}},
        )
        started = api.post(f"/cloud/v6/load_tests/{load_test}/start")
        assert started.status_code == 200, started.text
    keys = sorted(client.scan_iter(count=1000))
    return dumped(client, [key for key in keys if key.decode() not in (CLAIM_KEY, MARKER_KEY)])


@pytest.fixture
def fresh_app(redis_client: redis.Redis, reset_redis: Callable[[], None]) -> Callable[[], FastAPI]:
    """The operation's app over a database flushed and brought back to the seeded state
    before each case (the API makes the seed once per operation; restoring it costs a
    millisecond, not 50). The app keeps nothing a response can show between requests but
    its request counters (``/metrics``): everything else it knows is in Redis, so a case
    meets what a new app would. (A new app per case costs ~15 ms of FastAPI building its
    routes on the first request: a third of the suite's fuzzing time.)"""
    seeded = _seed(redis_client)
    app = _app(Store(redis_client, PREFIX))

    def build() -> FastAPI:
        reset_redis()
        restore = redis_client.pipeline(transaction=True)
        for key, ttl_ms, value in seeded:
            restore.restore(key, ttl_ms, value)
        restore.execute()
        return app

    return build


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_served_document_holds_for_generated_requests(
    fresh_app: Callable[[], FastAPI], case: Any
) -> None:
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {ALICE}", "X-Stack-Id": "1"}
    if case.path_parameters and "id" in case.path_parameters:
        generated = case.path_parameters["id"]
        if isinstance(generated, int) and generated % 4 != 0:
            case.path_parameters["id"] = 1
    case.call_and_validate(app=fresh_app(), checks=CHECKS)
