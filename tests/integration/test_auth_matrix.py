"""The auth matrix over every route the app serves, enumerated from the app itself.

README, "The API": ``Authorization: Bearer <token>`` on every route but the operational ones;
a missing or unknown token is 401, ``X-Stack-Id`` missing or not an integer 400, a token not
valid for the stack 403, and another stack's resource 404, the same as one that does not
exist, changing nothing. The Kragle and report APIs share "the same tokens, stacks, error
codes". The routes come from ``create_app(...).routes``: a route added later is in the matrix
without anyone listing it, and must either need a token or be named in ``OPEN``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
import pytest
import redis
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from tickwork.api import create_app
from tickwork.store import Store

from .api_support import ALICE, BOB, MAX_BODY, Api, Clock, snapshot, tokens

# Slow: the whole matrix, every served route by every refusal (~300 cases).
pytestmark = pytest.mark.slow

OPEN = frozenset(
    {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/healthz", "/readyz", "/metrics"}
)
"""The operational routes: documents and probes, served without a token."""
PUBLIC_LISTING = frozenset({("GET", "/kragle/schedules"), ("GET", "/kragle/schedules/byid/{id}")})
"""What TICKWORK_KRAGLE_PUBLIC_LISTING opens to a caller without a token."""


def served_routes(**app_options: Any) -> list[tuple[str, str]]:
    """(method, path template) of every operation the app serves (HEAD aside: Starlette
    adds it to every GET)."""
    app = create_app(Store(redis.Redis(), "routes"), tokens=[], **app_options)  # no I/O
    return sorted(
        (method, route.path)
        for route in iter_route_contexts(app.routes)
        if route.path
        for method in route.methods or ()
        if method != "HEAD"
    )


ROUTES = served_routes()
GUARDED = [(method, path) for method, path in ROUTES if path not in OPEN]
SOME_UUID = "6f1c2e0a-3b7d-4c55-9a8e-2d4f6b8c0e13"

# A body each writing operation would accept if the resource were the caller's: so the 404
# of another stack's resource is not a 400 about the body.
_SPAN = {"from": "2030-01-01T00:00:00Z", "to": "2030-01-02T00:00:00Z"}
_CHANNEL = {"name": "ops", "type": "webhook", "url": "https://ci.example/hooks/notify"}
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/cloud/v6/projects"): {"json": {"name": "new"}},
    ("PATCH", "/cloud/v6/projects/{id}"): {"json": {"name": "taken over"}},
    ("POST", "/cloud/v6/projects/{id}/load_tests"): {"json": {"name": "intruder"}},
    ("PATCH", "/cloud/v6/load_tests/{id}"): {"json": {"name": "renamed"}},
    ("PUT", "/cloud/v6/load_tests/{id}/script"): {"content": b"export default () => {}"},
    ("POST", "/cloud/v6/load_tests/{id}/schedule"): {"json": {"starts": "2027-01-01T00:00:00Z"}},
    ("PATCH", "/cloud/v6/test_runs/{id}"): {"json": {"note": "mine now"}},
    ("PUT", "/api/v1/reports/schedules/{schedule_id}"): {"json": {"attrs": {"name": "x"}}},
    ("POST", "/api/v1/reports/schedules"): {
        "json": {
            "attrs": {
                "name": "r",
                "schedule": "daily",
                "send_via": "email",
                "send_to": ["a@example.com"],
                "timezone": "UTC",
                "type": "generic",
                "hosts": ["example.com"],
            }
        }
    },
    ("POST", "/kragle/schedules"): {"json": {"config": {"period": 60}}},
    ("POST", "/cloud/v6/blackout_windows"): {"json": _SPAN},
    ("POST", "/cloud/v6/schedules/{id}/blackout_windows"): {"json": _SPAN},
    ("POST", "/cloud/v6/notifications/channels"): {"json": _CHANNEL},
    ("PATCH", "/cloud/v6/notifications/channels/{id}"): {"json": {"name": "taken over"}},
    ("POST", "/cloud/v6/notifications/rules"): {
        "json": {"name": "r", "events": ["run_failed"], "channels": []}
    },
    ("PATCH", "/cloud/v6/notifications/rules/{id}"): {"json": {"name": "taken over"}},
    # No worker runs here: do not wait the default 10 s for one to send the test
    ("POST", "/cloud/v6/notifications/channels/{id}/test"): {"params": {"wait": "0"}},
}


def _any_path(template: str) -> str:
    """The template with well-formed ids (a UUID where a report id goes)."""
    path = template.replace("{schedule_id}", SOME_UUID)
    return re.sub(r"\{[^}]+\}", "1", path)


def _code(response: httpx.Response) -> str:
    body = response.json()
    assert isinstance(body, dict), response.text
    return str(body["error"]["code"])


def _call(
    http: TestClient, method: str, template: str, headers: dict[str, str], path: str = ""
) -> httpx.Response:
    return http.request(
        method, path or _any_path(template), headers=headers, **BODIES.get((method, template), {})
    )


@pytest.fixture
def http(api: Api) -> TestClient:
    return api.http


def test_the_matrix_covers_every_api_the_readme_names() -> None:
    prefixes = {path.split("/")[1] for _, path in GUARDED}
    assert prefixes == {"cloud", "api", "kragle"}
    assert ("DELETE", "/cloud/v6/test_runs/{id}") in GUARDED
    assert len(GUARDED) >= 40


@pytest.mark.parametrize("path", sorted(OPEN))
def test_operational_routes_answer_without_a_token(http: TestClient, path: str) -> None:
    assert ("GET", path) in ROUTES
    assert http.get(path).status_code == 200


@pytest.mark.parametrize(("method", "template"), GUARDED)
def test_401_before_400_before_403_on_every_guarded_route_and_nothing_changes(
    http: TestClient, store: Store, method: str, template: str
) -> None:
    before = snapshot(store)
    bearer = {"Authorization": f"Bearer {ALICE}"}

    for headers in (
        {"X-Stack-Id": "1"},
        {"Authorization": "Bearer not-a-known-token-0123"},  # 401 even without a stack
        {"Authorization": f"Basic {ALICE}", "X-Stack-Id": "1"},
    ):
        response = _call(http, method, template, headers)
        assert response.status_code == 401, (headers, response.text)
        assert _code(response) == "unauthenticated"
        assert response.headers["www-authenticate"] == "Bearer"

    for headers in (bearer, {**bearer, "X-Stack-Id": "one"}, {**bearer, "X-Stack-Id": "1.5"}):
        response = _call(http, method, template, headers)
        assert response.status_code == 400, (headers, response.text)
        assert _code(response) == "validation_error"
        details = response.json()["error"]["details"]
        assert [detail["target"] for detail in details] == ["X-Stack-Id"]

    response = _call(http, method, template, {**bearer, "X-Stack-Id": "3"})  # Bob's stack
    assert response.status_code == 403, response.text
    assert _code(response) == "forbidden"

    assert snapshot(store) == before


@dataclass(frozen=True)
class World:
    """One resource of every kind, in stack 1 (Alice's)."""

    project: int
    load_test: int
    schedule: int
    run: int
    report: str
    kragle_schedule: int
    kragle_job: int
    window: int  # a blackout window of the stack
    schedule_window: int  # one of the schedule's own
    channel: int  # a notification channel
    rule: int  # a notification rule

    def path(self, template: str) -> str:
        """The template naming this world's resources; AssertionError for an id this
        world does not know how to fill (a new kind of resource: add it here)."""
        kinds = {
            "/cloud/v6/projects/{id}": self.project,
            "/cloud/v6/load_tests/{id}": self.load_test,
            "/cloud/v6/schedules/{id}": self.schedule,
            "/cloud/v6/test_runs/{id}": self.run,
            "/api/v1/reports/schedules/{schedule_id}": self.report,
            "/kragle/schedules/byid/{id}": self.kragle_schedule,
            "/kragle/jobs/byid/{id}": self.kragle_job,
            "/cloud/v6/blackout_windows/{id}": self.window,
            "/cloud/v6/notifications/channels/{id}": self.channel,
            "/cloud/v6/notifications/rules/{id}": self.rule,
        }
        template = template.replace("{window_id}", str(self.schedule_window))
        for prefix, value in kinds.items():
            if template == prefix or template.startswith(prefix + "/"):
                return template.replace(prefix, prefix.split("{")[0] + str(value), 1)
        raise AssertionError(f"no resource of the world fits {template}")


@pytest.fixture
def world(api: Api) -> World:
    project = api.project("stack one")
    load_test = api.load_test(project, name="stack one test")
    schedule = api.schedule(load_test)["id"]
    started = api.post(f"/cloud/v6/load_tests/{load_test}/start")
    assert started.status_code in (200, 201), started.text
    report = api.post("/api/v1/reports/schedules", **BODIES[("POST", "/api/v1/reports/schedules")])
    assert report.status_code == 200, report.text
    kragle = api.post("/kragle/schedules", json={"config": {"period": 60}})
    assert kragle.status_code == 200, kragle.text
    job = api.post(
        "/kragle/jobs", json={"schedule_id": kragle.json()["id"], "load_test_id": load_test}
    )
    assert job.status_code == 200, job.text
    window = api.post("/cloud/v6/blackout_windows", json=_SPAN)
    assert window.status_code == 201, window.text
    own = api.post(f"/cloud/v6/schedules/{schedule}/blackout_windows", json=_SPAN)
    assert own.status_code == 201, own.text
    channel = api.post("/cloud/v6/notifications/channels", json=_CHANNEL)
    assert channel.status_code == 201, channel.text
    rule = api.post(
        "/cloud/v6/notifications/rules",
        json={"name": "r", "events": ["run_failed"], "channels": [channel.json()["id"]]},
    )
    assert rule.status_code == 201, rule.text
    return World(
        project=project,
        load_test=load_test,
        schedule=schedule,
        run=int(started.json()["id"]),
        report=report.json()["data"]["schedule"]["id"],
        kragle_schedule=int(kragle.json()["id"]),
        kragle_job=int(job.json()["id"]),
        window=int(window.json()["id"]),
        schedule_window=int(own.json()["id"]),
        channel=int(channel.json()["id"]),
        rule=int(rule.json()["id"]),
    )


WITH_IDS = [(method, path) for method, path in GUARDED if "{" in path]

# Operations that name their resources in the body rather than the path.
BODY_REFERENCES: dict[tuple[str, str], Any] = {
    ("PUT", "/kragle/schedules"): lambda w: {"json": {"id": w.kragle_schedule, "name": "mine"}},
    ("PUT", "/kragle/schedules/"): lambda w: {"json": {"id": w.kragle_schedule, "name": "mine"}},
    ("POST", "/kragle/jobs"): lambda w: {
        "json": {"schedule_id": w.kragle_schedule, "load_test_id": w.load_test}
    },
    ("DELETE", "/api/v1/reports/registries"): lambda w: {"json": {"schedules_ids": [w.report]}},
}


@pytest.mark.parametrize(("method", "template"), WITH_IDS + sorted(BODY_REFERENCES))
def test_another_stacks_resource_is_404_as_if_missing_and_nothing_changes(
    http: TestClient, store: Store, world: World, method: str, template: str
) -> None:
    reference = BODY_REFERENCES.get((method, template))
    kwargs = reference(world) if reference else BODIES.get((method, template), {})
    path = template if reference else world.path(template)
    before = snapshot(store)

    for token, stack in ((BOB, 3), (ALICE, 2)):  # another user's stack; the caller's other
        headers = {"Authorization": f"Bearer {token}", "X-Stack-Id": str(stack)}
        response = http.request(method, path, headers=headers, **kwargs)
        assert response.status_code == 404, (token, stack, response.text)
        assert _code(response) == "not_found"
    assert snapshot(store) == before

    # The same request in the resource's own stack finds it: the 404 above was the stack's.
    own = http.request(
        method, path, headers={"Authorization": f"Bearer {ALICE}", "X-Stack-Id": "1"}, **kwargs
    )
    assert own.status_code != 404, own.text


@pytest.fixture
def public_listing(store: Store, clock: Clock) -> Iterator[TestClient]:
    app = create_app(
        store,
        tokens=tokens(),
        max_body_bytes=MAX_BODY,
        queue_name=f"{store.keys.prefix}-runs",
        clock=clock,
        kragle_public_listing=True,
    )
    with TestClient(app) as client:
        yield client


def test_public_listing_opens_the_two_kragle_reads_and_nothing_else(
    public_listing: TestClient, store: Store
) -> None:
    routes = served_routes(kragle_public_listing=True)
    assert routes == ROUTES
    before = snapshot(store)

    answered = {
        (method, template)
        for method, template in routes
        if template not in OPEN
        and _call(public_listing, method, template, {"X-Stack-Id": "1"}).status_code != 401
    }

    assert answered == PUBLIC_LISTING
    assert snapshot(store) == before
