"""Strict input at every door (issue 12): an input the API cannot honour exactly is a 400 with
the dialect's error body naming the field, and it changes nothing; never a 500, never a
silent reinterpretation."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from tickwork.store import Store

from .api_support import ALICE, MAX_BODY, Api, snapshot

# Slow: the whole matrix, every body field of every route (~300 cases).
pytestmark = pytest.mark.slow

REPORT_ATTRS = {
    "hosts": ["www.example.com"],
    "name": "weekly",
    "schedule": "weekly",
    "send_to": ["ops@example.com"],
    "send_via": "email",
}


def _refused(response: Any, *targets: str, code: str | None = None) -> dict[str, Any]:
    """The k6 error body of a 400 whose details name exactly ``targets``."""
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    details = error["details"] or []
    assert sorted(d["target"] for d in details) == sorted(targets), error
    if code is not None:
        assert [d["code"] for d in details] == [code] * len(targets), error
    return error


def _set(api: Api, load_test: int, body: dict[str, Any]) -> Any:
    return api.post(f"/cloud/v6/load_tests/{load_test}/schedule", json=body)


# --- schedules: instants, bounds, RFC 5545, zones --------------------------------------------


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ({"starts": "9999-12-31T23:59:59-12:00"}, "starts"),
        (
            {
                "starts": "0001-01-01T00:00:00Z",
                "cron": {"schedule": "* * * * *", "time_zone": "UTC"},
            },
            "starts",
        ),
        ({"starts": "0001-01-01T00:00:00+01:00"}, "starts"),
        (
            {
                "starts": "2026-12-01T00:00:00Z",
                "recurrence_rule": {"frequency": "DAILY", "until": "9999-12-31T23:59:59-12:00"},
            },
            "recurrence_rule.until",
        ),
    ],
)
def test_an_instant_at_the_ends_of_the_calendar_is_400_and_changes_nothing(
    api: Api, store: Store, body: dict[str, Any], target: str
) -> None:
    load_test = api.load_test()
    api.schedule(load_test)
    before = snapshot(store)

    _refused(_set(api, load_test, body), target, code="out_of_range")

    assert snapshot(store) == before


@pytest.mark.parametrize(
    ("rule", "target", "code"),
    [
        # starts lies in the past (T0 is 2026-11-23): the rule arithmetic overflowed here
        ({"frequency": "HOURLY", "interval": 10**12}, "recurrence_rule.interval", "too_large"),
        ({"frequency": "DAILY", "interval": 2 * 10**9}, "recurrence_rule.interval", "too_large"),
        ({"frequency": "DAILY", "interval": 10_001}, "recurrence_rule.interval", "too_large"),
        ({"frequency": "DAILY", "count": 1_000_001}, "recurrence_rule.count", "too_large"),
        ({"frequency": "DAILY", "count": 10**30}, "recurrence_rule.count", "too_large"),
        (
            {"frequency": "DAILY", "count": 2, "until": "2026-12-01T00:00:00Z"},
            "recurrence_rule.count",
            "count_and_until",
        ),
        (
            {"frequency": "WEEKLY", "byday": ["MO", "MO"]},
            "recurrence_rule.byday",
            "byday_repeated",
        ),
        (
            {"frequency": "WEEKLY", "byday": ["MO", "TU", "WE", "TH", "FR", "SA", "SU", "SU"]},
            "recurrence_rule.byday",
            "too_long",
        ),
    ],
)
def test_a_recurrence_rule_out_of_bounds_is_400_and_changes_nothing(
    api: Api, store: Store, rule: dict[str, Any], target: str, code: str
) -> None:
    load_test = api.load_test()
    before = snapshot(store)

    response = _set(api, load_test, {"starts": "2026-01-01T00:00:00Z", "recurrence_rule": rule})

    _refused(response, target, code=code)
    assert snapshot(store) == before


def test_the_largest_interval_and_count_are_accepted(api: Api) -> None:
    load_test = api.load_test()
    body = api.schedule(
        load_test,
        {
            "starts": "2026-01-01T00:00:00Z",
            "recurrence_rule": {"frequency": "HOURLY", "interval": 10_000, "count": 1_000_000},
        },
    )
    assert body["next_run"] == "2027-02-21T16:00:00Z"  # 10,000 hours after starts


@pytest.mark.parametrize(
    "time_zone", ["localtime", "posixrules", "Factory", "/etc/localtime", "../zoneinfo/UTC"]
)
def test_a_time_zone_that_is_not_an_iana_name_is_400_and_changes_nothing(
    api: Api, store: Store, time_zone: str
) -> None:
    load_test = api.load_test()
    before = snapshot(store)

    response = _set(
        api,
        load_test,
        {
            "starts": "2026-12-01T00:00:00Z",
            "cron": {"schedule": "0 * * * *", "time_zone": time_zone},
        },
    )

    _refused(response, "cron.time_zone", code="time_zone_unknown")
    assert snapshot(store) == before


@pytest.mark.parametrize("time_zone", ["localtime", "posixrules", "Factory"])
def test_a_report_time_zone_that_is_not_an_iana_name_is_400_and_changes_nothing(
    api: Api, store: Store, time_zone: str
) -> None:
    before = snapshot(store)

    response = api.post(
        "/api/v1/reports/schedules", json={"attrs": REPORT_ATTRS | {"timezone": time_zone}}
    )

    _refused(response, "attrs.timezone", code="time_zone_unknown")
    assert response.json()["message"] == "Error creating new schedule"
    assert snapshot(store) == before


# --- schedules: unknown properties ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "target"),
    [
        (
            {"starts": "2026-12-01T00:00:00Z", "recurrence_rul": {"frequency": "DAILY"}},
            "recurrence_rul",
        ),
        (
            {
                "starts": "2026-12-01T00:00:00Z",
                "recurrence_rule": {"frequency": "DAILY", "byDay": ["MO"]},
            },
            "recurrence_rule.byDay",
        ),
        (
            {
                "starts": "2026-12-01T00:00:00Z",
                "cron": {"schedule": "0 * * * *", "time_zone": "UTC", "tz": "UTC"},
            },
            "cron.tz",
        ),
    ],
)
def test_an_unknown_schedule_property_is_400_naming_it_and_changes_nothing(
    api: Api, store: Store, body: dict[str, Any], target: str
) -> None:
    load_test = api.load_test()
    api.schedule(load_test)
    before = snapshot(store)

    error = _refused(_set(api, load_test, body), target, code="unknown_field")

    assert target.rsplit(".", 1)[-1] in error["details"][0]["message"]
    assert snapshot(store) == before


def test_a_schedule_read_from_the_api_can_be_sent_back_unchanged(api: Api) -> None:
    load_test = api.load_test()
    first = api.schedule(
        load_test,
        {
            "starts": "2026-12-01T08:00:00Z",
            "recurrence_rule": {"frequency": "WEEKLY", "byday": ["MO", "FR"], "count": 4},
        },
    )

    again = _set(api, load_test, api.get(f"/cloud/v6/schedules/{first['id']}").json())

    assert again.status_code == 200, again.text
    assert again.json() == first


# --- test run filters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "target"),
    [
        ("created_after=9999-12-31T23:59:59-12:00", "created_after"),
        ("created_before=0001-01-01T00:00:00%2B01:00", "created_before"),
        ("created_after=0001-01-01T00:00:00%2B01:00", "created_after"),
        ("created_before=9999-12-31T23:59:59", "created_before"),
    ],
)
def test_a_run_filter_at_the_ends_of_the_calendar_is_400_naming_it(
    api: Api, query: str, target: str
) -> None:
    load_test = api.load_test()
    for path in ("/cloud/v6/test_runs", f"/cloud/v6/load_tests/{load_test}/test_runs"):
        _refused(api.get(f"{path}?{query}"), target, code="out_of_range")


@pytest.mark.parametrize(
    ("query", "target"),
    [
        ("created_after=1700000000", "created_after"),  # not read as Unix seconds
        ("created_after=2026-11-23", "created_after"),  # a date is not an instant
        ("created_before=2026-11-23T12:00", "created_before"),
    ],
)
def test_a_run_filter_that_is_not_a_date_time_is_400_not_reinterpreted(
    api: Api, query: str, target: str
) -> None:
    _refused(api.get(f"/cloud/v6/test_runs?{query}"), target, code="invalid_datetime")


# --- path ids ---------------------------------------------------------------------------------


def _id_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every operation with an integer id in its path, the id left as
    ``{id}``: new routes are covered as they are added."""
    found = []
    for route in iter_route_contexts(app.routes):
        if route.path and "{id}" in route.path:
            found += [(method, route.path) for method in sorted(route.methods or ())]
    return found


