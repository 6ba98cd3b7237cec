"""Quotas per stack and the minimum spacing of runs (README, "Limits"): past a quota a create
answers 409 ``quota_exceeded`` in its dialect's error body, ``target`` naming the quota and the
message its value, and nothing is created; a stack's own quotas beat the defaults and touch no
other stack; overwriting a k6 schedule is never counted; two creations racing for the last
place commit one; a schedule whose runs would be closer than the minimum is a 400 naming the
field, and nothing changes."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import httpx2 as httpx
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tickwork.api import create_app
from tickwork.store import Store
from tickwork.store.quotas import Limits, Quotas

from .api_support import BOB, MAX_BODY, Api, Clock, snapshot, tokens

QUOTA = 2
"""Every count quota of the default stacks in these tests."""
SCRIPT_BYTES = 64
DEFAULT = Quotas(
    schedules=QUOTA,
    load_tests=QUOTA + 2,  # room for the load tests the other quotas' tests need
    kragle_templates=QUOTA,
    kragle_jobs=QUOTA,
    report_schedules=QUOTA,
    script_bytes=SCRIPT_BYTES,
)
OWN_STACK = 2  # ALICE's second stack, with a quota of its own
LIMITS = Limits(quotas=DEFAULT, stack_quotas={OWN_STACK: replace(DEFAULT, schedules=QUOTA + 1)})
REPORT_ATTRS = {
    "hosts": ["www.service-test-host.it"],
    "name": "digest",
    "schedule": "daily",
    "send_to": ["test@test.it"],
    "send_via": "email",
    "timezone": "Europe/Rome",
    "type": "generic",
}
RACE_ROUNDS = 20


def _app(store: Store, clock: Clock, limits: Limits | None = LIMITS) -> FastAPI:
    return create_app(
        store,
        tokens=tokens(),
        max_body_bytes=MAX_BODY,
        queue_name=f"{store.keys.prefix}-runs",
        clock=clock,
        limits=limits,
    )


@pytest.fixture
def limited(store: Store, clock: Clock) -> Iterator[Api]:
    with TestClient(_app(store, clock)) as http:
        yield Api(http)


# What one more of each kind is, its prerequisites made beforehand.

Create = Callable[[], httpx.Response]


def _load_test_calls(api: Api, n: int) -> list[Create]:
    project = api.project()

    def create() -> httpx.Response:
        body = {"name": uuid.uuid4().hex, "script": "x"}
        return api.post(f"/cloud/v6/projects/{project}/load_tests", json=body)

    return [create] * n


def _schedule_calls(api: Api, n: int) -> list[Create]:
    project = api.project()
    tests = [api.load_test(project) for _ in range(n)]
    body = {"starts": "2026-12-01T08:00:00Z", "cron": {"schedule": "0 7 * * *", "time_zone": "UTC"}}
    return [partial(api.post, f"/cloud/v6/load_tests/{lt}/schedule", json=body) for lt in tests]


def _template_calls(api: Api, n: int) -> list[Create]:
    return [lambda: api.post("/kragle/schedules", json={"config": {"period": 3600}})] * n


def _job_calls(api: Api, n: int) -> list[Create]:
    template = api.post("/kragle/schedules", json={"config": {"period": 3600}}).json()["id"]
    project = api.project()
    tests = [api.load_test(project) for _ in range(n)]
    return [
        partial(api.post, "/kragle/jobs", json={"schedule_id": template, "load_test_id": lt})
        for lt in tests
    ]


def _report_calls(api: Api, n: int) -> list[Create]:
    return [lambda: api.post("/api/v1/reports/schedules", json={"attrs": REPORT_ATTRS})] * n


PREPARE: dict[str, Callable[[Api, int], list[Create]]] = {
    "schedules": _schedule_calls,
    "load_tests": _load_test_calls,
    "kragle_templates": _template_calls,
    "kragle_jobs": _job_calls,
    "report_schedules": _report_calls,
}
"""Each count quota: ``n`` creations of one more of what it counts, ready to send."""


def _limit(quota: str, stack: int = 1) -> int:
    limit: int = getattr(LIMITS.of(stack), quota)
    return limit


def _assert_refused(response: httpx.Response, quota: str, limit: int) -> None:
    assert response.status_code == 409, response.text
    body = response.json()
    error = body["error"]
    assert error["code"] == "quota_exceeded"
    assert error["target"] == quota
    assert f"quota {quota!r} is {limit}" in error["message"]
    if quota == "report_schedules":  # the report API's envelope, its operation's message
        assert body["status"] == "error"
        assert body["message"] == "Error creating new schedule"


@pytest.mark.parametrize("quota", list(PREPARE))
def test_one_past_each_quota_is_409_naming_the_quota_and_creates_nothing(
    limited: Api, store: Store, quota: str
) -> None:
    limit = _limit(quota)
    calls = PREPARE[quota](limited, limit + 1)
    for create in calls[:limit]:
        assert create().status_code in (200, 201)
    before = snapshot(store)

    refused = calls[limit]()

    _assert_refused(refused, quota, limit)
    assert snapshot(store) == before


def test_a_stack_with_a_quota_of_its_own_holds_that_many(limited: Api, store: Store) -> None:
    own = limited.as_(stack=OWN_STACK)
    limit = _limit("schedules", OWN_STACK)
    assert limit == _limit("schedules") + 1
    calls = _schedule_calls(own, limit + 1)
    for create in calls[:limit]:
        assert create().status_code == 200
    before = snapshot(store)

    _assert_refused(calls[limit](), "schedules", limit)
    assert snapshot(store) == before


def test_a_full_stack_does_not_limit_another(limited: Api) -> None:
    full = _schedule_calls(limited, QUOTA + 1)
    for create in full[:QUOTA]:
        assert create().status_code == 200
    assert full[QUOTA]().status_code == 409

    for other in (limited.as_(stack=OWN_STACK), limited.as_(token=BOB, stack=3)):
        (create,) = _schedule_calls(other, 1)
        assert create().status_code == 200


def test_overwriting_a_schedule_at_the_quota_is_not_a_new_one(limited: Api) -> None:
    tests = [limited.load_test() for _ in range(QUOTA)]
    ids = [limited.schedule(lt)["id"] for lt in tests]

    again = limited.post(
        f"/cloud/v6/load_tests/{tests[0]}/schedule",
        json={"starts": "2027-01-01T00:00:00Z", "recurrence_rule": {"frequency": "DAILY"}},
    )

    assert again.status_code == 200, again.text
    assert again.json()["id"] == ids[0]
    assert again.json()["recurrence_rule"]["frequency"] == "DAILY"


def test_a_script_over_the_size_quota_is_refused_and_the_old_one_stays(
    limited: Api, store: Store
) -> None:
    project = limited.project()
    largest = "x" * SCRIPT_BYTES
    created = limited.post(
        f"/cloud/v6/projects/{project}/load_tests", json={"name": "fits", "script": largest}
    )
    assert created.status_code == 201, created.text
    test_id = created.json()["id"]
    before = snapshot(store)

    too_large = limited.post(
        f"/cloud/v6/projects/{project}/load_tests", json={"name": "big", "script": largest + "x"}
    )
    replaced = limited.put(f"/cloud/v6/load_tests/{test_id}/script", content=largest + "x")

    for refused in (too_large, replaced):
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert (error["code"], error["target"]) == ("quota_exceeded", "script_bytes")
        assert f"{SCRIPT_BYTES + 1} bytes" in error["message"]
        assert f"'script_bytes' is {SCRIPT_BYTES} bytes" in error["message"]
    assert snapshot(store) == before
    assert limited.get(f"/cloud/v6/load_tests/{test_id}/script").text == largest


# The race for the last place: two API processes (an app each, with its own Redis client and
# its own HTTP client), their creations released together.


@dataclass
class _Race:
    """Per round: ``contenders`` makes what two creations need and gives them; ``undo``
    brings the stack back to ``QUOTA - 1`` (``fill`` brought it there first)."""

    fill: Callable[[Api], object]
    contenders: Callable[[Api], tuple[Callable[[Api], httpx.Response], ...]]
    undo: Callable[[Api, httpx.Response], object]


Contender = Callable[[Api], httpx.Response]


def _race_schedules() -> _Race:
    body = {"starts": "2026-12-01T08:00:00Z", "cron": {"schedule": "0 7 * * *", "time_zone": "UTC"}}
    made: list[int] = []

    def fill(api: Api) -> None:
        for _ in range(QUOTA - 1):
            api.schedule(api.load_test())

    def contenders(api: Api) -> tuple[Contender, ...]:
        made[:] = [api.load_test(), api.load_test()]
        return tuple(
            partial(Api.post, path=f"/cloud/v6/load_tests/{lt}/schedule", json=body) for lt in made
        )

    def undo(api: Api, won: httpx.Response) -> None:
        for lt in made:  # with the winner's schedule (the load test quota is small)
            _ok(api.delete(f"/cloud/v6/load_tests/{lt}"))

    return _Race(fill, contenders, undo)


def _race_load_tests() -> _Race:
    def fill(api: Api) -> None:
        for _ in range(_limit("load_tests") - 1):
            api.load_test()

    def contenders(api: Api) -> tuple[Contender, ...]:
        # in two projects: nothing but the stack's count is shared by the two
        return tuple(
            partial(
                Api.post,
                path=f"/cloud/v6/projects/{api.project()}/load_tests",
                json={"name": "same", "script": "x"},
            )
            for _ in range(2)
        )

    def undo(api: Api, won: httpx.Response) -> None:
        _ok(api.delete(f"/cloud/v6/load_tests/{won.json()['id']}"))

    return _Race(fill, contenders, undo)


def _race_templates() -> _Race:
    def create(api: Api) -> httpx.Response:
        return api.post("/kragle/schedules", json={"config": {"period": 3600}})

    def fill(api: Api) -> None:
        for _ in range(QUOTA - 1):
            _ok(create(api))

    def undo(api: Api, won: httpx.Response) -> None:
        _ok(api.delete(f"/kragle/schedules/byid/{won.json()['id']}"))

    return _Race(fill, lambda api: (create, create), undo)


def _race_jobs() -> _Race:
    templates: list[int] = []
    made: list[int] = []

    def bind(api: Api, template: int, lt: int) -> httpx.Response:
        return api.post("/kragle/jobs", json={"schedule_id": template, "load_test_id": lt})

    def fill(api: Api) -> None:
        for _ in range(2):  # the contenders bind two templates: they share only the stack
            created = _ok(api.post("/kragle/schedules", json={"config": {"period": 3600}}))
            templates.append(created.json()["id"])
        for _ in range(QUOTA - 1):
            _ok(bind(api, templates[0], api.load_test()))

    def contenders(api: Api) -> tuple[Contender, ...]:
        made[:] = [api.load_test(), api.load_test()]
        return tuple(
            partial(bind, template=template, lt=lt)
            for template, lt in zip(templates, made, strict=True)
        )

    def undo(api: Api, won: httpx.Response) -> None:
        for lt in made:  # with the winner's job (the load test quota is small)
            _ok(api.delete(f"/cloud/v6/load_tests/{lt}"))

    return _Race(fill, contenders, undo)


def _race_reports() -> _Race:
    def create(api: Api) -> httpx.Response:
        return api.post("/api/v1/reports/schedules", json={"attrs": REPORT_ATTRS})

    def fill(api: Api) -> None:
        for _ in range(QUOTA - 1):
            _ok(create(api))

    def undo(api: Api, won: httpx.Response) -> None:
        report = won.json()["data"]["schedule"]["id"]
        _ok(api.request("DELETE", "/api/v1/reports/registries", json={"schedules_ids": [report]}))

    return _Race(fill, lambda api: (create, create), undo)


def _ok(response: httpx.Response) -> httpx.Response:
    assert response.status_code in (200, 201, 204), response.text
    return response


RACES: dict[str, Callable[[], _Race]] = {
    "schedules": _race_schedules,
    "load_tests": _race_load_tests,
    "kragle_templates": _race_templates,
    "kragle_jobs": _race_jobs,
    "report_schedules": _race_reports,
}


def _together(contenders: tuple[Contender, ...], apis: tuple[Api, ...]) -> list[httpx.Response]:
    """Each contender sent through its own API, in its own thread, released at once."""
    start = threading.Barrier(len(contenders))
    answers: dict[int, httpx.Response] = {}

    def send(i: int) -> None:
        start.wait(timeout=60)
        answers[i] = contenders[i](apis[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(contenders))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    return [answers[i] for i in range(len(contenders))]


@pytest.mark.parametrize("quota", list(RACES))
def test_two_creations_racing_for_the_last_place_commit_exactly_one(
    store: Store, clock: Clock, redis_url: str, quota: str
) -> None:
    # Given two API processes on one store, and a stack one short of its quota
    second = Store(redis.Redis.from_url(redis_url), store.keys.prefix)
    race = RACES[quota]()
    with TestClient(_app(store, clock)) as one, TestClient(_app(second, clock)) as two:
        apis = (Api(one), Api(two))
        race.fill(apis[0])
        for round_ in range(RACE_ROUNDS):
            # When both send at once, each through its own process
            answers = _together(race.contenders(apis[0]), apis)

            # Then one is created and the other refused
            statuses = sorted(answer.status_code for answer in answers)
            assert statuses in ([200, 409], [201, 409]), (round_, [a.text for a in answers])
            (refused,) = [a for a in answers if a.status_code == 409]
            assert refused.json()["error"]["code"] == "quota_exceeded", refused.text
            (won,) = [a for a in answers if a.status_code != 409]
            race.undo(apis[0], won)
    second.client.close()


# Minimums: the spacing of runs


@pytest.fixture
def spaced(store: Store, clock: Clock) -> Iterator[Api]:
    """At least two hours between two runs of any schedule; no other limit."""
    limits = Limits(quotas=Quotas(), min_interval_s=7200)
    with TestClient(_app(store, clock, limits)) as http:
        yield Api(http)


def _problem(response: httpx.Response) -> tuple[str, str]:
    assert response.status_code == 400, response.text
    (detail,) = response.json()["error"]["details"]
    return detail["code"], detail["target"]


@pytest.mark.parametrize(
    ("timing", "target"),
    [
        pytest.param(
            {"cron": {"schedule": "*/30 * * * *", "time_zone": "UTC"}},
            "cron.schedule",
            id="cron_half_hourly",
        ),
        pytest.param(
            {"recurrence_rule": {"frequency": "HOURLY", "interval": 1}},
            "recurrence_rule.interval",
            id="rule_hourly",
        ),
    ],
)
def test_a_k6_schedule_closer_than_the_minimum_interval_is_400_naming_the_field(
    spaced: Api, store: Store, timing: dict[str, Any], target: str
) -> None:
    test_id = spaced.load_test()
    set_before = spaced.schedule(test_id)  # a one-time run: no interval at all
    before = snapshot(store)

    response = spaced.post(
        f"/cloud/v6/load_tests/{test_id}/schedule",
        json={"starts": "2026-12-01T08:00:00Z", **timing},
    )

    assert _problem(response) == ("interval_too_short", target)
    assert "7200 s" in response.json()["error"]["details"][0]["message"]
    assert snapshot(store) == before
    assert spaced.get(f"/cloud/v6/load_tests/{test_id}/schedule").json() == set_before


def test_a_schedule_exactly_the_minimum_apart_is_taken(spaced: Api) -> None:
    test_id = spaced.load_test()
    for timing in (
        {"cron": {"schedule": "0 */2 * * *", "time_zone": "UTC"}},
        {"recurrence_rule": {"frequency": "HOURLY", "interval": 2}},
    ):
        response = spaced.post(
            f"/cloud/v6/load_tests/{test_id}/schedule",
            json={"starts": "2026-12-01T08:00:00Z", **timing},
        )
        assert response.status_code == 200, response.text


def test_the_minimum_interval_holds_for_kragle_periods_and_reports(
    store: Store, clock: Clock
) -> None:
    limits = Limits(quotas=Quotas(), min_interval_s=2 * 86_400)
    with TestClient(_app(store, clock, limits)) as http:
        api = Api(http)
        before = snapshot(store)

        period = api.post("/kragle/schedules", json={"config": {"period": 86_400}})
        daily = api.post("/api/v1/reports/schedules", json={"attrs": REPORT_ATTRS})

        assert _problem(period) == ("period_too_short", "config.period")
        assert _problem(daily) == ("interval_too_short", "attrs.schedule")
        assert daily.json()["status"] == "error"  # the report API's envelope
        assert snapshot(store) == before
        weekly = api.post(
            "/api/v1/reports/schedules", json={"attrs": REPORT_ATTRS | {"schedule": "weekly"}}
        )
        assert weekly.status_code == 200, weekly.text


def test_a_kragle_period_under_the_minimum_is_400_on_create_and_update(
    store: Store, clock: Clock
) -> None:
    limits = Limits(quotas=Quotas(), min_kragle_period_s=60)
    with TestClient(_app(store, clock, limits)) as http:
        api = Api(http)
        created = api.post("/kragle/schedules", json={"config": {"period": 60}})
        assert created.status_code == 200, created.text
        template = created.json()["id"]
        before = snapshot(store)

        too_short = api.post("/kragle/schedules", json={"config": {"period": 59}})
        moved = api.put("/kragle/schedules/", json={"id": template, "config": {"period": 30}})

        for refused in (too_short, moved):
            assert _problem(refused) == ("period_too_short", "config.period")
            assert "minimum of 60 s" in refused.json()["error"]["details"][0]["message"]
        assert snapshot(store) == before
        renamed = api.put("/kragle/schedules/", json={"id": template, "name": "kept period"})
        assert renamed.status_code == 200, renamed.text


def test_a_deployment_that_sets_no_limits_takes_every_minute_and_every_second(
    store: Store, clock: Clock
) -> None:
    with TestClient(_app(store, clock, limits=None)) as http:
        api = Api(http)
        minutely = api.post(
            f"/cloud/v6/load_tests/{api.load_test()}/schedule",
            json={
                "starts": "2026-12-01T08:00:00Z",
                "cron": {"schedule": "* * * * *", "time_zone": "UTC"},
            },
        )
        each_second = api.post("/kragle/schedules", json={"config": {"period": 1}})

    assert minutely.status_code == 200, minutely.text
    assert each_second.status_code == 200, each_second.text


# The OpenAPI document tells the truth


CREATES = [
    ("post", "/cloud/v6/projects/{id}/load_tests"),
    ("post", "/cloud/v6/load_tests/{id}/schedule"),
    ("put", "/cloud/v6/load_tests/{id}/script"),
    ("post", "/kragle/schedules"),
    ("post", "/kragle/jobs"),
    ("post", "/api/v1/reports/schedules"),
]


def test_every_operation_a_quota_refuses_documents_its_409(limited: Api) -> None:
    paths = limited.get("/openapi.json").json()["paths"]

    for method, path in CREATES:
        responses = paths[path][method]["responses"]
        assert "409" in responses, (method, path)
        # the body its other errors have: the report envelope there, the k6 body elsewhere
        assert responses["409"]["content"] == responses["400"]["content"], (method, path)
