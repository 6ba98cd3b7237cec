"""Operator controls (issue 16): pause with a note and resume on time, bulk pause and resume,
and a manual start that never consumes a scheduled occurrence."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rq import Queue

from tickwork.api import create_app
from tickwork.core import parse_instant
from tickwork.core.instants import format_instant
from tickwork.errors import LeaseLost
from tickwork.scheduler.firing import Firer
from tickwork.store import Lease, Store

from .api_support import T0, Api, Clock, snapshot, tokens

HOURLY = {"starts": "2026-11-23T13:00:00Z", "recurrence_rule": {"frequency": "HOURLY"}}


def _hourly(api: Api, **extra: Any) -> tuple[int, int]:
    load_test = api.load_test()
    return api.schedule(load_test, HOURLY | extra)["id"], load_test


def test_a_pause_with_a_note_and_resume_at_is_shown_to_everyone_who_reads_it(
    api: Api,
) -> None:
    sid, _ = _hourly(api)
    response = api.post(
        f"/cloud/v6/schedules/{sid}/deactivate",
        json={"note": "release freeze", "resume_at": "2026-11-24T08:00:00Z"},
    )
    assert response.status_code == 204

    schedule = api.get(f"/cloud/v6/schedules/{sid}").json()
    assert schedule["deactivated"] is True
    assert schedule["paused"] == {
        "since": "2026-11-23T12:00:00Z",
        "by": "alice@example.com",
        "note": "release freeze",
        "resume_at": "2026-11-24T08:00:00Z",
    }
    # A client that sends back what it read (paused included) still sets the schedule
    again = api.post(f"/cloud/v6/load_tests/{schedule['load_test_id']}/schedule", json=schedule)
    assert again.status_code == 200, again.text


def test_a_plain_deactivate_stays_k6s(api: Api) -> None:
    sid, _ = _hourly(api)
    assert api.post(f"/cloud/v6/schedules/{sid}/deactivate").status_code == 204
    paused = api.get(f"/cloud/v6/schedules/{sid}").json()["paused"]
    assert paused == {
        "since": "2026-11-23T12:00:00Z",
        "by": "alice@example.com",
        "note": "",
        "resume_at": None,
    }


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ({"resume_at": "2026-11-23T11:00:00Z"}, "resume_at"),
        ({"resume_at": "tomorrow"}, "resume_at"),
        ({"note": "x" * 1001}, "note"),
        ({"notes": "typo"}, "notes"),
    ],
)
def test_a_bad_pause_is_400_naming_the_field_and_changes_nothing(
    api: Api, store: Store, body: dict[str, Any], target: str
) -> None:
    sid, _ = _hourly(api)
    before = snapshot(store)

    response = api.post(f"/cloud/v6/schedules/{sid}/deactivate", json=body)

    assert response.status_code == 400
    assert target in [d["target"] for d in response.json()["error"]["details"]]
    assert snapshot(store) == before


def test_the_leader_resumes_a_pause_at_its_resume_at_exactly_once(
    api: Api, store: Store, clock: Clock, firer: Firer, lease: Lease
) -> None:
    # Given a pause from 12:00 to 15:30 of an hourly schedule
    sid, _ = _hourly(api, overlap="allow")
    api.post(
        f"/cloud/v6/schedules/{sid}/deactivate",
        json={"note": "maintenance", "resume_at": "2026-11-23T15:30:00Z"},
    )
    clock.now = T0 + timedelta(hours=3)
    assert firer.resume_due(lease) == []  # not yet

    # When the leader looks after resume_at
    clock.now = T0 + timedelta(hours=3, minutes=30, seconds=1)
    assert firer.resume_due(lease) == [sid]
    assert firer.resume_due(lease) == []  # and never again

    # Then it is active, next at 16:00, and the trail and the ledger say what happened
    schedule = api.get(f"/cloud/v6/schedules/{sid}").json()
    assert (schedule["deactivated"], schedule["paused"]) == (False, None)
    assert schedule["next_run"] == "2026-11-23T16:00:00Z"
    resumed, _, _ = api.get(f"/cloud/v6/schedules/{sid}/audit").json()["value"]
    assert (resumed["action"], resumed["who"], resumed["at"]) == (
        "resumed",
        "scheduler",
        "2026-11-23T15:30:00Z",
    )
    clock.now = T0 + timedelta(hours=4, seconds=1)
    assert [at for _, at in firer.fire_due(lease).fired] == [T0 + timedelta(hours=4)]
    items = api.get(
        f"/cloud/v6/schedules/{sid}/occurrences",
        params={"after": "2026-11-23T12:00:00Z", "limit": "4"},
    ).json()["value"]
    assert [(i["instant"], i["outcome"], i.get("reason")) for i in items] == [
        ("2026-11-23T13:00:00Z", "skipped", "paused"),
        ("2026-11-23T14:00:00Z", "skipped", "paused"),
        ("2026-11-23T15:00:00Z", "skipped", "paused"),
        ("2026-11-23T16:00:00Z", "fired", None),
    ]


def test_a_leader_that_lost_its_lease_resumes_nothing(
    api: Api, store: Store, clock: Clock, firer: Firer, lease: Lease
) -> None:
    sid, _ = _hourly(api)
    api.post(f"/cloud/v6/schedules/{sid}/deactivate", json={"resume_at": "2026-11-23T12:30:00Z"})
    store.client.set(store.keys.lease("scheduler"), f"{lease.term + 1}:rival")
    clock.now = T0 + timedelta(hours=1)
    before = snapshot(store)

    with pytest.raises(LeaseLost):
        firer.resume_due(lease)

    assert snapshot(store) == before
    assert api.get(f"/cloud/v6/schedules/{sid}").json()["deactivated"] is True


def test_a_schedule_changed_between_the_read_and_the_resume_is_read_again(
    api: Api, store: Store, clock: Clock, lease: Lease
) -> None:
    sid, _ = _hourly(api)
    api.post(f"/cloud/v6/schedules/{sid}/deactivate", json={"resume_at": "2026-11-23T12:30:00Z"})
    read = store.schedules.get(1, sid)
    api.post(f"/cloud/v6/schedules/{sid}/activate")  # by hand, meanwhile

    assert store.schedules.resume(lease, read) is None
    assert [e["action"] for e in api.get(f"/cloud/v6/schedules/{sid}/audit").json()["value"]] == [
        "activated",
        "deactivated",
        "created",
    ]


def test_bulk_pause_and_resume_act_on_the_matching_schedules_and_say_which(
    api: Api, clock: Clock
) -> None:
    project = api.project("nightly")
    other = api.project("adhoc")
    named = [api.load_test(project, name=f"checkout-{i}") for i in range(2)]
    elsewhere = api.load_test(other, name="checkout-0")
    ids = [api.schedule(lt, HOURLY)["id"] for lt in [*named, elsewhere]]
    api.post(f"/cloud/v6/schedules/{ids[1]}/deactivate")  # already paused

    paused = api.post(
        "/cloud/v6/schedules/bulk/deactivate",
        json={"filter": {"project_id": project}, "note": "release freeze"},
    )
    assert paused.status_code == 200, paused.text
    assert paused.json() == {"changed": [ids[0]], "unchanged": [ids[1]], "refused": []}
    assert api.get(f"/cloud/v6/schedules/{ids[0]}").json()["paused"]["note"] == "release freeze"
    assert api.get(f"/cloud/v6/schedules/{ids[2]}").json()["deactivated"] is False

    by_name = api.post(
        "/cloud/v6/schedules/bulk/activate", json={"filter": {"load_test_name": "checkout-0"}}
    )
    assert by_name.json() == {"changed": [ids[0]], "unchanged": [ids[2]], "refused": []}

    everything = api.post("/cloud/v6/schedules/bulk/activate", json={"filter": {}})
    assert everything.json()["changed"] == [ids[1]]


def test_a_bulk_request_without_a_filter_is_400_and_changes_nothing(api: Api, store: Store) -> None:
    _hourly(api)
    before = snapshot(store)
    response = api.post("/cloud/v6/schedules/bulk/deactivate", json={"note": "x"})
    assert response.status_code == 400
    assert [d["target"] for d in response.json()["error"]["details"]] == ["filter"]
    assert snapshot(store) == before


@pytest.mark.parametrize("overlap", ["allow", "skip"])
def test_a_manual_start_never_consumes_a_scheduled_occurrence(
    api: Api, store: Store, clock: Clock, firer: Firer, lease: Lease, overlap: str
) -> None:
    # Given a one-shot at 12:05 and a run started by hand a second before it
    load_test = api.load_test()
    sid = api.schedule(load_test, {"starts": "2026-11-23T12:05:00Z", "overlap": overlap})["id"]
    clock.now = T0 + timedelta(minutes=4, seconds=59)
    assert api.post(f"/cloud/v6/load_tests/{load_test}/start").status_code == 200

    # When the occurrence is due
    clock.now = T0 + timedelta(minutes=5)
    firer.fire_due(lease)

    # Then it happened: fired beside the manual run, or recorded skipped for overlap
    (item,) = api.get(
        f"/cloud/v6/schedules/{sid}/occurrences", params={"after": "2026-11-23T12:00:00Z"}
    ).json()["value"]
    if overlap == "allow":
        assert item["outcome"] == "fired"
    else:
        assert (item["outcome"], item["reason"]) == ("skipped", "overlap")
    runs = api.get(f"/cloud/v6/load_tests/{load_test}/test_runs").json()["value"]
    assert len(runs) == 2


def test_a_dst_policy_is_set_echoed_and_applied(api: Api) -> None:
    load_test = api.load_test()
    body = {
        "starts": "2026-12-01T00:00:00Z",
        "cron": {
            "schedule": "30 2 * * *",
            "time_zone": "America/New_York",
            "dst": {"gap": "skip", "repeat": "both"},
        },
    }
    schedule = api.schedule(load_test, body)
    assert schedule["cron"]["dst"] == {"gap": "skip", "repeat": "both"}
    items = api.get(
        f"/cloud/v6/schedules/{schedule['id']}/occurrences",
        params={"after": "2027-03-13T12:00:00Z", "limit": "1"},
    ).json()["value"]
    assert items[0]["instant"] == "2027-03-15T06:30:00Z"  # the 14th's 02:30 did not exist


def test_a_bad_dst_policy_is_400_naming_the_field_and_changes_nothing(
    api: Api, store: Store
) -> None:
    load_test = api.load_test()
    before = snapshot(store)
    body = {
        "starts": "2026-12-01T00:00:00Z",
        "cron": {"schedule": "30 2 * * *", "time_zone": "UTC", "dst": {"gap": "later"}},
    }
    response = api.post(f"/cloud/v6/load_tests/{load_test}/schedule", json=body)
    assert response.status_code == 400
    assert [d["target"] for d in response.json()["error"]["details"]] == ["cron.dst.gap"]
    assert snapshot(store) == before


def _jittered(api: Api, jitter: int) -> tuple[int, int, datetime, datetime]:
    """A one-shot at 12:05 with ``jitter``: its id, load test, instant and planned instant."""
    load_test = api.load_test()
    body = {"starts": "2026-11-23T12:05:00Z", "jitter_seconds": jitter, "overlap": "allow"}
    schedule = api.schedule(load_test, body)
    assert schedule["jitter_seconds"] == jitter
    (item,) = api.get(
        f"/cloud/v6/schedules/{schedule['id']}/occurrences",
        params={"after": "2026-11-23T12:00:00Z"},
    ).json()["value"]
    instant, planned = parse_instant(item["instant"]), parse_instant(item["planned_for"])
    return schedule["id"], load_test, instant, planned


def test_a_jittered_occurrence_runs_at_its_planned_instant_not_before(
    api: Api, clock: Clock, firer: Firer, lease: Lease
) -> None:
    # Given a one-shot whose preview plans it some seconds after its instant
    sid, load_test, instant, planned = _jittered(api, 600)
    assert instant < planned < instant + timedelta(seconds=600)

    # When the leader looks at the instant and just before the planned one: nothing runs
    for now in (instant, planned - timedelta(milliseconds=1)):
        clock.now = now
        assert firer.fire_due(lease).fired == []

    # Then at the planned instant it runs once, recording both instants
    clock.now = planned
    assert [at for _, at in firer.fire_due(lease).fired] == [instant]
    assert firer.fire_due(lease).fired == []
    (run,) = api.get(f"/cloud/v6/load_tests/{load_test}/test_runs").json()["value"]
    assert (run["scheduled_for"], run["planned_for"]) == (
        format_instant(instant),
        format_instant(planned),
    )
    (item,) = api.get(
        f"/cloud/v6/schedules/{sid}/occurrences", params={"after": "2026-11-23T12:00:00Z"}
    ).json()["value"]
    assert (item["outcome"], item["lateness_ms"]) == ("fired", 0)  # late against the plan


def test_the_leaders_look_ahead_commits_a_jittered_fire_at_its_planned_instant(
    api: Api, store: Store, rq_queue: Queue, clock: Clock, lease: Lease
) -> None:
    sid, load_test, instant, planned = _jittered(api, 600)
    ahead = Firer(
        store, rq_queue, clock=clock, catch_up=timedelta(minutes=5), lookahead=timedelta(hours=1)
    )
    clock.now = T0
    while ahead.prepare():
        pass
    assert ahead.ahead == 1
    clock.now = instant
    assert ahead.fire_ahead(lease) is None  # held until its planned instant
    clock.now = planned
    fired = ahead.fire_ahead(lease)
    assert fired is not None
    assert [at for _, at in fired.fired] == [instant]
    (run,) = api.get(f"/cloud/v6/load_tests/{load_test}/test_runs").json()["value"]
    assert run["planned_for"] == format_instant(planned)
    del sid


def test_jitter_wider_than_the_schedules_interval_is_400_naming_it_and_changes_nothing(
    api: Api, store: Store
) -> None:
    load_test = api.load_test()
    before = snapshot(store)
    body = {
        "starts": "2026-11-23T12:00:00Z",
        "cron": {"schedule": "*/5 * * * *", "time_zone": "UTC"},
    }
    response = api.post(
        f"/cloud/v6/load_tests/{load_test}/schedule", json=body | {"jitter_seconds": 301}
    )
    assert response.status_code == 400
    (detail,) = response.json()["error"]["details"]
    assert detail["target"] == "jitter_seconds"
    assert "300" in detail["message"]
    assert snapshot(store) == before
    assert api.schedule(load_test, body | {"jitter_seconds": 300})["jitter_seconds"] == 300


def test_a_schedule_without_jitter_reads_zero_and_runs_record_no_planned_instant(
    api: Api, clock: Clock, firer: Firer, lease: Lease
) -> None:
    load_test = api.load_test()
    schedule = api.schedule(load_test, {"starts": "2026-11-23T12:05:00Z"})
    assert schedule["jitter_seconds"] == 0
    clock.now = T0 + timedelta(minutes=5)
    assert len(firer.fire_due(lease).fired) == 1
    (run,) = api.get(f"/cloud/v6/load_tests/{load_test}/test_runs").json()["value"]
    assert run["planned_for"] is None


def test_the_deployment_default_jitter_applies_to_new_schedules_narrowed_to_their_interval(
    store: Store, clock: Clock
) -> None:
    app = create_app(
        store,
        tokens=tokens(),
        queue_name=f"{store.keys.prefix}-runs",
        clock=clock,
        default_jitter_s=120,
    )
    with TestClient(app) as http:
        api = Api(http)
        every_minute = {
            "starts": "2026-11-23T12:00:00Z",
            "cron": {"schedule": "* * * * *", "time_zone": "UTC"},
        }
        hourly = {"starts": "2026-11-23T13:00:00Z", "recurrence_rule": {"frequency": "HOURLY"}}
        assert api.schedule(api.load_test(), hourly)["jitter_seconds"] == 120
        assert api.schedule(api.load_test(), every_minute)["jitter_seconds"] == 60
        explicit = hourly | {"jitter_seconds": 0}
        assert api.schedule(api.load_test(), explicit)["jitter_seconds"] == 0


def test_bulk_activate_refuses_an_expired_schedule_by_id_and_activates_the_rest(
    api: Api, clock: Clock
) -> None:
    once = api.schedule(api.load_test(name="once"), {"starts": "2026-11-23T12:05:00Z"})["id"]
    hourly, _ = _hourly(api)
    for sid in (once, hourly):
        api.post(f"/cloud/v6/schedules/{sid}/deactivate")
    clock.now = T0 + timedelta(minutes=10)  # the one-shot's only occurrence has passed
    trail = api.get(f"/cloud/v6/schedules/{once}/audit").json()["value"]

    answer = api.post("/cloud/v6/schedules/bulk/activate", json={"filter": {}})

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["changed"], body["unchanged"]) == ([hourly], [])
    [refused] = body["refused"]
    assert (refused["id"], refused["code"]) == (once, "conflict")
    assert "expired" in refused["message"]
    assert api.get(f"/cloud/v6/schedules/{once}").json()["deactivated"] is True
    assert api.get(f"/cloud/v6/schedules/{once}/audit").json()["value"] == trail
