"""Rate limits at the API (README, "Limits"): per token, per stack and per anonymous client
address, shared by every API process on the store; past a limit 429 ``rate_limited`` with
Retry-After, in the path's dialect, before anything runs; probes and docs never limited; no
limit at all unless create_app is given one; Redis unavailable: requests pass unlimited."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterator, MutableMapping, Sequence

import httpx2 as httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tickwork.api import create_app
from tickwork.api.auth import TokenBook
from tickwork.api.rate_limits import STORE_RETRY_S, RateLimit
from tickwork.dialects.k6 import render_error
from tickwork.store import Rate, RateLimits, Store, connect
from tickwork.store.limits import Bucket, Verdict

from .api_support import ALICE, BOB, CAROL, MAX_BODY, Api, snapshot, tokens
from .private_redis import private_redis

# One request per 100 s after the burst: no slow host can refill a bucket during a test.
SLOW_S = 100
ROOMY = Rate(1 / SLOW_S, 1000)


def _app(
    store: Store,
    *,
    rate: Rate | None = None,
    stack_rate: Rate | None = None,
    kragle_public_listing: bool = False,
) -> FastAPI:
    return create_app(
        store,
        tokens=tokens(),
        max_body_bytes=MAX_BODY,
        queue_name=f"{store.keys.prefix}-runs",
        rate_limit=rate,
        stack_rate_limit=stack_rate,
        kragle_public_listing=kragle_public_listing,
    )


@pytest.fixture
def limited(store: Store) -> Iterator[Api]:
    """ALICE (stacks 1, 2), BOB (3), CAROL (1): three requests per token, then one per 100 s."""
    with TestClient(_app(store, rate=Rate(1 / SLOW_S, 3))) as http:
        yield Api(http)


def _rate_keys(store: Store) -> list[bytes]:
    return sorted(store.client.scan_iter(match=f"{store.keys.prefix}:rate:*"))


def _assert_limited(response: httpx.Response, per: str, *, burst: int) -> None:
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= SLOW_S
    body = response.json()
    assert body["error"]["code"] == "rate_limited"
    message = body["error"]["message"]
    assert f"0.01 requests per second per {per} (bursts of up to {burst})" in message
    assert f"retry in {retry_after} s" in message


def test_a_token_past_its_burst_gets_429_with_retry_after_and_the_limit_named(
    limited: Api,
) -> None:
    served = [limited.get("/cloud/v6/projects").status_code for _ in range(3)]

    refused = limited.get("/cloud/v6/projects")

    assert served == [200, 200, 200]
    _assert_limited(refused, "token", burst=3)
    assert refused.headers["content-type"] == "application/json"


def test_a_limited_request_changes_nothing(store: Store) -> None:
    with TestClient(_app(store, rate=Rate(1 / SLOW_S, 1))) as first:
        assert Api(first).get("/cloud/v6/projects").status_code == 200
        before = snapshot(store)

        # Refused by the store's verdict, then by the one this process remembers
        refused = [Api(first).post("/cloud/v6/projects", json={"name": "x"}) for _ in range(2)]

        assert [r.status_code for r in refused] == [429, 429]
        assert snapshot(store) == before
    with TestClient(_app(store, rate=ROOMY)) as unlimited:
        assert Api(unlimited).get("/cloud/v6/projects").json()["value"] == []


def test_two_api_processes_on_one_store_share_the_limit(store: Store) -> None:
    rate = Rate(1 / SLOW_S, 2)
    with TestClient(_app(store, rate=rate)) as one, TestClient(_app(store, rate=rate)) as two:
        assert Api(one).get("/cloud/v6/projects").status_code == 200
        assert Api(two).get("/cloud/v6/projects").status_code == 200
        before = snapshot(store)

        refused = Api(two).get("/cloud/v6/projects")

        _assert_limited(refused, "token", burst=2)
        assert snapshot(store) == before  # a refusal from the store writes nothing either
        _assert_limited(Api(one).get("/cloud/v6/projects"), "token", burst=2)


def test_tokens_are_limited_each_on_its_own(limited: Api) -> None:
    for _ in range(3):
        limited.get("/cloud/v6/projects")
    _assert_limited(limited.get("/cloud/v6/projects"), "token", burst=3)

    assert limited.as_(CAROL, 1).get("/cloud/v6/projects").status_code == 200
    assert limited.as_(BOB, 3).get("/cloud/v6/projects").status_code == 200


def test_the_tokens_of_one_stack_share_its_limit_and_other_stacks_keep_theirs(
    store: Store,
) -> None:
    with TestClient(_app(store, rate=ROOMY, stack_rate=Rate(1 / SLOW_S, 2))) as http:
        api = Api(http)
        assert api.as_(ALICE, 1).get("/cloud/v6/projects").status_code == 200
        assert api.as_(CAROL, 1).get("/cloud/v6/projects").status_code == 200

        _assert_limited(api.as_(CAROL, 1).get("/cloud/v6/projects"), "stack", burst=2)
        _assert_limited(api.as_(ALICE, 1).get("/cloud/v6/projects"), "stack", burst=2)
        assert api.as_(ALICE, 2).get("/cloud/v6/projects").status_code == 200
        assert api.as_(BOB, 3).get("/cloud/v6/projects").status_code == 200


def test_a_token_cannot_spend_the_limit_of_a_stack_it_may_not_act_in(store: Store) -> None:
    with TestClient(_app(store, stack_rate=Rate(1 / SLOW_S, 1))) as http:
        api = Api(http)
        outsider = [api.as_(BOB, 1).get("/cloud/v6/projects").status_code for _ in range(3)]

        assert outsider == [403, 403, 403]
        assert api.as_(ALICE, 1).get("/cloud/v6/projects").status_code == 200


def test_an_unknown_token_is_left_to_auth_and_leaves_no_key(limited: Api, store: Store) -> None:
    statuses = [limited.as_("x" * 32, 1).get("/cloud/v6/projects").status_code for _ in range(5)]

    assert statuses == [401] * 5
    assert _rate_keys(store) == []


def test_anonymous_requests_are_limited_per_client_address(store: Store) -> None:
    with TestClient(_app(store, rate=Rate(1 / SLOW_S, 2), kragle_public_listing=True)) as http:
        anonymous = Api(http, token=None, stack=None)
        served = [anonymous.get("/kragle/schedules").status_code for _ in range(2)]

        refused = anonymous.get("/kragle/schedules")

        assert served == [200, 200]
        _assert_limited(refused, "client address", burst=2)
        # a caller with a token has a limit of its own
        assert Api(http).get("/kragle/schedules").status_code == 200
    assert _rate_keys(store) == sorted(
        [
            f"{store.keys.prefix}:rate:client:testclient".encode(),
            f"{store.keys.prefix}:rate:token:{tokens()[0].sha256.hex()}".encode(),
        ]
    )


@pytest.mark.parametrize(
    "path", ["/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/openapi.json"]
)
def test_probes_metrics_and_docs_are_never_limited(store: Store, path: str) -> None:
    with TestClient(_app(store, rate=Rate(1 / SLOW_S, 1))) as http:
        api = Api(http)
        api.get("/cloud/v6/projects")
        _assert_limited(api.get("/cloud/v6/projects"), "token", burst=1)

        with_token = [api.get(path).status_code for _ in range(3)]
        anonymous = [http.get(path).status_code for _ in range(3)]

    assert with_token == [200] * 3
    assert anonymous == [200] * 3


def test_a_429_on_the_report_api_is_in_its_envelope(limited: Api) -> None:
    for _ in range(3):
        limited.get("/api/v1/reports/schedules")

    refused = limited.post("/api/v1/reports/schedules", json={})

    assert refused.status_code == 429
    body = refused.json()
    assert body["status"] == "error"
    assert body["message"] == "Error creating new schedule"
    assert body["error"]["code"] == "rate_limited"
    assert "retry in" in body["error"]["message"]
    assert refused.headers["retry-after"].isdigit()


def test_a_429_on_the_kragle_api_is_a_k6_error_body(limited: Api) -> None:
    for _ in range(3):
        limited.get("/kragle/schedules")

    refused = limited.get("/kragle/schedules")

    _assert_limited(refused, "token", burst=3)
    assert set(refused.json()) == {"error"}


def test_a_refused_request_with_a_body_closes_the_connection(limited: Api) -> None:
    for _ in range(3):
        limited.get("/cloud/v6/projects")

    refused = limited.post("/cloud/v6/projects", json={"name": "x" * 1000})
    plain = limited.get("/cloud/v6/projects")

    assert refused.status_code == 429
    assert refused.headers["connection"] == "close"  # its body was never read
    assert plain.status_code == 429
    assert "connection" not in plain.headers


def test_refusals_are_counted_in_the_metrics(limited: Api) -> None:
    for _ in range(5):
        limited.get("/cloud/v6/projects")

    metrics = limited.http.get("/metrics").text

    assert 'tickwork_api_rate_limited_total{limit="token"} 2.0' in metrics
    assert 'route="unmatched",status="429"' in metrics


def test_an_app_built_without_limits_limits_nothing(api: Api, store: Store) -> None:
    statuses = {api.get("/cloud/v6/projects").status_code for _ in range(250)}

    assert statuses == {200}
    assert _rate_keys(store) == []


# --- Redis unavailable: the limit is not checked, the API is not made unavailable by it ----


def test_requests_pass_unlimited_while_redis_does_not_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Store(connect("redis://127.0.0.1:1/0", timeout_s=0.5), "down")
    with (
        caplog.at_level(logging.WARNING, logger="tickwork.api"),
        TestClient(_app(store, rate=Rate(1 / SLOW_S, 1))) as http,
    ):
        statuses = [Api(http).get("/cloud/v6/projects").status_code for _ in range(3)]
        health = http.get("/healthz").status_code

    # the route's own answer for a store that is down, never the limiter's 429 or a 500
    assert statuses == [503, 503, 503]
    assert health == 200
    unchecked = [r for r in caplog.records if r.getMessage() == "rate_limits_unchecked"]
    assert len(unchecked) == 1


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def test_limits_apply_again_once_redis_takes_writes_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = _Clock()
    with private_redis("--maxmemory-policy", "noeviction") as url:
        store = Store(connect(url), "m")
        limiter = RateLimit(
            Starlette(routes=[Route("/x", _ok)]),
            limits=store.rate_limits,
            tokens=TokenBook(tokens()),
            per_token=Rate(1 / SLOW_S, 1),
            per_stack=None,
            reshape=lambda method, path, status, parts: render_error(parts),
            clock=clock,
        )
        auth = {"Authorization": f"Bearer {ALICE}"}
        used = int(store.client.info("memory")["used_memory"])
        store.client.config_set("maxmemory", used)  # every write refused for memory
        with caplog.at_level(logging.WARNING, logger="tickwork.api"), TestClient(limiter) as http:
            # Given Redis refuses the limiter's script, requests pass, logged once
            while_full = [http.get("/x", headers=auth).status_code for _ in range(3)]
            store.client.config_set("maxmemory", 0)
            still_unchecked = http.get("/x", headers=auth).status_code

            # When Redis is tried again (after STORE_RETRY_S), the limit holds again
            clock.now += math.ceil(STORE_RETRY_S)
            again = [http.get("/x", headers=auth).status_code for _ in range(2)]

    assert while_full == [200, 200, 200]
    assert still_unchecked == 200
    assert again == [200, 429]
    events = [r.getMessage() for r in caplog.records if r.name == "tickwork.api"]
    assert events == ["rate_limits_unchecked", "rate_limits_checked_again"]


class _CountingLimits(RateLimits):
    """The store's rate limits, counting the scripts it runs."""

    def __init__(self, store: Store) -> None:
        super().__init__(store.client, store.keys)
        self.asked = 0

    def take(self, buckets: Sequence[Bucket]) -> Verdict:
        self.asked += 1
        return super().take(buckets)


