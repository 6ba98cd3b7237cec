"""The audit trail (issue 14 §3): every change to a schedule or a load test is recorded in the
same transaction, by whom, from where and what changed; the scheduler records expiries;
deleted resources keep their trail; retention removes old entries."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from rq import Queue

from tickwork.core.instants import to_us
from tickwork.scheduler.firing import Firer
from tickwork.scheduler.housekeeping import Housekeeping, RetentionPolicy
from tickwork.store import Store
from tickwork.store.queue import queue

from .api_support import T0, Api, Clock


def _trail(api: Api, path: str, **params: str) -> list[dict[str, Any]]:
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["value"]
    return entries


def _actions(entries: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["action"], e["who"], e["via"]) for e in entries]


def test_a_schedules_life_is_in_its_trail_newest_first(api: Api, clock: Clock) -> None:
    load_test = api.load_test()
    sid = api.schedule(load_test, {"starts": "2026-12-01T08:00:00Z"})["id"]
    clock.now += timedelta(minutes=1)
    api.schedule(
        load_test,
        {"starts": "2026-12-01T09:00:00Z", "recurrence_rule": {"frequency": "DAILY"}},
    )
    clock.now += timedelta(minutes=1)
    api.post(f"/cloud/v6/schedules/{sid}/deactivate", headers={"X-Tickwork-Client": "cli"})
    clock.now += timedelta(minutes=1)
    api.post(f"/cloud/v6/schedules/{sid}/activate", headers={"X-Tickwork-Client": "console"})

    entries = _trail(api, f"/cloud/v6/schedules/{sid}/audit")
    assert _actions(entries) == [
        ("activated", "alice@example.com", "console"),
        ("deactivated", "alice@example.com", "cli"),
        ("overwritten", "alice@example.com", "api"),
        ("created", "alice@example.com", "api"),
    ]
    assert [e["at"] for e in entries] == [
        "2026-11-23T12:03:00Z",
        "2026-11-23T12:02:00Z",
        "2026-11-23T12:01:00Z",
        "2026-11-23T12:00:00Z",
    ]
    overwritten = {c["field"]: (c["old"], c["new"]) for c in entries[2]["changes"]}
    assert overwritten["starts"] == ("2026-12-01T08:00:00Z", "2026-12-01T09:00:00Z")
    assert overwritten["recurrence_rule"][0] is None
    assert overwritten["recurrence_rule"][1]["frequency"] == "DAILY"
    assert {c["field"]: (c["old"], c["new"]) for c in entries[1]["changes"]} == {
        "deactivated": (False, True)
    }


def test_a_no_op_writes_no_entry(api: Api) -> None:
    load_test = api.load_test()
    sid = api.schedule(load_test, {"starts": "2026-12-01T08:00:00Z"})["id"]
    api.post(f"/cloud/v6/schedules/{sid}/activate")  # already active

    assert _actions(_trail(api, f"/cloud/v6/schedules/{sid}/audit")) == [
        ("created", "alice@example.com", "api")
    ]


def test_a_refused_change_writes_no_entry_and_a_written_one_always_does(
    api: Api, store: Store
) -> None:
    load_test = api.load_test()
    sid = api.schedule(load_test, {"starts": "2026-12-01T08:00:00Z"})["id"]
    refused = api.post(f"/cloud/v6/load_tests/{load_test}/schedule", json={"starts": "not a date"})
    assert refused.status_code == 400
    assert len(_trail(api, f"/cloud/v6/schedules/{sid}/audit")) == 1
    # Every version of the record has its entry: the count of changes is the count of entries
    version = int(store.client.hget(store.keys.schedule(sid), "version") or 0)
    assert version == 1


def test_load_test_changes_are_recorded_without_the_script_text(api: Api) -> None:
    load_test = api.load_test(script="export default () => {}")
    api.patch(f"/cloud/v6/load_tests/{load_test}", json={"name": "renamed"})
    api.request(
        "PUT",
        f"/cloud/v6/load_tests/{load_test}/script",
        content=b"export default function () { /* v2 */ }",
        headers={"Content-Type": "application/octet-stream"},
    )

    entries = _trail(api, f"/cloud/v6/load_tests/{load_test}/audit")
    assert [e["action"] for e in entries] == ["script_replaced", "updated", "created"]
    assert [c["field"] for c in entries[0]["changes"]] == ["bytes", "sha256"]
    assert "v2" not in str(entries)
    assert [(c["field"], c["new"]) for c in entries[1]["changes"]] == [("name", "renamed")]


def test_a_deleted_schedule_keeps_its_trail_readable_by_its_stack_only(api: Api) -> None:
    load_test = api.load_test()
    sid = api.schedule(load_test, {"starts": "2026-12-01T08:00:00Z"})["id"]
    assert api.request("DELETE", f"/cloud/v6/schedules/{sid}").status_code == 204

    assert [e["action"] for e in _trail(api, f"/cloud/v6/schedules/{sid}/audit")] == [
        "deleted",
        "created",
    ]
    assert api.as_(stack=2).get(f"/cloud/v6/schedules/{sid}/audit").status_code == 404
    assert api.get("/cloud/v6/schedules/987654/audit").status_code == 404


def test_deleting_a_load_test_records_its_schedule_deleted_with_it(api: Api) -> None:
    load_test = api.load_test()
    sid = api.schedule(load_test, {"starts": "2026-12-01T08:00:00Z"})["id"]
    assert api.request("DELETE", f"/cloud/v6/load_tests/{load_test}").status_code == 204

    (deleted, _) = _trail(api, f"/cloud/v6/schedules/{sid}/audit")
    assert (deleted["action"], deleted["note"]) == ("deleted", "with its load test")
    assert _trail(api, f"/cloud/v6/load_tests/{load_test}/audit")[0]["action"] == "deleted"


def test_the_stack_feed_merges_kinds_newest_first_and_filters_by_kind(
    api: Api, clock: Clock
) -> None:
    load_test = api.load_test()
    clock.now += timedelta(seconds=1)
    sid = api.schedule(load_test, {"starts": "2026-12-01T08:00:00Z"})["id"]

    feed = api.get("/cloud/v6/audit", params={"$count": "true"}).json()
    assert [(e["kind"], e["action"]) for e in feed["value"]] == [
        ("schedule", "created"),
        ("load_test", "created"),
    ]
    assert feed["@count"] == 2
    only = _trail(api, "/cloud/v6/audit", kind="schedule")
    assert [(e["kind"], e["resource_id"]) for e in only] == [("schedule", str(sid))]
    assert api.as_(stack=2).get("/cloud/v6/audit").json()["value"] == []
    assert api.get("/cloud/v6/audit", params={"kind": "run"}).status_code == 400


@pytest.fixture
def rq_queue(store: Store) -> Queue:
    return queue(store.client, f"{store.keys.prefix}-runs")


def test_the_scheduler_records_the_expiry_of_a_one_shot(
    api: Api, store: Store, clock: Clock, rq_queue: Queue
) -> None:
    load_test = api.load_test()
    sid = api.schedule(load_test, {"starts": "2026-11-23T12:05:00Z"})["id"]
    lease = store.leases.acquire("scheduler", "me", 10**9)
    assert lease is not None
    clock.now = T0 + timedelta(minutes=5)
    Firer(store, rq_queue, clock=clock, catch_up=timedelta(minutes=5)).fire_due(lease)

    expired, created = _trail(api, f"/cloud/v6/schedules/{sid}/audit")
    # The commit writes it in a short form (audit.EXPIRY_MARK): read, it is a whole entry.
    assert expired == {
        "id": f"x{sid}-{to_us(T0 + timedelta(minutes=5))}",
        "at": "2026-11-23T12:05:00Z",
        "kind": "schedule",
        "resource_id": str(sid),
        "action": "expired",
        "who": "scheduler",
        "via": "scheduler",
        "changes": [],
        "note": "no occurrence remains",
        "extra": None,
    }
    assert created["action"] == "created"
    assert _trail(api, "/cloud/v6/audit", kind="schedule")[0] == expired

    # and retention removes it from both, as any other entry
    clock.now = T0 + timedelta(days=100)
    policy = RetentionPolicy(audit_retention=timedelta(days=90), run_retention=None)
    Housekeeping(store, policy, clock=clock).step()
    assert _trail(api, f"/cloud/v6/schedules/{sid}/audit") == []
    assert _trail(api, "/cloud/v6/audit", kind="schedule") == []


def _fire(store: Store, rq_queue: Queue, clock: Clock) -> None:
    lease = store.leases.acquire("scheduler", "me", 10**9)
    assert lease is not None
    Firer(store, rq_queue, clock=clock, catch_up=timedelta(minutes=5)).fire_due(lease)


def _paged(api: Api, path: str, top: int) -> tuple[list[dict[str, Any]], set[int]]:
    """A trail read page by page, ``top`` a page, and the counts each page gave."""
    entries, counts, skip = [], set(), 0
    while True:
        response = api.get(path, params={"$top": str(top), "$skip": str(skip), "$count": "true"})
        assert response.status_code == 200, response.text
        page = response.json()
        counts.add(page["@count"])
        entries += page["value"]
        if not page["value"]:
            return entries, counts
        skip += top


def test_an_expiry_stays_in_its_trail_once_whatever_is_done_to_the_schedule_after(
    api: Api, store: Store, clock: Clock, rq_queue: Queue
) -> None:
    # The fire commit writes an expiry to the stack's feed alone; the schedule's trail shows
    # it from the record, and a change to the record copies it into the trail first.
    load_test = api.load_test()
    sid = api.schedule(load_test, {"starts": "2026-11-23T12:05:00Z"})["id"]
    trail, feed = f"/cloud/v6/schedules/{sid}/audit", "/cloud/v6/audit"
    clock.now = T0 + timedelta(minutes=1)
    assert api.post(f"/cloud/v6/schedules/{sid}/deactivate").status_code == 204
    clock.now = T0 + timedelta(minutes=2)
    assert api.post(f"/cloud/v6/schedules/{sid}/activate").status_code == 204
    clock.now = T0 + timedelta(minutes=5)
    _fire(store, rq_queue, clock)
    assert store.client.zcard(store.keys.audit_of("schedule", str(sid))) == 3  # not written
    expected = ["expired", "activated", "deactivated", "created"]
    assert [e["action"] for e in _trail(api, trail)] == expected
    for top in (1, 2, 3):  # the shown expiry takes its place in every page
        entries, counts = _paged(api, trail, top)
        assert ([e["action"] for e in entries], counts) == (expected, {4})

    # Overwritten with an instant already past: still expired, its expiry listed once
    clock.now = T0 + timedelta(minutes=6)
    api.schedule(load_test, {"starts": "2026-11-23T12:04:00Z"})
    expected.insert(0, "overwritten")
    assert [e["action"] for e in _trail(api, trail)] == expected
    # Overwritten again, with a future instant, which fires and expires in turn
    clock.now = T0 + timedelta(minutes=7)
    api.schedule(load_test, {"starts": "2026-11-23T12:10:00Z"})
    clock.now = T0 + timedelta(minutes=10)
    _fire(store, rq_queue, clock)
    expected[:0] = ["expired", "overwritten"]
    entries = _trail(api, trail)
    assert [e["action"] for e in entries] == expected
    assert [e["at"] for e in entries if e["action"] == "expired"] == [
        "2026-11-23T12:10:00Z",
        "2026-11-23T12:05:00Z",
    ]
    # Deleted: the trail keeps both expiries, readable by the stack, and the feed agrees
    clock.now = T0 + timedelta(minutes=11)
    assert api.delete(f"/cloud/v6/schedules/{sid}").status_code == 204
    expected.insert(0, "deleted")
    entries = _trail(api, trail)
    assert [e["action"] for e in entries] == expected
    assert _trail(api, feed, kind="schedule") == entries
    for top in (1, 4):
        assert _paged(api, trail, top) == (entries, {len(expected)})

    # and retention removes them from both, as any other entry
    clock.now = T0 + timedelta(days=100)
    policy = RetentionPolicy(audit_retention=timedelta(days=90), run_retention=None)
    Housekeeping(store, policy, clock=clock).step()
    assert api.get(trail).status_code == 404  # a deleted schedule is known by its entries
    assert _trail(api, feed, kind="schedule") == []


def test_retention_removes_old_entries_from_every_index(
    api: Api, store: Store, clock: Clock
) -> None:
    load_test = api.load_test()
    sid = api.schedule(
        load_test, {"starts": "2026-12-01T08:00:00Z", "recurrence_rule": {"frequency": "DAILY"}}
    )["id"]
    clock.now = T0 + timedelta(days=100)
    assert api.post(f"/cloud/v6/schedules/{sid}/deactivate").status_code == 204
    policy = RetentionPolicy(audit_retention=timedelta(days=90), run_retention=None)
    Housekeeping(store, policy, clock=clock).step()

    assert [e["action"] for e in _trail(api, f"/cloud/v6/schedules/{sid}/audit")] == ["deactivated"]
    assert [e["action"] for e in _trail(api, "/cloud/v6/audit")] == ["deactivated"]
    assert _trail(api, f"/cloud/v6/load_tests/{load_test}/audit") == []