@pytest.fixture
def everything(api: Api) -> None:
    """Resource 1 of every kind, so that a coerced id would find something to act on."""
    load_test = api.load_test()
    api.schedule(
        load_test, {"starts": "2026-12-01T08:00:00Z", "recurrence_rule": {"frequency": "DAILY"}}
    )
    api.post(f"/cloud/v6/load_tests/{load_test}/start")
    template = api.post("/kragle/schedules", json={"config": {"period": 60}}).json()["id"]
    api.post("/kragle/jobs", json={"schedule_id": template, "load_test_id": load_test})


@pytest.mark.usefixtures("everything")
@pytest.mark.parametrize("written", ["1.0", "+1", "01", "1_0", "1e0", "%201", "0x1", "\uff11"])
def test_a_path_id_not_written_in_plain_digits_is_400_on_every_route_and_changes_nothing(
    api: Api, app: FastAPI, store: Store, written: str
) -> None:
    routes = _id_routes(app)
    assert len(routes) >= 20
    before = snapshot(store)

    for method, template in routes:
        path = template.replace("{id}", written).replace("{window_id}", "1")
        response = api.request(method, path, json={})

        assert response.status_code == 400, (method, template, response.text)
        error = response.json()["error"]
        assert [d["target"] for d in error["details"]] == ["id"], (method, template)

    assert snapshot(store) == before