def test_while_a_token_is_being_refused_redis_is_asked_about_it_one_request_at_a_time(
    store: Store,
) -> None:
    clock = _Clock()
    limits = _CountingLimits(store)
    limiter = RateLimit(
        Starlette(routes=[Route("/x", _ok)]),
        limits=limits,
        tokens=TokenBook(tokens()),
        per_token=Rate(1 / SLOW_S, 1),
        per_stack=None,
        reshape=lambda method, path, status, parts: render_error(parts),
        clock=clock,
        hot_s=10 * SLOW_S,  # however long the host takes between the two refusals below
    )
    statuses: list[int] = []

    async def get() -> None:
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/x",
            "raw_path": b"/x",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"authorization", f"Bearer {ALICE}".encode())],
            "client": ("192.0.2.7", 1234),
            "server": ("testserver", 80),
        }

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, object]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(int(str(message["status"])))

        await limiter(scope, receive, send)

    async def flood(requests: int) -> None:
        await asyncio.gather(*(get() for _ in range(requests)))

    asyncio.run(flood(2))  # one served, one refused by Redis: 100 s to wait
    assert (sorted(statuses), limits.asked) == ([200, 429], 2)

    # Given this process's memory of the refusal ran out (its clock moved on), while Redis
    # still refuses: the token is still "hot"
    clock.now += SLOW_S + 1
    asyncio.run(flood(20))

    # Then one request asked Redis, and its refusal answered the 19 that waited for it
    assert statuses[2:] == [429] * 20
    assert limits.asked == 3
