"""Blackout windows through the API and the fire commit (issue 16 §2), against the real Redis:
skip and defer as the ledger shows them, the preview, the race with a window created between
a plan and its commit, and bad input."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from rq import Queue

from tickwork.scheduler.firing import Firer
from tickwork.store import Lease, Store

from .api_support import T0, Api, Clock, snapshot

HOURLY = {"starts": "2026-11-23T13:00:00Z", "recurrence_rule": {"frequency": "HOURLY"}}


def _hourly(api: Api) -> tuple[int, int]:
    load_test = api.load_test()
    return api.schedule(load_test, HOURLY | {"overlap": "allow"})["id"], load_test


def _window(api: Api, body: dict[str, Any], schedule_id: int | None = None) -> dict[str, Any]:
    path = "/cloud/v6/blackout_windows"
    if schedule_id is not None:
        path = f"/cloud/v6/schedules/{schedule_id}/blackout_windows"
    response = api.post(path, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _occurrences(api: Api, sid: int, after: str = "2026-11-23T12:00:00Z") -> list[Any]:
    items: list[Any] = api.get(
        f"/cloud/v6/schedules/{sid}/occurrences", params={"after": after, "limit": "6"}
    ).json()["value"]
    return items


def _fire_at(firer: Firer, lease: Lease, clock: Clock, hours: float) -> list[str]:
    clock.now = T0 + timedelta(hours=hours)
    return [at.strftime("%H:%M") for _, at in firer.fire_due(lease).fired]


def test_a_stack_skip_window_skips_the_occurrences_inside_and_the_ledger_names_it(
    api: Api, firer: Firer, lease: Lease, clock: Clock
) -> None:
    sid, _ = _hourly(api)
    window = _window(
        api, {"from": "2026-11-23T13:30:00Z", "to": "2026-11-23T15:30:00Z", "note": "freeze"}
    )
    # The preview says so before anything happens
    coming = [(i["instant"][11:16], i["outcome"], i["window_id"]) for i in _occurrences(api, sid)]
    assert coming[:4] == [
        ("13:00", "upcoming", None),
        ("14:00", "blackout", window["id"]),
        ("15:00", "blackout", window["id"]),
        ("16:00", "upcoming", None),
    ]

    fired = [_fire_at(firer, lease, clock, h) for h in (1, 2, 3, 4)]

    assert fired == [["13:00"], [], [], ["16:00"]]
    past = [(i["outcome"], i["reason"], i["window_id"]) for i in _occurrences(api, sid)][:4]
    assert past == [
        ("fired", None, None),
        ("skipped", "blackout", window["id"]),
        ("skipped", "blackout", window["id"]),
        ("fired", None, None),
    ]


def test_a_defer_window_runs_once_at_its_end_and_records_the_rest_deferred(
    api: Api, firer: Firer, lease: Lease, clock: Clock, store: Store
) -> None:
    sid, load_test = _hourly(api)
    window = _window(
        api,
        {"from": "2026-11-23T13:30:00Z", "to": "2026-11-23T16:30:00Z", "policy": "defer"},
        schedule_id=sid,
    )
    assert api.get(f"/cloud/v6/schedules/{sid}/blackout_windows").json()["value"] == [window]

    # 14:00, 15:00 and 16:00 are inside: nothing runs until 16:30
    assert _fire_at(firer, lease, clock, 1) == ["13:00"]
    for hours in (2, 3, 4, 4.49):
        assert _fire_at(firer, lease, clock, hours) == []
    assert store.client.zscore(store.keys.due, str(sid)) == pytest.approx(
        (T0 + timedelta(hours=4.5)).timestamp() * 1000
    )

    assert _fire_at(firer, lease, clock, 4.5) == ["16:00"]
    assert _fire_at(firer, lease, clock, 5) == ["17:00"]

    items = _occurrences(api, sid)
    assert [(i["instant"][11:16], i["outcome"], i["reason"]) for i in items[:5]] == [
        ("13:00", "fired", None),
        ("14:00", "skipped", "deferred"),
        ("15:00", "skipped", "deferred"),
        ("16:00", "fired", None),
        ("17:00", "fired", None),
    ]
    assert (items[3]["planned_for"], items[3]["window_id"]) == (
        "2026-11-23T16:30:00Z",
        window["id"],
    )
    runs = api.get(f"/cloud/v6/load_tests/{load_test}/test_runs").json()["value"]
    deferred = [r for r in runs if r["scheduled_for"] == "2026-11-23T16:00:00Z"]
    assert [(r["status"], r["planned_for"]) for r in deferred] == [
        ("created", "2026-11-23T16:30:00Z")
    ]


def test_a_window_created_after_the_plan_is_honoured_by_the_commit(
    api: Api, store: Store, rq_queue: Queue, clock: Clock, lease: Lease
) -> None:
    # Given a fire planned and encoded ahead for 13:00 (the look-ahead's plan)
    sid, load_test = _hourly(api)
    ahead = Firer(
        store, rq_queue, clock=clock, catch_up=timedelta(minutes=5), lookahead=timedelta(hours=2)
    )
    clock.now = T0 + timedelta(minutes=59, seconds=50)
    while ahead.prepare():
        pass
    assert ahead.ahead == 1

    # When a skip window over 13:00 is created before the commit
    window = _window(api, {"from": "2026-11-23T12:59:55Z", "to": "2026-11-23T13:10:00Z"})
    clock.now = T0 + timedelta(hours=1)
    fired = ahead.fire_ahead(lease)

    # Then that commit is refused, and the ordinary path records the skip: never both
    assert fired is not None
    assert fired.fired == []
    assert ahead.fire_due(lease).fired == []
    (item, *_) = _occurrences(api, sid)
    assert (item["outcome"], item["reason"], item["window_id"]) == (
        "skipped",
        "blackout",
        window["id"],
    )
    runs = api.get(f"/cloud/v6/load_tests/{load_test}/test_runs").json()["value"]
    assert [r["status"] for r in runs] == ["skipped"]
    assert store.client.llen(f"rq:queue:{rq_queue.name}") == 0


def test_a_schedules_own_window_added_after_the_plan_is_honoured_too(
    api: Api, store: Store, rq_queue: Queue, clock: Clock, lease: Lease
) -> None:
    sid, _ = _hourly(api)
    ahead = Firer(
        store, rq_queue, clock=clock, catch_up=timedelta(minutes=5), lookahead=timedelta(hours=2)
    )
    clock.now = T0 + timedelta(minutes=59, seconds=50)
    while ahead.prepare():
        pass
    _window(api, {"from": "2026-11-23T12:59:55Z", "to": "2026-11-23T13:10:00Z"}, schedule_id=sid)
    clock.now = T0 + timedelta(hours=1)
    ahead.fire_ahead(lease)
    ahead.fire_due(lease)
    (item, *_) = _occurrences(api, sid)
    assert (item["outcome"], item["reason"]) == ("skipped", "blackout")


def test_a_recurring_window_is_echoed_with_its_next_spans(api: Api) -> None:
    body = {
        "cron": {"schedule": "0 0 * * SAT", "time_zone": "Europe/Berlin"},
        "duration_seconds": 6 * 3600,
        "policy": "defer",
        "note": "target's maintenance night",
    }
    window = _window(api, body)
    assert window["cron"] == body["cron"]
    assert window["upcoming"] == [
        {"from": "2026-11-27T23:00:00Z", "to": "2026-11-28T05:00:00Z"},
        {"from": "2026-12-04T23:00:00Z", "to": "2026-12-05T05:00:00Z"},
        {"from": "2026-12-11T23:00:00Z", "to": "2026-12-12T05:00:00Z"},
    ]
    assert api.get(f"/cloud/v6/blackout_windows/{window['id']}").json() == window
    assert api.get("/cloud/v6/blackout_windows").json()["value"] == [window]
    assert api.delete(f"/cloud/v6/blackout_windows/{window['id']}").status_code == 204
    assert api.get(f"/cloud/v6/blackout_windows/{window['id']}").status_code == 404
    audit = api.get("/cloud/v6/audit", params={"kind": "blackout_window"}).json()["value"]
    assert [e["action"] for e in audit] == ["deleted", "created"]


def test_another_stacks_windows_are_neither_seen_nor_applied(
    api: Api, firer: Firer, lease: Lease, clock: Clock
) -> None:
    window = _window(
        api.as_(stack=2), {"from": "2026-11-23T12:30:00Z", "to": "2026-11-23T14:00:00Z"}
    )
    assert api.get(f"/cloud/v6/blackout_windows/{window['id']}").status_code == 404
    assert api.delete(f"/cloud/v6/blackout_windows/{window['id']}").status_code == 404
    _hourly(api)
    assert _fire_at(firer, lease, clock, 1) == ["13:00"]


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ({}, "from"),
        ({"from": "2026-11-23T13:00:00Z"}, "to"),
        ({"from": "2026-11-23T13:00:00Z", "to": "2026-11-23T13:00:00Z"}, "to"),
        ({"from": "2026-11-23T10:00:00Z", "to": "2026-11-23T11:00:00Z"}, "to"),  # past
        ({"from": "tomorrow", "to": "2026-11-23T13:00:00Z"}, "from"),
        (
            {"from": "2026-11-23T13:00:00Z", "to": "2026-11-23T14:00:00Z", "duration_seconds": 60},
            "cron",
        ),
        ({"cron": {"schedule": "0 0 * * SAT"}}, "duration_seconds"),
        ({"cron": {"schedule": "0 25 * * *"}, "duration_seconds": 3600}, "cron.schedule"),
        (
            {"cron": {"schedule": "0 0 * * *", "time_zone": "Mars/Base"}, "duration_seconds": 60},
            "cron.time_zone",
        ),
        ({"cron": {"schedule": "0 0 * * *"}, "duration_seconds": 59}, "duration_seconds"),
        ({"cron": {"schedule": "0 0 * * *"}, "duration_seconds": 10**9}, "duration_seconds"),
        (
            {"from": "2026-11-23T13:00:00Z", "to": "2026-11-23T14:00:00Z", "policy": "later"},
            "policy",
        ),
        (
            {"from": "2026-11-23T13:00:00Z", "to": "2026-11-23T14:00:00Z", "polcy": "skip"},
            "polcy",
        ),
    ],
)
def test_a_bad_window_is_400_naming_the_field_and_changes_nothing(
    api: Api, store: Store, body: dict[str, Any], target: str
) -> None:
    sid, _ = _hourly(api)
    before = snapshot(store)
    for path in ("/cloud/v6/blackout_windows", f"/cloud/v6/schedules/{sid}/blackout_windows"):
        response = api.post(path, json=body)
        assert response.status_code == 400, response.text
        assert [d["target"] for d in response.json()["error"]["details"]][:1] == [target]
    assert snapshot(store) == before


def test_a_window_of_a_missing_schedule_is_404(api: Api) -> None:
    body = {"from": "2026-11-23T13:00:00Z", "to": "2026-11-23T14:00:00Z"}
    assert api.post("/cloud/v6/schedules/999/blackout_windows", json=body).status_code == 404
    assert api.delete("/cloud/v6/schedules/999/blackout_windows/1").status_code == 404


def test_deleting_a_schedules_window_lets_its_occurrences_run(
    api: Api, firer: Firer, lease: Lease, clock: Clock
) -> None:
    sid, _ = _hourly(api)
    window = _window(
        api, {"from": "2026-11-23T12:30:00Z", "to": "2026-11-23T14:00:00Z"}, schedule_id=sid
    )
    path = f"/cloud/v6/schedules/{sid}/blackout_windows/{window['id']}"
    assert api.get(path).json() == window
    assert api.delete(path).status_code == 204
    assert api.delete(path).status_code == 404
    assert _fire_at(firer, lease, clock, 1) == ["13:00"]


def test_a_stack_holds_100_windows_and_a_schedule_20_the_next_is_409_changing_nothing(
    api: Api, store: Store
) -> None:
    sid, _ = _hourly(api)
    span = {"from": "2026-11-24T13:00:00Z", "to": "2026-11-24T14:00:00Z"}
    own = f"/cloud/v6/schedules/{sid}/blackout_windows"
    for _ in range(20):
        _window(api, span, sid)
    for _ in range(100):
        _window(api, span)
    listed = {path: api.get(path).json() for path in (own, "/cloud/v6/blackout_windows")}
    before = snapshot(store)

    for path, most in ((own, "20"), ("/cloud/v6/blackout_windows", "100")):
        response = api.post(path, json=span)
        assert response.status_code == 409, response.text
        assert most in response.json()["error"]["message"]

    assert {path: api.get(path).json() for path in listed} == listed
    assert snapshot(store) == before