@pytest.mark.usefixtures("everything")
@pytest.mark.parametrize("written", ["0", "-1", str(2**63), str(2**64 + 1), "9" * 5000])
def test_a_path_id_outside_1_to_int64_is_404_on_every_route_and_changes_nothing(
    api: Api, app: FastAPI, store: Store, written: str
) -> None:
    before = snapshot(store)

    for method, template in _id_routes(app):
        path = template.replace("{id}", written).replace("{window_id}", "1")
        response = api.request(method, path, json={})

        assert response.status_code == 404, (method, template, response.text)
        assert response.json()["error"]["code"] == "not_found"

    assert snapshot(store) == before


# --- headers ----------------------------------------------------------------------------------


def _with_stacks(api: Api, method: str, path: str, *stacks: str, **kwargs: Any) -> Any:
    headers = [("Authorization", f"Bearer {ALICE}"), *(("X-Stack-Id", s) for s in stacks)]
    return api.http.request(method, path, headers=headers, **kwargs)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/cloud/v6/projects"),
        ("POST", "/cloud/v6/projects"),
        ("GET", "/kragle/schedules"),
        ("GET", "/api/v1/reports/schedules?paginate=false"),
    ],
)
def test_two_different_stack_ids_are_400_and_change_nothing(
    api: Api, store: Store, method: str, path: str
) -> None:
    api.project("in stack 1")
    api.as_(stack=2).project("in stack 2")
    before = snapshot(store)

    response = _with_stacks(api, method, path, "1", "2", json={"name": "x"})

    assert response.status_code == 400, response.text
    body = response.json()
    assert [d["target"] for d in body["error"]["details"]] == ["X-Stack-Id"]
    assert snapshot(store) == before


def test_the_same_stack_id_sent_twice_is_that_stack(api: Api) -> None:
    api.project("in stack 1")

    response = _with_stacks(api, "GET", "/cloud/v6/projects", "1", "1")

    assert [p["name"] for p in response.json()["value"]] == ["in stack 1"]


def test_two_stack_ids_from_an_unknown_caller_are_401_first(api: Api) -> None:
    headers = [("Authorization", "Bearer nobody"), ("X-Stack-Id", "1"), ("X-Stack-Id", "2")]
    assert api.http.get("/cloud/v6/projects", headers=headers).status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/cloud/v6/schedules/1", "DELETE, GET"),
        ("POST", "/cloud/v6/projects/1", "DELETE, GET, PATCH"),
        ("DELETE", "/cloud/v6/load_tests/1/script", "GET, PUT"),
        ("PUT", "/cloud/v6/load_tests/1/schedule", "GET, POST"),
        ("DELETE", "/cloud/v6/projects", "GET, POST"),
        ("PATCH", "/kragle/schedules", "GET, POST, PUT"),
        ("PUT", "/kragle/jobs/byid/1", "DELETE, GET"),
    ],
)
def test_a_405_lists_every_method_the_path_serves(
    api: Api, method: str, path: str, allow: str
) -> None:
    response = api.request(method, path)

    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json()["error"]["code"] == "method_not_allowed"


