"""The occurrence ledger through the API (issue 14 §1-2): occurrences with notes and what
happened, the preview of an unsaved schedule, and each schedule's health.

The API and an in-process leader share a real Redis and one hand-moved clock, so every
outcome is produced the way production produces it: fired and skipped runs by the fire
commit, pauses by the API's deactivate.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rq import Queue

from tickwork.core import format_instant
from tickwork.scheduler.firing import Firer
from tickwork.store import Lease, Store
from tickwork.store.queue import queue

from .api_support import T0, Api, Clock


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


def _occurrences(api: Api, sid: int, **params: str) -> list[dict[str, Any]]:
    response = api.get(f"/cloud/v6/schedules/{sid}/occurrences", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["value"]
    return items


def _schedule(api: Api, body: dict[str, Any]) -> tuple[int, int]:
    load_test = api.load_test()
    return api.schedule(load_test, body)["id"], load_test


def test_future_occurrences_carry_dst_notes_in_three_zones(api: Api) -> None:
    cases = [
        ("America/New_York", "30 2 * * *", "2027-03-13T12:00:00Z", "2027-03-14T07:00:00Z"),
        ("Europe/Berlin", "30 2 * * *", "2027-03-27T12:00:00Z", "2027-03-28T01:00:00Z"),
        ("Australia/Lord_Howe", "15 2 * * *", "2027-10-02T12:00:00Z", "2027-10-02T15:30:00Z"),
    ]
    for zone, cron, after, gap_instant in cases:
        sid, _ = _schedule(
            api,
            {"starts": "2026-12-01T00:00:00Z", "cron": {"schedule": cron, "time_zone": zone}},
        )
        (first,) = _occurrences(api, sid, after=after, limit="1")
        assert first["instant"] == gap_instant, zone
        assert [note["code"] for note in first["notes"]] == ["dst_gap"], zone
        assert first["outcome"] == "upcoming"


def test_month_end_clamp_and_count_end_are_noted(api: Api) -> None:
    sid, _ = _schedule(
        api,
        {
            "starts": "2027-01-31T09:00:00Z",
            "recurrence_rule": {"frequency": "MONTHLY", "count": 3},
        },
    )
    items = _occurrences(api, sid, after="2027-01-01T00:00:00Z")
    assert [(i["instant"], [n["code"] for n in i["notes"]]) for i in items] == [
        ("2027-01-31T09:00:00Z", []),
        ("2027-02-28T09:00:00Z", ["month_end_clamped"]),
        ("2027-03-31T09:00:00Z", ["last"]),
    ]


def test_past_occurrences_say_what_happened(
    api: Api, store: Store, clock: Clock, leader: tuple[Firer, Lease]
) -> None:
    # Given an hourly schedule (overlap allowed) set at T0
    sid, _ = _schedule(
        api,
        {
            "starts": "2026-11-23T12:01:00Z",
            "recurrence_rule": {"frequency": "HOURLY"},
            "overlap": "allow",
        },
    )
    # When it fires on time, 3 s late, then the leader is away for four hours
    clock.now = T0 + timedelta(minutes=1, milliseconds=5)
    _fire(leader)
    clock.now = T0 + timedelta(hours=1, minutes=1, seconds=3)
    _fire(leader)
    clock.now = T0 + timedelta(hours=5, minutes=30)
    _fire(leader)

    items = _occurrences(api, sid, after="2026-11-23T12:00:00Z", limit="7")
    assert [(i["instant"], i["outcome"], i.get("reason")) for i in items] == [
        ("2026-11-23T12:01:00Z", "fired", None),
        ("2026-11-23T13:01:00Z", "fired", None),
        ("2026-11-23T14:01:00Z", "skipped", "missed"),
        ("2026-11-23T15:01:00Z", "skipped", "missed"),
        ("2026-11-23T16:01:00Z", "skipped", "missed"),
        ("2026-11-23T17:01:00Z", "skipped", "missed_outside_catch_up_window"),
        ("2026-11-23T18:01:00Z", "upcoming", None),
    ]
    assert [i["lateness_ms"] for i in items[:2]] == [5, 3000]
    assert all(i["run_id"] for i in items[:5])
    assert items[0]["run_status"] == "created"


def test_an_occurrence_skipped_for_overlap_says_so(
    api: Api, clock: Clock, leader: tuple[Firer, Lease]
) -> None:
    sid, _ = _schedule(
        api, {"starts": "2026-11-23T12:01:00Z", "recurrence_rule": {"frequency": "HOURLY"}}
    )
    clock.now = T0 + timedelta(minutes=1)
    _fire(leader)  # its run stays created: no worker
    clock.now = T0 + timedelta(hours=1, minutes=1)
    _fire(leader)

    first, second = _occurrences(api, sid, after="2026-11-23T12:00:00Z", limit="2")
    assert first["outcome"] == "fired"
    assert (second["outcome"], second["reason"]) == ("skipped", "overlap")


def test_occurrences_passed_while_paused_are_skipped_paused_and_future_ones_paused(
    api: Api, clock: Clock, leader: tuple[Firer, Lease]
) -> None:
    sid, _ = _schedule(
        api,
        {
            "starts": "2026-11-23T12:01:00Z",
            "recurrence_rule": {"frequency": "HOURLY"},
            "overlap": "allow",
        },
    )
    clock.now = T0 + timedelta(minutes=1)
    _fire(leader)
    clock.now = T0 + timedelta(minutes=30)
    assert api.post(f"/cloud/v6/schedules/{sid}/deactivate").status_code == 204
    clock.now = T0 + timedelta(hours=3)

    items = _occurrences(api, sid, after="2026-11-23T12:00:00Z", limit="4")
    assert [(i["outcome"], i.get("reason")) for i in items] == [
        ("fired", None),
        ("skipped", "paused"),
        ("skipped", "paused"),
        ("paused", None),
    ]

    assert api.post(f"/cloud/v6/schedules/{sid}/activate").status_code == 204
    after = _occurrences(api, sid, after="2026-11-23T12:00:00Z", limit="4")
    assert [i["outcome"] for i in after] == ["fired", "skipped", "skipped", "upcoming"]


def test_a_run_deleted_by_hand_leaves_its_occurrence_deleted_not_missed(
    api: Api, store: Store, clock: Clock, leader: tuple[Firer, Lease]
) -> None:
    sid, _ = _schedule(api, {"starts": "2026-11-23T12:01:00Z"})
    clock.now = T0 + timedelta(minutes=2)
    _fire(leader)
    (item,) = _occurrences(api, sid, after="2026-11-23T12:00:00Z")
    run = store.runs.get(1, item["run_id"])
    store.client.hset(store.keys.run(run.id), "status", "completed")  # finished, so deletable
    assert api.request("DELETE", f"/cloud/v6/test_runs/{run.id}").status_code == 204

    (item,) = _occurrences(api, sid, after="2026-11-23T12:00:00Z")
    assert (item["outcome"], item["run_id"]) == ("deleted", run.id)


def test_an_occurrence_with_no_record_is_reported_missed(
    api: Api, store: Store, clock: Clock, leader: tuple[Firer, Lease]
) -> None:
    # The report that must never happen: shown by removing the record behind tickwork's back
    sid, _ = _schedule(api, {"starts": "2026-11-23T12:01:00Z"})
    clock.now = T0 + timedelta(minutes=2)
    _fire(leader)
    store.client.delete(store.keys.schedule_ledger(sid))

    (item,) = _occurrences(api, sid, after="2026-11-23T12:00:00Z")
    assert item["outcome"] == "missed"


def test_occurrences_before_a_schedule_was_set_are_not_its_own(api: Api, clock: Clock) -> None:
    sid, _ = _schedule(
        api, {"starts": "2026-11-20T08:00:00Z", "recurrence_rule": {"frequency": "DAILY"}}
    )
    items = _occurrences(api, sid, after="2026-11-19T00:00:00Z", limit="3")
    assert [(i["instant"], i["outcome"]) for i in items] == [
        ("2026-11-24T08:00:00Z", "upcoming"),
        ("2026-11-25T08:00:00Z", "upcoming"),
        ("2026-11-26T08:00:00Z", "upcoming"),
    ]


def test_occurrences_page_with_a_next_link(api: Api) -> None:
    sid, _ = _schedule(
        api, {"starts": "2026-12-01T08:00:00Z", "recurrence_rule": {"frequency": "DAILY"}}
    )
    first = api.get(f"/cloud/v6/schedules/{sid}/occurrences", params={"limit": "2"}).json()
    assert [i["instant"] for i in first["value"]] == [
        "2026-12-01T08:00:00Z",
        "2026-12-02T08:00:00Z",
    ]
    second = api.get(first["@nextLink"]).json()
    assert [i["instant"] for i in second["value"]] == [
        "2026-12-03T08:00:00Z",
        "2026-12-04T08:00:00Z",
    ]


@pytest.mark.parametrize(
    ("params", "target"),
    [
        ({"after": "yesterday"}, "after"),
        ({"before": "2026-11-01T00:00:00Z"}, "before"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
    ],
)
def test_bad_windows_are_400_naming_the_parameter(
    api: Api, params: dict[str, str], target: str
) -> None:
    sid, _ = _schedule(api, {"starts": "2026-12-01T08:00:00Z"})
    response = api.get(f"/cloud/v6/schedules/{sid}/occurrences", params=params)
    assert response.status_code == 400
    assert [d["target"] for d in response.json()["error"]["details"]] == [target]


def test_another_stacks_schedule_has_no_occurrences_to_show(api: Api) -> None:
    sid, _ = _schedule(api, {"starts": "2026-12-01T08:00:00Z"})
    other = api.as_(stack=2)
    assert other.get(f"/cloud/v6/schedules/{sid}/occurrences").status_code == 404
    assert other.get(f"/cloud/v6/schedules/{sid}/health").status_code == 404


def test_preview_shows_an_unsaved_schedule_with_notes_and_saves_nothing(
    api: Api, store: Store
) -> None:
    before = sorted(store.client.keys(f"{store.keys.prefix}:*"))
    body = {
        "starts": "2026-12-01T00:00:00Z",
        "cron": {"schedule": "30 1 * * *", "time_zone": "America/New_York"},
    }
    response = api.post(
        "/cloud/v6/schedules/preview",
        json=body,
        params={"after": "2027-11-06T00:00:00Z", "limit": "2"},
    )
    assert response.status_code == 200, response.text
    items = response.json()["value"]
    assert [(i["instant"], i["local"], [n["code"] for n in i["notes"]]) for i in items] == [
        ("2027-11-06T05:30:00Z", "2027-11-06T01:30:00-04:00", []),
        ("2027-11-07T05:30:00Z", "2027-11-07T01:30:00-04:00", ["dst_repeated"]),
    ]
    assert sorted(store.client.keys(f"{store.keys.prefix}:*")) == before


def test_preview_refuses_what_creating_would_refuse(api: Api) -> None:
    response = api.post(
        "/cloud/v6/schedules/preview",
        json={
            "starts": "2026-12-01T00:00:00Z",
            "cron": {"schedule": "61 * * * *", "time_zone": "UTC"},
        },
    )
    assert response.status_code == 400
    assert "cron.schedule" in [d["target"] for d in response.json()["error"]["details"]]


def test_health_counts_what_happened(
    api: Api, store: Store, clock: Clock, leader: tuple[Firer, Lease]
) -> None:
    sid, load_test = _schedule(
        api,
        {
            "starts": "2026-11-23T12:01:00Z",
            "recurrence_rule": {"frequency": "HOURLY"},
            "overlap": "allow",
        },
    )
    for hour, late_ms in [(0, 10), (1, 2500), (2, 20)]:
        clock.now = T0 + timedelta(hours=hour, minutes=1, milliseconds=late_ms)
        _fire(leader)
    runs, _ = store.runs.page(1, skip=0, top=10, load_test_id=load_test)
    results = {runs[0].id: "passed", runs[1].id: "failed", runs[2].id: "failed"}
    for run_id, result in results.items():
        store.client.hset(store.keys.run(run_id), mapping={"status": "completed", "result": result})
    clock.now = T0 + timedelta(hours=5, minutes=30)  # 14:01 missed, 15:01, 16:01 outside window
    _fire(leader)

    health = api.get(f"/cloud/v6/schedules/{sid}/health").json()
    assert health["last_fire"]["instant"] == "2026-11-23T14:01:00Z"
    assert health["next_fire"] == "2026-11-23T18:01:00Z"
    assert (health["fired_on_time"], health["fired_late"], health["missed"]) == (2, 1, 0)
    assert health["skipped"] == {"missed": 2, "missed_outside_catch_up_window": 1}
    assert health["runs"] == {"passed": 1, "failed": 2, "error": 0, "aborted": 0, "unfinished": 0}
    assert health["lateness_ms"] == {"p50": 20, "p99": 2500, "max": 2500}
    assert health["consecutive_failures"] == 2
    assert health["occurrences"] == 6

    listing = api.get("/cloud/v6/schedules/health", params={"$top": "10"}).json()
    assert [h["schedule_id"] for h in listing["value"]] == [sid]


# Missed is never reported for an occurrence that has a run or a skip record, whatever the
# schedule, its pauses and the leader's absences (issue 14, Done when).


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    period_s=st.sampled_from([30, 60, 90, 3600]),
    steps=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=4 * 3600),  # the clock moves this far...
            st.sampled_from(["fire", "fire", "away", "pause", "resume"]),  # ...and then
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_missed_is_never_reported_and_every_record_is_shown(
    api: Api,
    store: Store,
    clock: Clock,
    leader: tuple[Firer, Lease],
    period_s: int,
    steps: list[tuple[int, str]],
) -> None:
    clock.now = T0
    load_test = api.load_test()
    # An every-30 s schedule needs the Kragle dialect; whole minutes are a cron, an hour (or
    # 90 s, not expressible) an hourly rule: enough to cross pauses and gaps of every size.
    if period_s % 60 == 0 and period_s < 3600:
        body: dict[str, Any] = {
            "starts": "2026-11-23T12:00:00Z",
            "cron": {"schedule": f"*/{period_s // 60} * * * *", "time_zone": "UTC"},
            "overlap": "allow",
        }
    else:
        body = {
            "starts": "2026-11-23T12:00:30Z",
            "recurrence_rule": {"frequency": "HOURLY"},
            "overlap": "allow",
        }
    sid = api.schedule(load_test, body)["id"]
    paused = False
    for seconds, action in steps:
        clock.now += timedelta(seconds=seconds)
        if action == "fire":
            _fire(leader)
        elif action == "pause" and not paused:
            assert api.post(f"/cloud/v6/schedules/{sid}/deactivate").status_code == 204
            paused = True
        elif action == "resume" and paused:
            api.post(f"/cloud/v6/schedules/{sid}/activate")
            paused = False
    _fire(leader)

    items: list[dict[str, Any]] = []
    after = "2026-11-23T11:59:00Z"
    while True:
        page = _occurrences(api, sid, after=after, before=_text(clock.now), limit="1000")
        items += page
        if len(page) < 1000:
            break
        after = page[-1]["instant"]
    recorded = {
        run.scheduled_for
        for run in store.runs.page(1, skip=0, top=100_000, load_test_id=load_test)[0]
    }
    assert [i for i in items if i["outcome"] == "missed"] == []
    shown = {i["instant"] for i in items if i.get("run_id")}
    assert {_text(at) for at in recorded if at is not None} <= shown | _series(items)


def _text(at: datetime) -> str:
    return format_instant(at)


def _series(items: list[dict[str, Any]]) -> set[str]:
    return {i["instant"] for i in items if i["outcome"] == "skipped"}
