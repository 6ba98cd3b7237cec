"""The report schedules API against a real Redis: every documented request and response shape,
filters, pagination, the envelopes of errors, auth and tenancy, and the schedule each report
runs on."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from tickwork.core.instants import from_ms, to_us
from tickwork.store import Store

from .api_support import ALICE, BOB, T0, Api, Clock, snapshot

BASE = "/api/v1/reports"
SCHEDULE_KEYS = {
    "end_timestamp",
    "hosts",
    "id",
    "name",
    "schedule",
    "scheduled_at",
    "scheduled_by",
    "send_to",
    "send_via",
    "services",
    "start_timestamp",
    "timezone",
    "type",
}
# The document's create request, verbatim.
DOCUMENTED_ATTRS = {
    "hosts": ["www.service-test-host.it"],
    "name": "one_shot_generic",
    "schedule": "daily",
    "send_to": ["test@test.it"],
    "send_via": "email",
    "timezone": "Europe/Rome",
    "type": "generic",
}


def _create(api: Api, **changes: Any) -> dict[str, Any]:
    response = api.post(f"{BASE}/schedules", json={"attrs": DOCUMENTED_ATTRS | changes})
    assert response.status_code == 200, response.text
    schedule: dict[str, Any] = response.json()["data"]["schedule"]
    return schedule


def _list(api: Api, **params: Any) -> list[dict[str, Any]]:
    response = api.get(f"{BASE}/schedules", params={"paginate": "false", **params})
    assert response.status_code == 200, response.text
    registries: list[dict[str, Any]] = response.json()["data"]["registries"]
    return registries


def _error(response: Any, status: int, message: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert (body["message"], body["status"]) == (message, "error")
    return body["error"]  # type: ignore[no-any-return]


# POST /api/v1/reports/schedules


def test_create_answers_the_documented_envelope(api: Api) -> None:
    response = api.post(f"{BASE}/schedules", json={"attrs": DOCUMENTED_ATTRS})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "message", "status"}
    assert (body["message"], body["status"]) == ("Report schedule created succesfully", "ok")
    schedule = body["data"]["schedule"]
    assert set(body["data"]) == {"schedule"}
    assert set(schedule) == SCHEDULE_KEYS
    assert str(uuid.UUID(schedule["id"])) == schedule["id"]
    assert schedule == DOCUMENTED_ATTRS | {
        "id": schedule["id"],
        "end_timestamp": None,
        "start_timestamp": None,
        "services": None,
        "scheduled_at": to_us(T0),
        "scheduled_by": "alice@example.com",
    }


def test_create_fills_the_optional_attrs(api: Api) -> None:
    response = api.post(
        f"{BASE}/schedules",
        json={
            "attrs": {
                "name": "weekly digest",
                "schedule": "weekly",
                "send_via": "webhook",
                "send_to": ["https://hooks.example/report"],
                "services": ["checkout"],
            }
        },
    )

    schedule = response.json()["data"]["schedule"]
    assert (schedule["timezone"], schedule["type"], schedule["hosts"]) == ("UTC", "generic", None)
    assert schedule["services"] == ["checkout"]


def test_scheduled_at_is_in_microseconds(api: Api, clock: Clock) -> None:
    clock.now = T0 + timedelta(microseconds=412_776)

    schedule = _create(api)

    assert schedule["scheduled_at"] == 1_795_435_200_412_776


@pytest.mark.parametrize(
    ("attrs", "target"),
    [
        pytest.param({"name": None}, "attrs.name", id="name_null"),
        pytest.param({"name": ""}, "attrs.name", id="name_empty"),
        pytest.param({"name": "a\r\nBcc: x@y.z"}, "attrs.name", id="name_header_injection"),
        pytest.param({"services": ["tab\there"]}, "attrs.services.0", id="service_control"),
        pytest.param(
            {"send_via": "webhook", "send_to": ["http://hooks.example/\u0001"]},
            "attrs.send_to.0",
            id="url_control",
        ),
        pytest.param({"schedule": "hourly"}, "attrs.schedule", id="schedule_unknown"),
        pytest.param({"schedule": 1}, "attrs.schedule", id="schedule_number"),
        pytest.param({"send_via": "sms"}, "attrs.send_via", id="send_via_unknown"),
        pytest.param({"send_to": "test@test.it"}, "attrs.send_to", id="send_to_not_list"),
        pytest.param({"send_to": []}, "attrs.send_to", id="send_to_empty"),
        pytest.param({"send_to": ["not an address"]}, "attrs.send_to.0", id="send_to_bad"),
        pytest.param({"send_to": ["a@b.c\r\nBcc: x@y.z"]}, "attrs.send_to.0", id="header_inj"),
        pytest.param({"send_via": "webhook"}, "attrs.send_to.0", id="webhook_needs_urls"),
        pytest.param({"timezone": "Mars/Olympus"}, "attrs.timezone", id="timezone_unknown"),
        pytest.param({"hosts": None}, "attrs.hosts", id="nothing_covered"),
        pytest.param({"hosts": ["bad host"]}, "attrs.hosts.0", id="host_bad"),
        pytest.param({"type": "two words"}, "attrs.type", id="type_bad"),
        pytest.param({"colour": "red"}, "attrs.colour", id="unknown_attr"),
    ],
)
def test_create_refuses_an_invalid_schedule_in_the_envelope(
    api: Api, store: Store, attrs: dict[str, Any], target: str
) -> None:
    before = snapshot(store)

    response = api.post(f"{BASE}/schedules", json={"attrs": DOCUMENTED_ATTRS | attrs})

    error = _error(response, 400, "Error creating new schedule")
    assert error["code"] == "validation_error"
    assert target in {detail["target"] for detail in error["details"]}
    assert snapshot(store) == before


def test_create_needs_attrs(api: Api, store: Store) -> None:
    before = snapshot(store)
    error = _error(
        api.post(f"{BASE}/schedules", json=DOCUMENTED_ATTRS), 400, "Error creating new schedule"
    )
    assert "attrs" in {detail["target"] for detail in error["details"]}
    _error(
        api.post(f"{BASE}/schedules", content=b"{", headers={"Content-Type": "application/json"}),
        400,
        "Error creating new schedule",
    )
    _error(api.post(f"{BASE}/schedules", content=b"attrs"), 415, "Error creating new schedule")
    assert snapshot(store) == before


def test_read_only_fields_sent_back_in_attrs_are_ignored(api: Api) -> None:
    fetched = _create(api)

    response = api.post(f"{BASE}/schedules", json={"attrs": fetched | {"name": "copy"}})

    copy = response.json()["data"]["schedule"]
    assert copy["id"] != fetched["id"]
    assert copy["name"] == "copy"


# GET /api/v1/reports/schedules/{schedule_id}


def test_get_answers_the_documented_envelope(api: Api) -> None:
    created = _create(api)

    response = api.get(f"{BASE}/schedules/{created['id']}")

    assert response.status_code == 200
    assert response.json() == {
        "data": {"schedule": created},
        "message": "Report schedule retrieved",
        "status": "ok",
    }


def test_get_takes_the_id_in_any_case(api: Api) -> None:
    created = _create(api)

    response = api.get(f"{BASE}/schedules/{created['id'].upper()}")

    assert response.json()["data"]["schedule"]["id"] == created["id"]


def test_get_of_a_malformed_id_is_the_documented_400(api: Api) -> None:
    error = _error(api.get(f"{BASE}/schedules/42"), 400, "Error retrieving schedules")
    assert error["details"][0]["target"] == "schedule_id"


def test_get_of_an_unknown_id_is_404_in_the_envelope(api: Api) -> None:
    error = _error(api.get(f"{BASE}/schedules/{uuid.uuid4()}"), 404, "Report schedule not found")
    assert error["code"] == "not_found"


# PUT /api/v1/reports/schedules/{schedule_id}


def test_update_with_the_documented_body_changes_only_those_attrs(api: Api) -> None:
    created = _create(api)

    response = api.put(
        f"{BASE}/schedules/{created['id']}",
        json={"attrs": {"send_to": ["test@test.it", "test2@test.it"], "send_via": "email"}},
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["message"], body["status"]) == ("Report schedule updated succesfully", "ok")
    assert body["data"]["schedule"] == created | {"send_to": ["test@test.it", "test2@test.it"]}
    assert api.get(f"{BASE}/schedules/{created['id']}").json()["data"] == body["data"]


def test_update_checks_the_merged_schedule(api: Api, store: Store) -> None:
    created = _create(api)
    before = snapshot(store)

    to_webhook = api.put(
        f"{BASE}/schedules/{created['id']}", json={"attrs": {"send_via": "webhook"}}
    )
    no_target = api.put(f"{BASE}/schedules/{created['id']}", json={"attrs": {"hosts": None}})
    null_name = api.put(f"{BASE}/schedules/{created['id']}", json={"attrs": {"name": None}})

    assert _error(to_webhook, 400, "Error updating schedule")["details"][0]["target"] == (
        "attrs.send_to.0"
    )
    _error(no_target, 400, "Error updating schedule")
    _error(null_name, 400, "Error updating schedule")
    assert snapshot(store) == before


def test_update_of_an_unknown_schedule_is_404(api: Api) -> None:
    response = api.put(f"{BASE}/schedules/{uuid.uuid4()}", json={"attrs": {"name": "x"}})

    _error(response, 404, "Report schedule not found")


# DELETE /api/v1/reports/registries


def test_delete_with_the_documented_body(api: Api, store: Store) -> None:
    doomed, kept = _create(api), _create(api, name="kept")

    response = api.request("DELETE", f"{BASE}/registries", json={"schedules_ids": [doomed["id"]]})

    assert response.status_code == 200
    assert response.json() == {"message": "Schedules succesfully deleted", "status": "ok"}
    assert [s["id"] for s in _list(api)] == [kept["id"]]
    assert api.get(f"{BASE}/schedules/{doomed['id']}").status_code == 404


def test_delete_removes_the_internal_load_test_and_its_schedule(api: Api, store: Store) -> None:
    before = snapshot(store)
    created = _create(api)

    api.request("DELETE", f"{BASE}/registries", json={"schedules_ids": [created["id"]]})

    # ids handed out stay counted, and its audit trail stays readable; nothing else remains
    trail = {
        store.keys.audit_feed(1, "report").encode(),
        store.keys.audit_of("report", created["id"]).encode(),
        store.keys.stacks.encode(),
    }
    after = {k: v for k, v in snapshot(store).items() if b":ids:" not in k and b":nudge" not in k}
    assert set(after) - set(before) == trail
    assert {k: v for k, v in after.items() if k not in trail} == {
        k: v for k, v in before.items() if b":ids:" not in k
    }
    assert store.client.zcard(store.keys.due) == 0


def test_delete_is_all_or_nothing(api: Api, store: Store) -> None:
    created = _create(api)
    unknown = str(uuid.uuid4())
    before = snapshot(store)

    response = api.request(
        "DELETE", f"{BASE}/registries", json={"schedules_ids": [created["id"], unknown]}
    )

    error = _error(response, 404, "Report schedule not found")
    assert unknown in error["message"]
    assert snapshot(store) == before


@pytest.mark.parametrize(
    "body",
    [{}, {"schedules_ids": []}, {"schedules_ids": ["nope"]}, {"schedules_ids": "x"}],
)
def test_delete_refuses_a_malformed_body(api: Api, store: Store, body: dict[str, Any]) -> None:
    _create(api)
    before = snapshot(store)

    response = api.request("DELETE", f"{BASE}/registries", json=body)

    error = _error(response, 400, "Error deleting report schedules")
    assert error["code"] == "validation_error"
    assert {detail["target"] for detail in error["details"]} == {"schedules_ids"}
    assert snapshot(store) == before


# GET /api/v1/reports/schedules


def test_list_answers_the_documented_envelope(api: Api) -> None:
    created = _create(api)

    response = api.get(f"{BASE}/schedules", params={"paginate": "false"})

    assert response.status_code == 200
    assert response.json() == {
        "data": {"registries": [created]},
        "message": "List of report schedules",
        "status": "ok",
    }


def test_list_pages_oldest_first(api: Api, clock: Clock) -> None:
    ids = []
    for i in range(5):
        clock.now = T0 + timedelta(seconds=i)
        ids.append(_create(api, name=f"r{i}")["id"])

    pages = [
        [s["id"] for s in _list(api, paginate="true", page=page, page_size=2)]
        for page in (1, 2, 3, 4)
    ]

    assert pages == [ids[0:2], ids[2:4], ids[4:5], []]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"paginate": "maybe"},
        {"paginate": "true"},
        {"paginate": "true", "page": "1"},
        {"paginate": "true", "page_size": "10"},
        {"paginate": "true", "page": "0", "page_size": "10"},
        {"paginate": "true", "page": "1", "page_size": "0"},
        {"paginate": "true", "page": "1", "page_size": "100000"},
        {"paginate": "false", "id": "7"},
        {"paginate": "false", "id_list": "a,b"},
        {"paginate": "false", "schedule": "hourly"},
        {"paginate": "false", "scheduled_at_start": "yesterday"},
    ],
)
def test_list_refuses_bad_pagination_fields(api: Api, params: dict[str, str]) -> None:
    response = api.get(f"{BASE}/schedules", params=params)

    _error(response, 400, "Error with pagination fields")


def test_list_filters_by_id_and_id_list(api: Api) -> None:
    a, b, c = (_create(api, name=n)["id"] for n in "abc")

    assert [s["id"] for s in _list(api, id=b)] == [b]
    assert [s["id"] for s in _list(api, id_list=f"{a},{c}")] == [a, c]
    repeated = api.get(f"{BASE}/schedules?paginate=false&id_list={c}&id_list={a}")
    assert [s["id"] for s in repeated.json()["data"]["registries"]] == [a, c]
    assert [s["id"] for s in _list(api, id=a, id_list=f"{a},{b}")] == [a]
    assert _list(api, id=a, id_list=c) == []
    assert _list(api, id=str(uuid.uuid4())) == []


def test_list_filters_by_name_part_type_and_schedule(api: Api) -> None:
    nightly = _create(api, name="Nightly checkout", type="generic")["id"]
    weekly = _create(api, name="weekly search", schedule="weekly", type="sla")["id"]

    assert [s["id"] for s in _list(api, name="CHECK")] == [nightly]
    assert [s["id"] for s in _list(api, name="ly")] == [nightly, weekly]
    assert [s["id"] for s in _list(api, type="sla")] == [weekly]
    assert [s["id"] for s in _list(api, schedule="daily")] == [nightly]
    assert _list(api, name="nothing like it") == []


def test_list_filters_by_scheduled_at_range_and_by_whom(api: Api, clock: Clock) -> None:
    made = []
    for hour in range(3):
        clock.now = T0 + timedelta(hours=hour)
        caller = api if hour < 2 else api.as_("carol-token-0123456789", 1)
        made.append(_create(caller, name=f"h{hour}"))
    at = [s["scheduled_at"] for s in made]

    assert [s["name"] for s in _list(api, scheduled_at_start=at[1])] == ["h1", "h2"]
    assert [s["name"] for s in _list(api, scheduled_by_end=at[1])] == ["h0", "h1"]
    assert [s["name"] for s in _list(api, scheduled_at_start=at[1], scheduled_by_end=at[1])] == [
        "h1"
    ]
    assert [s["name"] for s in _list(api, scheduled_at_end=at[0])] == ["h0"]
    assert [s["name"] for s in _list(api, scheduled_by="carol@example.com")] == ["h2"]
    assert [s["name"] for s in _list(api, scheduled_by="alice@example.com", name="h1")] == ["h1"]


# Auth and tenancy


# A fixed id: test ids must be the same in every collection (pytest-xdist compares them).
SOME_REPORT = "6f1c2e0a-3b7d-4c55-9a8e-2d4f6b8c0e13"


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        ("GET", "/schedules?paginate=false", None, "Unauthorized"),
        ("GET", f"/schedules/{SOME_REPORT}", None, "Unauthorized"),
        ("POST", "/schedules", {"attrs": DOCUMENTED_ATTRS}, "Unauthorized"),
        ("PUT", f"/schedules/{SOME_REPORT}", {"attrs": {"name": "x"}}, "Unauthorized"),
        ("DELETE", "/registries", {"schedules_ids": [SOME_REPORT]}, "Unauthorized"),
    ],
)
def test_every_operation_needs_a_token(
    api: Api, method: str, path: str, body: dict[str, Any] | None, message: str
) -> None:
    response = api.as_(token=None).request(method, BASE + path, json=body)

    assert _error(response, 401, message)["code"] == "unauthenticated"
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_stack_the_token_may_not_use_is_the_documented_403(api: Api) -> None:
    response = api.as_(ALICE, 3).get(f"{BASE}/schedules", params={"paginate": "false"})

    assert _error(response, 403, "Forbidden")["code"] == "forbidden"


def test_another_stacks_schedules_do_not_exist(api: Api, store: Store) -> None:
    created = _create(api)
    bob = api.as_(BOB, 3)
    before = snapshot(store)

    answers = [
        bob.get(f"{BASE}/schedules/{created['id']}"),
        bob.put(f"{BASE}/schedules/{created['id']}", json={"attrs": {"name": "x"}}),
        bob.request("DELETE", f"{BASE}/registries", json={"schedules_ids": [created["id"]]}),
    ]

    for response in answers:
        error = _error(response, 404, "Report schedule not found")
        assert error["code"] == "not_found"
        assert created["id"] in error["message"]
    assert _list(bob) == []
    assert _list(bob, id=created["id"]) == []
    assert snapshot(store) == before


# The engine underneath


def test_a_report_runs_at_the_end_of_each_period_in_its_zone(
    api: Api, store: Store, clock: Clock
) -> None:
    daily = _create(api)  # Europe/Rome: CET, UTC+1 in November
    monthly = _create(api, schedule="monthly", timezone="America/New_York")

    due = {
        report["id"]: from_ms(int(store.client.zscore(store.keys.due, str(schedule_id)) or 0))
        for report in (daily, monthly)
        for schedule_id in [store.reports.get(1, report["id"]).schedule_id]
    }

    assert due[daily["id"]] == T0.replace(hour=23)  # 2026-11-24T00:00 in Rome
    assert due[monthly["id"]] == T0.replace(month=12, day=1, hour=5)  # midnight EST


def test_a_new_period_or_zone_moves_the_next_report(api: Api, store: Store, clock: Clock) -> None:
    created = _create(api)
    schedule_id = store.reports.get(1, created["id"]).schedule_id
    clock.now = T0 + timedelta(hours=1)

    api.put(
        f"{BASE}/schedules/{created['id']}",
        json={"attrs": {"schedule": "weekly", "timezone": "UTC"}},
    )

    due_ms = store.client.zscore(store.keys.due, str(schedule_id))
    assert from_ms(int(due_ms or 0)) == T0.replace(day=30, hour=0)  # Monday 00:00 UTC


def test_a_report_is_neither_a_k6_load_test_nor_a_k6_schedule(api: Api, store: Store) -> None:
    created = _create(api)
    report = store.reports.get(1, created["id"])
    before = snapshot(store)

    answers = [
        api.get(f"/cloud/v6/load_tests/{report.load_test_id}"),
        api.get(f"/cloud/v6/load_tests/{report.load_test_id}/schedule"),
        api.post(f"/cloud/v6/load_tests/{report.load_test_id}/start"),
        api.get(f"/cloud/v6/schedules/{report.schedule_id}"),
        api.delete(f"/cloud/v6/schedules/{report.schedule_id}"),
        api.post(f"/cloud/v6/schedules/{report.schedule_id}/deactivate"),
    ]

    assert [r.status_code for r in answers] == [404] * len(answers)
    assert {r.json()["error"]["code"] for r in answers} == {"not_found"}
    assert snapshot(store) == before
    assert api.get("/cloud/v6/load_tests").json()["value"] == []
    assert api.get("/cloud/v6/schedules").json()["value"] == []