# --- unknown properties in every dialect ------------------------------------------------------


def _form(fields: dict[str, str]) -> bytes:
    parts = [
        f'--b\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    return ("".join(parts) + "--b--\r\n").encode()


@pytest.fixture
def scene(api: Api) -> dict[str, str]:
    """Path parameters of existing resources in every dialect."""
    project = api.project()
    load_test = api.load_test(project)
    template = api.post("/kragle/schedules", json={"config": {"period": 60}}).json()["id"]
    report = api.post("/api/v1/reports/schedules", json={"attrs": REPORT_ATTRS}).json()
    return {
        "project": str(project),
        "load_test": str(load_test),
        "template": str(template),
        "report": report["data"]["schedule"]["id"],
    }


UNKNOWN_FIELDS = [
    ("POST", "/cloud/v6/projects", {"name": "p", "nmae": "p"}, "nmae"),
    (
        "POST",
        "/cloud/v6/projects/{project}/load_tests",
        {"name": "t", "script": "x", "runer": {"type": "k6"}},
        "runer",
    ),
    ("POST", "/kragle/schedules", {"config": {"period": 60}, "onec": True}, "onec"),
    ("PUT", "/kragle/schedules/", {"id": "{template}", "naem": "x"}, "naem"),
    (
        "POST",
        "/kragle/jobs",
        {"schedule_id": "{template}", "load_test_id": "{load_test}", "loadtest_id": 1},
        "loadtest_id",
    ),
    ("POST", "/api/v1/reports/schedules", {"attrs": REPORT_ATTRS, "attr": {}}, "attr"),
    (
        "POST",
        "/api/v1/reports/schedules",
        {"attrs": REPORT_ATTRS | {"send_too": ["x@example.com"]}},
        "attrs.send_too",
    ),
    ("PUT", "/api/v1/reports/schedules/{report}", {"attrs": {"name": "x"}, "x": 1}, "x"),
    (
        "DELETE",
        "/api/v1/reports/registries",
        {"schedules_ids": ["{report}"], "all": True},
        "all",
    ),
]


def _filled(value: Any, scene: dict[str, str]) -> Any:
    """``value`` with "{name}" strings replaced by the scene's ids (integers where they are)."""
    if isinstance(value, dict):
        return {key: _filled(item, scene) for key, item in value.items()}
    if isinstance(value, list):
        return [_filled(item, scene) for item in value]
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        found = scene[value[1:-1]]
        return int(found) if found.isdigit() else found
    return value


@pytest.mark.parametrize(("method", "path", "body", "target"), UNKNOWN_FIELDS)
def test_an_unknown_field_is_400_naming_it_in_every_dialect_and_changes_nothing(
    api: Api,
    store: Store,
    scene: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any],
    target: str,
) -> None:
    before = snapshot(store)

    response = api.request(method, path.format(**scene), json=_filled(body, scene))

    _refused(response, target, code="unknown_field")
    assert snapshot(store) == before


@pytest.mark.parametrize("content_type", ["multipart/form-data; boundary=b", "urlencoded"])
def test_an_unknown_load_test_form_field_is_400_naming_it_and_changes_nothing(
    api: Api, store: Store, content_type: str
) -> None:
    project = api.project()
    before = snapshot(store)
    fields = {"name": "t", "script": "x", "k6version": "1"}
    if content_type == "urlencoded":
        content = b"name=t&script=x&k6version=1"
        content_type = "application/x-www-form-urlencoded"
    else:
        content = _form(fields)

    response = api.post(
        f"/cloud/v6/projects/{project}/load_tests",
        content=content,
        headers={"Content-Type": content_type},
    )

    _refused(response, "k6version", code="unknown_field")
    assert snapshot(store) == before


