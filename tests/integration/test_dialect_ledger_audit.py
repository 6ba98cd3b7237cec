"""The occurrence ledger and the audit trail of the Kragle and report dialects (issue 14):
a Kragle job's and a report's occurrences, with the engine's notes and what happened, under
each dialect's own path; the audit trail of Kragle schedules, Kragle jobs and reports, written
in the same transaction as the change, by whom and from where.

The API and an in-process leader share a real Redis and one hand-moved clock, so every outcome
is produced the way production produces it (fired and skipped runs by the fire commit).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from rq import Queue

from tickwork.core.reports import report_schedule
from tickwork.scheduler.firing import Firer
from tickwork.store import Lease, ReportRecord, Store, TemplateRecord
from tickwork.store.audit import Actor
from tickwork.store.queue import queue

from .api_support import BOB, T0, Api, Clock, snapshot

REPORTS = "/api/v1/reports"
REPORT_ATTRS = {
    "name": "nightly digest",
    "schedule": "daily",
    "send_via": "email",
    "send_to": ["ops@example.com"],
    "timezone": "America/Santiago",
    "hosts": ["shop.example.com"],
}


@pytest.fixture
def rq_queue(store: Store) -> Queue:
    return queue(store.client, f"{store.keys.prefix}-runs")


@pytest.fixture
def leader(store: Store, rq_queue: Queue, clock: Clock) -> tuple[Firer, Lease]:
    firer = Firer(store, rq_queue, clock=clock, catch_up=timedelta(minutes=5))
    lease = store.leases.acquire("scheduler", "me", 10**9)
    assert lease is not None
    return firer, lease


def _fire(leader: tuple[Firer, Lease]) -> None:
    firer, lease = leader
    while firer.fire_due(lease).full:
        pass


def _template(api: Api, body: dict[str, Any], **headers: str) -> int:
    response = api.post("/kragle/schedules", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def _job(api: Api, template: int, load_test: int | None = None) -> int:
    load_test = load_test if load_test is not None else api.load_test()
    response = api.post("/kragle/jobs", json={"schedule_id": template, "load_test_id": load_test})
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def _report(api: Api, **headers: str) -> str:
    response = api.post(f"{REPORTS}/schedules", json={"attrs": REPORT_ATTRS}, headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["schedule"]["id"])


def _job_occurrences(api: Api, job: int, **params: str) -> dict[str, Any]:
    response = api.get(f"/kragle/jobs/byid/{job}/occurrences", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _trail(api: Api, path: str, **params: str) -> list[dict[str, Any]]:
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    entries: list[dict[str, Any]] = (
        body["data"]["entries"] if path.startswith(REPORTS) else body["entries"]
    )
    return entries


def _who(entries: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["action"], e["who"], e["via"]) for e in entries]


def _changes(entry: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {c["field"]: (c["old"], c["new"]) for c in entry["changes"]}


def _local_path(link: str) -> str:
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


# A Kragle job's occurrences


def test_a_kragle_jobs_past_occurrences_say_what_happened(
    api: Api, store: Store, clock: Clock, leader: tuple[Firer, Lease]
) -> None:
    # Given an hourly Kragle schedule bound to a load test at T0 (first run at T0 + 1 h)
    job = _job(api, _template(api, {"config": {"period": 3600}}))
    # When the leader is away until 2 minutes after the 4th occurrence, then fires the 5th
    # while the 4th's run has not finished (overlap skip is a job's default)
    clock.now = T0 + timedelta(hours=4, minutes=2)
    _fire(leader)
    clock.now = T0 + timedelta(hours=5, milliseconds=7)
    _fire(leader)

    items = _job_occurrences(api, job, after="2026-11-23T12:00:00Z", limit="6")["value"]

    assert [(i["instant"], i["outcome"], i["reason"]) for i in items] == [
        ("2026-11-23T13:00:00Z", "skipped", "missed"),
        ("2026-11-23T14:00:00Z", "skipped", "missed"),
        ("2026-11-23T15:00:00Z", "skipped", "missed"),
        ("2026-11-23T16:00:00Z", "fired", None),
        ("2026-11-23T17:00:00Z", "skipped", "overlap"),
        ("2026-11-23T18:00:00Z", "upcoming", None),
    ]
    fired = items[3]
    assert fired["lateness_ms"] == 120_000
    assert fired["run_status"] == "created"
    run = api.get(f"/cloud/v6/test_runs/{fired['run_id']}").json()
    assert run["schedule_id"] == job  # the run the job fired, readable through the k6 API
    assert all(i["run_id"] for i in items[:5])
    assert items[0]["local"] == "2026-11-23T13:00:00+00:00"


def test_a_kragle_jobs_occurrences_page_with_a_next_link(api: Api) -> None:
    job = _job(api, _template(api, {"config": {"period": 600}}))

    first = _job_occurrences(api, job, limit="2")
    second = api.get(_local_path(first["@nextLink"])).json()

    assert [i["instant"] for i in first["value"] + second["value"]] == [
        "2026-11-23T12:10:00Z",
        "2026-11-23T12:20:00Z",
        "2026-11-23T12:30:00Z",
        "2026-11-23T12:40:00Z",
    ]
    assert {i["outcome"] for i in first["value"]} == {"upcoming"}


def test_a_one_time_kragle_jobs_only_occurrence_is_noted_last(api: Api) -> None:
    at = int((T0 + timedelta(days=2)).timestamp())
    job = _job(api, _template(api, {"once": True, "config": {"timestamp": at}}))

    body = _job_occurrences(api, job, limit="5")

    (only,) = body["value"]
    assert only["instant"] == "2026-11-25T12:00:00Z"
    assert [n["code"] for n in only["notes"]] == ["last"]
    assert "@nextLink" not in body


@pytest.mark.parametrize(
    ("params", "target"),
    [
        ({"after": "yesterday"}, "after"),
        ({"before": "2026-11-01T00:00:00Z"}, "before"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
    ],
)
def test_a_kragle_jobs_bad_window_is_400_naming_the_parameter(
    api: Api, store: Store, params: dict[str, str], target: str
) -> None:
    job = _job(api, _template(api, {"config": {"period": 60}}))
    before = snapshot(store)

    response = api.get(f"/kragle/jobs/byid/{job}/occurrences", params=params)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert [d["target"] for d in response.json()["error"]["details"]] == [target]
    assert snapshot(store) == before


def test_occurrences_are_each_dialects_own(api: Api) -> None:
    load_test = api.load_test()
    k6 = api.schedule(load_test, {"starts": "2026-12-01T08:00:00Z"})["id"]
    job = _job(api, _template(api, {"config": {"period": 60}}), load_test)

    assert api.get(f"/kragle/jobs/byid/{k6}/occurrences").status_code == 404
    assert api.get(f"/cloud/v6/schedules/{job}/occurrences").status_code == 404
    for other in (api.as_(BOB, 3), api.as_(stack=2)):
        response = other.get(f"/kragle/jobs/byid/{job}/occurrences")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


# A report's occurrences


def test_a_reports_occurrences_are_its_local_midnights_with_dst_notes(api: Api) -> None:
    report = _report(api)

    response = api.get(
        f"{REPORTS}/schedules/{report}/occurrences",
        params={"after": "2027-09-03T12:00:00Z", "limit": "2"},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["message"], body["status"]) == ("Report schedule occurrences", "ok")
    first, gap = body["data"]["occurrences"]
    assert (first["instant"], first["local"], first["notes"]) == (
        "2027-09-04T04:00:00Z",
        "2027-09-04T00:00:00-04:00",
        [],
    )
    # Santiago's clocks skip from midnight to 01:00: the report runs at the end of the gap
    assert (gap["instant"], gap["local"]) == ("2027-09-05T04:00:00Z", "2027-09-05T01:00:00-03:00")
    assert [n["code"] for n in gap["notes"]] == ["dst_gap"]
    following = api.get(_local_path(body["data"]["next_link"])).json()["data"]["occurrences"]
    assert following[0]["instant"] == "2027-09-06T03:00:00Z"


def test_a_reports_past_occurrence_names_the_run_it_fired(
    api: Api, clock: Clock, leader: tuple[Firer, Lease]
) -> None:
    report = _report(api)
    clock.now = T0.replace(day=24, hour=3, microsecond=10_000)  # Santiago's midnight (UTC-3)
    _fire(leader)

    body = api.get(
        f"{REPORTS}/schedules/{report}/occurrences",
        params={"after": "2026-11-23T00:00:00Z", "limit": "2"},
    ).json()

    fired, coming = body["data"]["occurrences"]
    assert (fired["instant"], fired["outcome"], fired["lateness_ms"]) == (
        "2026-11-24T03:00:00Z",
        "fired",
        10,
    )
    assert api.get(f"/cloud/v6/test_runs/{fired['run_id']}").status_code == 200
    assert (coming["instant"], coming["outcome"]) == ("2026-11-25T03:00:00Z", "upcoming")


def test_a_reports_occurrences_refuse_bad_input_in_the_envelope(api: Api, store: Store) -> None:
    report = _report(api)
    before = snapshot(store)

    bad_after = api.get(f"{REPORTS}/schedules/{report}/occurrences", params={"after": "soon"})
    bad_id = api.get(f"{REPORTS}/schedules/42/occurrences")

    for response, target in ((bad_after, "after"), (bad_id, "schedule_id")):
        assert response.status_code == 400, response.text
        body = response.json()
        assert (body["message"], body["status"]) == ("Error listing occurrences", "error")
        assert [d["target"] for d in body["error"]["details"]] == [target]
    assert snapshot(store) == before


def test_another_stacks_report_has_no_occurrences_to_show(api: Api) -> None:
    report = _report(api)

    for other in (api.as_(BOB, 3), api.as_(stack=2)):
        response = other.get(f"{REPORTS}/schedules/{report}/occurrences")
        assert response.status_code == 404
        body = response.json()
        assert (body["message"], body["error"]["code"]) == (
            "Report schedule not found",
            "not_found",
        )


# The audit trail of Kragle schedules and jobs


def test_a_kragle_schedules_life_is_in_its_trail_newest_first(api: Api, clock: Clock) -> None:
    template = _template(api, {"config": {"period": 60}})
    clock.now += timedelta(minutes=1)
    api.put(
        "/kragle/schedules/",
        json={"id": template, "name": "nightly"},
        headers={"X-Tickwork-Client": "cli"},
    )
    clock.now += timedelta(minutes=1)
    api.put(
        "/kragle/schedules/",
        json={"id": template, "config": {"period": 120}},
        headers={"X-Tickwork-Client": "console"},
    )
    clock.now += timedelta(minutes=1)
    assert api.delete(f"/kragle/schedules/byid/{template}").status_code == 204

    entries = _trail(api, f"/kragle/schedules/byid/{template}/audit")

    assert _who(entries) == [
        ("deleted", "alice@example.com", "api"),
        ("updated", "alice@example.com", "console"),
        ("updated", "alice@example.com", "cli"),
        ("created", "alice@example.com", "api"),
    ]
    assert [e["at"] for e in entries] == [
        "2026-11-23T12:03:00Z",
        "2026-11-23T12:02:00Z",
        "2026-11-23T12:01:00Z",
        "2026-11-23T12:00:00Z",
    ]
    assert {e["kind"] for e in entries} == {"kragle_schedule"}
    assert _changes(entries[1]) == {"config": ({"period": 60}, {"period": 120})}
    assert _changes(entries[2]) == {"name": (None, "nightly")}


def test_a_kragle_schedules_trail_pages_ten_at_a_time(api: Api, clock: Clock) -> None:
    template = _template(api, {"config": {"period": 60}})
    for n in range(11):
        clock.now += timedelta(seconds=1)
        api.put("/kragle/schedules/", json={"id": template, "name": f"v{n}"})

    first = api.get(f"/kragle/schedules/byid/{template}/audit").json()
    second = api.get(f"/kragle/schedules/byid/{template}/audit", params={"page": 2}).json()

    assert (first["count"], first["pagesize"], first["page"]) == (12, 10, 1)
    assert [e["action"] for e in second["entries"]] == ["updated", "created"]
    assert _changes(second["entries"][0]) == {"name": (None, "v0")}


def test_a_kragle_jobs_life_is_in_its_trail(api: Api, clock: Clock) -> None:
    load_test = api.load_test()
    template = _template(api, {"config": {"period": 60}})
    job = _job(api, template, load_test)
    clock.now += timedelta(minutes=1)
    api.put("/kragle/schedules/", json={"id": template, "name": "renamed"})  # moves no job
    api.put("/kragle/schedules/", json={"id": template, "config": {"period": 300}})
    clock.now += timedelta(minutes=1)
    assert (
        api.delete(f"/kragle/jobs/byid/{job}", headers={"X-Tickwork-Client": "cli"}).status_code
        == 204
    )

    entries = _trail(api, f"/kragle/jobs/byid/{job}/audit")

    assert _who(entries) == [
        ("deleted", "alice@example.com", "cli"),
        ("updated", "alice@example.com", "api"),
        ("created", "alice@example.com", "api"),
    ]
    deleted, moved, created = entries
    assert (moved["note"], _changes(moved)) == (
        "with its schedule",
        {"config": ({"period": 60}, {"period": 300})},
    )
    assert created["extra"] == {"schedule_id": template, "load_test_id": load_test}
    assert {e["kind"] for e in entries} == {"kragle_job"}
    assert deleted["at"] == "2026-11-23T12:02:00Z"


def test_jobs_deleted_with_their_schedule_say_so(api: Api) -> None:
    template = _template(api, {"config": {"period": 60}})
    jobs = [_job(api, template) for _ in range(2)]

    assert api.delete(f"/kragle/schedules/byid/{template}").status_code == 204

    for job in jobs:
        deleted, created = _trail(api, f"/kragle/jobs/byid/{job}/audit")
        assert (deleted["action"], deleted["note"], deleted["who"]) == (
            "deleted",
            "with its schedule",
            "alice@example.com",
        )
        assert created["action"] == "created"


def test_a_job_deleted_with_its_load_test_says_so(api: Api) -> None:
    load_test = api.load_test()
    job = _job(api, _template(api, {"config": {"period": 60}}), load_test)

    assert api.delete(f"/cloud/v6/load_tests/{load_test}").status_code == 204

    deleted, created = _trail(api, f"/kragle/jobs/byid/{job}/audit")
    assert (deleted["action"], deleted["note"]) == ("deleted", "with its load test")
    assert created["action"] == "created"


def test_a_job_deleted_with_its_load_test_names_who_deleted_it(api: Api) -> None:
    load_test = api.load_test()
    job = _job(api, _template(api, {"config": {"period": 60}}), load_test)

    assert api.delete(f"/cloud/v6/load_tests/{load_test}").status_code == 204

    deleted, _ = _trail(api, f"/kragle/jobs/byid/{job}/audit")
    assert (deleted["who"], deleted["via"], deleted["at"]) == (
        "alice@example.com",
        "api",
        "2026-11-23T12:00:00Z",
    )


def test_a_deleted_kragle_trail_stays_readable_by_its_stack_only(api: Api, store: Store) -> None:
    template = _template(api, {"config": {"period": 60}})
    job = _job(api, template)
    assert api.delete(f"/kragle/schedules/byid/{template}").status_code == 204
    before = snapshot(store)

    for path in (f"/kragle/schedules/byid/{template}/audit", f"/kragle/jobs/byid/{job}/audit"):
        assert [e["action"] for e in _trail(api, path)] == ["deleted", "created"]
        # a page past the end of a deleted one's trail is empty, not a 404
        assert _trail(api, path, page="2") == []
        for other in (api.as_(BOB, 3), api.as_(stack=2)):
            response = other.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "not_found"
    assert api.get("/kragle/schedules/byid/987654/audit").status_code == 404
    assert api.get("/kragle/jobs/byid/987654/audit").status_code == 404
    assert snapshot(store) == before


def test_a_refused_kragle_change_writes_no_entry(api: Api, store: Store) -> None:
    template = _template(api, {"config": {"period": 60}})
    load_test = api.load_test()
    _job(api, template, load_test)
    before = snapshot(store)

    refused = [
        api.put("/kragle/schedules/", json={"id": template, "config": {"period": 0}}),
        api.post("/kragle/jobs", json={"schedule_id": template, "load_test_id": load_test}),
        api.as_(BOB, 3).delete(f"/kragle/schedules/byid/{template}"),
    ]

    assert [r.status_code for r in refused] == [400, 409, 404]
    assert snapshot(store) == before


# The audit trail of reports


def test_a_reports_life_is_in_its_trail_in_the_envelope(api: Api, clock: Clock) -> None:
    report = _report(api, **{"X-Tickwork-Client": "console"})
    clock.now += timedelta(minutes=1)
    updated = api.put(
        f"{REPORTS}/schedules/{report}",
        json={
            "attrs": {"name": "weekly digest", "schedule": "weekly", "timezone": "America/Santiago"}
        },
    )
    assert updated.status_code == 200, updated.text
    clock.now += timedelta(minutes=1)
    deleted = api.request(
        "DELETE",
        f"{REPORTS}/registries",
        json={"schedules_ids": [report]},
        headers={"X-Tickwork-Client": "cli"},
    )
    assert deleted.status_code == 200, deleted.text

    response = api.get(f"{REPORTS}/schedules/{report}/audit")

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["message"], body["status"], body["data"]["count"]) == (
        "Report schedule audit trail",
        "ok",
        3,
    )
    entries = body["data"]["entries"]
    assert _who(entries) == [
        ("deleted", "alice@example.com", "cli"),
        ("updated", "alice@example.com", "api"),
        ("created", "alice@example.com", "console"),
    ]
    assert {(e["kind"], e["resource_id"]) for e in entries} == {("report", report)}
    # only the attrs that changed: the timezone was sent as it was
    assert _changes(entries[1]) == {
        "name": ("nightly digest", "weekly digest"),
        "schedule": ("daily", "weekly"),
    }
    assert [e["at"] for e in entries] == [
        "2026-11-23T12:02:00Z",
        "2026-11-23T12:01:00Z",
        "2026-11-23T12:00:00Z",
    ]
    paged = api.get(f"{REPORTS}/schedules/{report}/audit", params={"page": 2, "page_size": 2})
    assert [e["action"] for e in paged.json()["data"]["entries"]] == ["created"]


def test_a_deleted_reports_trail_stays_readable_by_its_stack_only(api: Api, store: Store) -> None:
    report = _report(api)
    api.request("DELETE", f"{REPORTS}/registries", json={"schedules_ids": [report]})
    before = snapshot(store)

    assert [e["action"] for e in _trail(api, f"{REPORTS}/schedules/{report}/audit")] == [
        "deleted",
        "created",
    ]
    for other in (api.as_(BOB, 3), api.as_(stack=2)):
        response = other.get(f"{REPORTS}/schedules/{report}/audit")
        assert response.status_code == 404
        body = response.json()
        assert (body["message"], body["error"]["code"]) == (
            "Report schedule not found",
            "not_found",
        )
    never = api.get(f"{REPORTS}/schedules/6f1c2e0a-3b7d-4c55-9a8e-2d4f6b8c0e13/audit")
    assert never.status_code == 404
    assert snapshot(store) == before


def test_a_refused_report_change_writes_no_entry(api: Api, store: Store) -> None:
    report = _report(api)
    before = snapshot(store)

    refused = [
        api.put(f"{REPORTS}/schedules/{report}", json={"attrs": {"timezone": "Mars/Olympus"}}),
        api.request(
            "DELETE",
            f"{REPORTS}/registries",
            json={"schedules_ids": [report, "6f1c2e0a-3b7d-4c55-9a8e-2d4f6b8c0e13"]},
        ),
    ]

    assert [r.status_code for r in refused] == [400, 404]
    assert snapshot(store) == before


# The stack's feed holds every kind


def test_the_stack_feed_holds_kragle_and_report_entries_by_kind(api: Api, clock: Clock) -> None:
    load_test = api.load_test()
    clock.now += timedelta(seconds=1)
    template = _template(api, {"config": {"period": 60}})
    clock.now += timedelta(seconds=1)
    job = _job(api, template, load_test)
    clock.now += timedelta(seconds=1)
    report = _report(api)

    def feed(kind: str) -> list[tuple[str, str]]:
        return [(e["resource_id"], e["action"]) for e in _feed(api, kind)]

    assert feed("kragle_schedule") == [(str(template), "created")]
    assert feed("kragle_job") == [(str(job), "created")]
    assert feed("report") == [(report, "created")]
    everything = [e["kind"] for e in _feed(api, None)]
    assert everything == ["report", "kragle_job", "kragle_schedule", "load_test"]
    assert _feed(api.as_(BOB, 3), None) == []


def _feed(api: Api, kind: str | None) -> list[dict[str, Any]]:
    response = api.get("/cloud/v6/audit", params={"kind": kind} if kind else {})
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["value"]
    return entries


# Written in the same transaction as the change


def test_an_attempt_voided_by_a_race_leaves_no_entry(store: Store) -> None:
    # Given a template, and a change whose first attempt another writer races
    actor = Actor("alice@example.com", "api")
    template = store.kragle.create(
        1,
        name=None,
        once=False,
        config={"period": 60},
        schedule=report_schedule("daily", "UTC", now=T0),
        anchor=T0,
        now=T0,
        created_by=None,
        actor=actor,
    )
    attempts = 0

    def change(current: TemplateRecord) -> TemplateRecord:
        nonlocal attempts
        attempts += 1
        if attempts == 1:  # another writer, between this attempt's reads and its commit
            store.client.hset(store.keys.kragle_schedule(template.id), "name", json.dumps("raced"))
        return replace(current, name="mine", version=current.version + 1)

    # When the change commits on its second attempt
    store.kragle.update(1, template.id, change, now=T0, actor=actor)

    # Then the trail has the one committed change, from what the winner read
    entries, total = store.audit.of("kragle_schedule", template.id, skip=0, top=10)
    assert attempts == 2
    assert total == 2
    assert [e.action for e in entries] == ["updated", "created"]
    assert [(c.field, c.old, c.new) for c in entries[0].changes] == [("name", "raced", "mine")]


def test_a_report_update_voided_by_a_race_leaves_no_entry(store: Store) -> None:
    attrs = {**REPORT_ATTRS, "type": "generic", "services": None}
    created = store.reports.create(
        1,
        attrs=attrs,
        schedule=report_schedule("daily", "UTC", now=T0),
        now=T0,
        scheduled_by=None,
    )
    key = store.keys.report(created.id)
    attempts = 0

    def change(current: ReportRecord) -> tuple[ReportRecord, None]:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            store.client.hset(key, "scheduled_by", "someone else")
        return replace(current, attrs={**current.attrs, "name": "renamed"}), None

    store.reports.update(1, created.id, change, now=T0)

    entries, total = store.audit.of("report", created.id, skip=0, top=10)
    assert (attempts, total) == (2, 2)
    assert [(c.field, c.new) for c in entries[0].changes] == [("name", "renamed")]