def test_resources_read_from_the_api_can_be_sent_back_to_create_another(api: Api) -> None:
    project = api.get(f"/cloud/v6/projects/{api.project('first')}").json()
    load_test = api.get(f"/cloud/v6/load_tests/{api.load_test(project['id'])}").json()
    template = api.post("/kragle/schedules", json={"config": {"period": 60}, "name": "t"}).json()
    read_template = api.get(f"/kragle/schedules/byid/{template['id']}").json()
    job = api.post(
        "/kragle/jobs", json={"schedule_id": template["id"], "load_test_id": load_test["id"]}
    ).json()
    assert api.delete(f"/kragle/jobs/byid/{job['id']}").status_code == 204

    copies = [
        api.post("/cloud/v6/projects", json=project | {"name": "second"}),
        api.post(
            f"/cloud/v6/projects/{project['id']}/load_tests",
            json=load_test | {"name": "second", "script": "x"},
        ),
        api.post("/kragle/schedules", json=read_template),
        api.post("/kragle/jobs", json=job),
    ]

    assert [c.status_code for c in copies] == [201, 201, 200, 200], [c.text for c in copies]
    assert copies[0].json()["id"] != project["id"]
    assert copies[2].json()["id"] != template["id"]


# --- integers a client holds in 64 bits -------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "target"),
    [
        ("POST", "/kragle/jobs", {"schedule_id": 2**64, "load_test_id": 1}, "schedule_id"),
        ("POST", "/kragle/jobs", {"schedule_id": 1, "load_test_id": 0}, "load_test_id"),
        ("PUT", "/kragle/schedules/", {"id": -(2**70), "name": "x"}, "id"),
        ("PATCH", "/cloud/v6/load_tests/{load_test}", {"k6_version": 2**63}, "k6_version"),
        (
            "POST",
            "/cloud/v6/projects/{project}/load_tests",
            {"name": "t", "k6_version": -(2**63) - 1},
            "k6_version",
        ),
    ],
)
def test_an_integer_beyond_64_bits_in_a_body_is_400_and_changes_nothing(
    api: Api,
    store: Store,
    scene: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any],
    target: str,
) -> None:
    before = snapshot(store)

    response = api.request(method, path.format(**scene), json=body)

    _refused(response, target)
    assert snapshot(store) == before


@pytest.mark.parametrize("written", [" 5", "5_0", "+5", "\u0665", "99999999999999999999", "5.0"])
def test_a_form_k6_version_not_written_as_an_integer_is_400(api: Api, written: str) -> None:
    project = api.project()

    response = api.post(
        f"/cloud/v6/projects/{project}/load_tests",
        content=_form({"name": "t", "k6_version": written}),
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )

    _refused(response, "k6_version", code="invalid_type")


# --- the report API's envelope for errors answered before its routes ---------------------------


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("POST", "/api/v1/reports/schedules", "Error creating new schedule"),
        ("PUT", "/api/v1/reports/schedules/{report}", "Error updating schedule"),
        ("DELETE", "/api/v1/reports/registries", "Error deleting report schedules"),
    ],
)
def test_an_oversized_report_body_is_413_in_the_report_envelope(
    api: Api, store: Store, scene: dict[str, str], method: str, path: str, message: str
) -> None:
    before = snapshot(store)

    response = api.request(
        method,
        path.format(**scene),
        content=b" " * (MAX_BODY + 1),
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 413
    body = response.json()
    assert (body["message"], body["status"]) == (message, "error")
    assert body["error"]["code"] == "payload_too_large"
    assert snapshot(store) == before


def test_an_oversized_k6_body_keeps_the_k6_shape(api: Api) -> None:
    response = api.post(
        "/cloud/v6/projects",
        content=b" " * (MAX_BODY + 1),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert "status" not in response.json()


def test_a_method_a_report_path_does_not_serve_is_405_in_the_report_envelope(api: Api) -> None:
    response = api.request("PATCH", "/api/v1/reports/schedules")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    body = response.json()
    assert (body["message"], body["status"]) == ("Method not allowed", "error")
    assert body["error"]["code"] == "method_not_allowed"


# --- hostile bodies ---------------------------------------------------------------------------

HOSTILE_BODIES = [
    b"",
    b"null",
    b"[]",
    b'"text"',
    b"1e999",
    b"\xff\xfe{}",  # not UTF-8
    b'{"name": "\xff"}',
    b'{"name": "\\ud800"}',  # a lone surrogate
    b"\xef\xbb\xbf{}",  # a byte-order mark
    b"[" * 50_000,  # nested past any parser's depth
    b'{"a":' * 20_000,
    b'{"name": 1' + b"0" * 5000 + b"}",
    b'{"name": NaN, "config": {"period": Infinity}}',
    b'{"name": "a", "name": "b"}',
    b'{"starts": {"$gt": ""}, "cron": [], "recurrence_rule": {"byday": [[]]}}',
    b'{"config": {"period": 1e308, "timestamp": -1}, "once": "yes"}',
    b'{"id": 1, "config": null, "once": null, "name": null}',
    b'{"attrs": {"send_to": [{"a": 1}], "hosts": "h", "timezone": 5}}',
    b'{"attrs": {"name": "\\u0000", "send_via": "webhook", "send_to": ["http://[::1"]}}',
    b'{"schedules_ids": [null, 1, "' + b"f" * 100 + b'"]}',
    b'{"schedule_id": 18446744073709551616, "load_test_id": -1}',
    b'{"runner": {"type": "command", "argv": [[]], "env": {"A": 1}}}',
    b'{"note": "' + b"x" * 60_000 + b'"}',
]
FORM_BODIES = [
    b'--b\r\nContent-Disposition: form-data; name="runner"\r\n\r\n'
    + b"[" * 50_000
    + b"\r\n--b--\r\n",
    b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\n\xff\r\n--b--\r\n',
    b'--b\r\nContent-Disposition: form-data; name="k6_version"\r\n\r\n1'
    + b"0" * 5000
    + b"\r\n--b--\r\n",
    b"--b\r\n\r\n\r\n--b--\r\n",
    b"--b--",
]


def _body_routes(app: FastAPI, scene: dict[str, str]) -> list[tuple[str, str]]:
    return [
        (method, route.path.replace("{id}", "1").replace("{schedule_id}", scene["report"]))
        for route in iter_route_contexts(app.routes)
        if route.path
        for method in sorted(route.methods or ())
        if method in ("POST", "PUT", "PATCH", "DELETE")
    ]


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
def test_no_hostile_json_body_makes_a_server_error_on_any_route(
    api: Api, app: FastAPI, scene: dict[str, str], body: bytes
) -> None:
    # TestClient re-raises a server exception: a 500 fails here loudly.
    for method, path in _body_routes(app, scene):
        response = api.request(
            method, path, content=body, headers={"Content-Type": "application/json"}
        )

        assert response.status_code < 500, (method, path)
        if response.status_code >= 400:
            assert response.json()["error"]["code"], (method, path)


@pytest.mark.parametrize("body", FORM_BODIES, ids=range(len(FORM_BODIES)))
def test_no_hostile_form_makes_a_server_error(
    api: Api, store: Store, scene: dict[str, str], body: bytes
) -> None:
    before = snapshot(store)

    response = api.post(
        f"/cloud/v6/projects/{scene['project']}/load_tests",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )

    assert response.status_code == 400, response.text
    assert snapshot(store) == before


# --- query integers ---------------------------------------------------------------------------


@pytest.mark.parametrize("written", ["1_0", "+5", " 5", "5.0", "0x5", "\u0665"])
@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/cloud/v6/projects?$top={}", "$top"),
        ("/cloud/v6/schedules?$skip={}", "$skip"),
        ("/cloud/v6/test_runs?$top={}", "$top"),
        ("/kragle/schedules?page={}", "page"),
        ("/kragle/jobs?page={}", "page"),
        ("/api/v1/reports/schedules?paginate=true&page_size=5&page={}", "page"),
        ("/api/v1/reports/schedules?paginate=true&page=1&page_size={}", "page_size"),
        ("/api/v1/reports/schedules?paginate=false&scheduled_at_start={}", "scheduled_at_start"),
    ],
)
def test_a_query_integer_not_written_in_plain_digits_is_400_naming_it(
    api: Api, path: str, parameter: str, written: str
) -> None:
    _refused(api.get(path.format(quote(written))), parameter)


def test_an_oversized_body_to_a_path_no_report_route_serves_keeps_the_k6_shape(api: Api) -> None:
    response = api.post(
        "/api/v1/reports/nothing",
        content=b" " * (MAX_BODY + 1),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert set(response.json()) == {"error"}
