"""The seven schedule operations against a real Redis, as a k6 client sees them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tickwork.core.instants import parse_instant, to_ms
from tickwork.store import Store

from .api_support import T0, Api, Clock, snapshot

SCHEDULE_KEYS = {
    "id",
    "load_test_id",
    "starts",
    "recurrence_rule",
    "cron",
    "deactivated",
    "next_run",
    "created_by",
}


def test_post_answers_200_with_all_keys_and_omitted_rule_fields_filled(api: Api) -> None:
    load_test = api.load_test()

    response = api.post(
        f"/cloud/v6/load_tests/{load_test}/schedule",
        json={"starts": "2026-12-01T08:46:04.021Z", "recurrence_rule": {"frequency": "HOURLY"}},
    )

    assert response.status_code == 200
    body = response.json()
    assert set(body) >= SCHEDULE_KEYS
    assert body["load_test_id"] == load_test
    assert body["recurrence_rule"] == {
        "frequency": "HOURLY",
        "interval": 1,
        "byday": None,
        "until": None,
        "count": None,
    }
    assert body["cron"] is None
    assert body["deactivated"] is False
    assert body["next_run"] == "2026-12-01T08:46:04.021Z"
    assert body["created_by"] == "alice@example.com"
    assert body["overlap"] == "skip"
    assert body["catch_up_seconds"] is None


@pytest.mark.parametrize(
    "starts",
    [
        "2026-12-01T08:46:04.021Z",
        "2026-12-01T10:46:04.021+02:00",
        "2026-12-01T08:46:04.100Z",
        "2026-12-01T08:46:04Z",
    ],
)
def test_starts_is_echoed_as_given_with_its_milliseconds(api: Api, starts: str) -> None:
    load_test = api.load_test()

    created = api.schedule(load_test, {"starts": starts})
    read = api.get(f"/cloud/v6/schedules/{created['id']}").json()

    assert created["starts"] == starts
    assert read["starts"] == starts


def test_cron_schedule_is_echoed_and_next_run_follows_its_zone(api: Api) -> None:
    load_test = api.load_test()

    body = api.schedule(
        load_test,
        {
            "starts": "2026-11-23T00:00:00Z",
            "cron": {"schedule": "0 7 * * 1", "time_zone": "Europe/Berlin"},
        },
    )

    assert body["cron"] == {"schedule": "0 7 * * 1", "time_zone": "Europe/Berlin"}
    assert body["recurrence_rule"] is None
    assert body["next_run"] == "2026-11-30T06:00:00Z"  # Monday 07:00 CET


def test_post_overwrites_the_schedule_and_keeps_its_id(api: Api, store: Store) -> None:
    load_test = api.load_test()
    first = api.schedule(load_test, {"starts": "2026-12-01T08:00:00Z"})

    second = api.schedule(
        load_test, {"starts": "2026-12-02T08:00:00Z", "recurrence_rule": {"frequency": "DAILY"}}
    )

    assert second["id"] == first["id"]
    assert second["starts"] == "2026-12-02T08:00:00Z"
    listed = api.get("/cloud/v6/schedules").json()["value"]
    assert [s["id"] for s in listed] == [first["id"]]
    due_ms = store.client.zscore(store.keys.due, str(first["id"]))
    assert due_ms == to_ms(parse_instant("2026-12-02T08:00:00Z"))


def test_get_by_load_test_and_by_id_answer_the_same_schedule(api: Api) -> None:
    load_test = api.load_test()
    created = api.schedule(load_test)

    by_load_test = api.get(f"/cloud/v6/load_tests/{load_test}/schedule")
    by_id = api.get(f"/cloud/v6/schedules/{created['id']}")

    assert by_load_test.status_code == by_id.status_code == 200
    assert by_load_test.json() == by_id.json() == created


def test_load_test_without_schedule_answers_404(api: Api) -> None:
    load_test = api.load_test()

    response = api.get(f"/cloud/v6/load_tests/{load_test}/schedule")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_schedule_for_a_missing_load_test_is_404_and_stores_nothing(api: Api, store: Store) -> None:
    body = {"starts": "2026-12-01T08:00:00Z"}
    api.load_test()
    before = snapshot(store)

    response = api.post("/cloud/v6/load_tests/999/schedule", json=body)

    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert "999" in error["message"]
    assert store.client.zcard(store.keys.due) == 0
    assert snapshot(store) == before


def test_invalid_schedule_is_400_with_one_detail_per_problem(api: Api, store: Store) -> None:
    load_test = api.load_test()
    before = snapshot(store)

    response = api.post(
        f"/cloud/v6/load_tests/{load_test}/schedule",
        json={
            "starts": "2026-12-01T08:00:00Z",
            "recurrence_rule": {"frequency": "HOURLY"},
            "cron": {"schedule": "0 0 * * *", "time_zone": "UTC"},
        },
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"]
    assert all({"code", "message", "target"} <= set(detail) for detail in error["details"])
    assert snapshot(store) == before


def test_once_schedule_in_the_past_has_null_next_run(api: Api) -> None:
    load_test = api.load_test()

    body = api.schedule(load_test, {"starts": "2023-08-01T12:00:00.000Z", "recurrence_rule": None})

    assert body["next_run"] is None


def test_delete_removes_the_schedule_and_its_due_entry(api: Api, store: Store) -> None:
    load_test = api.load_test()
    schedule = api.schedule(load_test)

    response = api.delete(f"/cloud/v6/schedules/{schedule['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert api.get(f"/cloud/v6/schedules/{schedule['id']}").status_code == 404
    assert api.get(f"/cloud/v6/load_tests/{load_test}/schedule").status_code == 404
    assert store.client.zscore(store.keys.due, str(schedule["id"])) is None
    assert api.delete(f"/cloud/v6/schedules/{schedule['id']}").status_code == 404


def test_deactivate_then_activate(api: Api, store: Store) -> None:
    load_test = api.load_test()
    schedule = api.schedule(
        load_test, {"starts": "2026-12-01T08:00:00Z", "recurrence_rule": {"frequency": "DAILY"}}
    )
    sid = schedule["id"]

    assert api.post(f"/cloud/v6/schedules/{sid}/deactivate").status_code == 204
    deactivated = api.get(f"/cloud/v6/schedules/{sid}").json()
    assert deactivated["deactivated"] is True
    assert deactivated["next_run"] == "2026-12-01T08:00:00Z"  # what activation would give
    assert store.client.zscore(store.keys.due, str(sid)) is None

    assert api.post(f"/cloud/v6/schedules/{sid}/activate").status_code == 204
    assert api.get(f"/cloud/v6/schedules/{sid}").json()["deactivated"] is False
    assert store.client.zscore(store.keys.due, str(sid)) is not None


def test_repost_over_a_deactivated_schedule_reactivates_it_and_keeps_its_id(api: Api) -> None:
    # The Grafana Terraform provider's update path re-POSTs and expects deactivated: false.
    load_test = api.load_test()
    sid = api.schedule(load_test)["id"]
    api.post(f"/cloud/v6/schedules/{sid}/deactivate")

    again = api.schedule(load_test, {"starts": "2026-12-05T08:00:00Z"})

    assert again["id"] == sid
    assert again["deactivated"] is False
    assert api.get(f"/cloud/v6/schedules/{sid}").json()["deactivated"] is False


def test_activate_an_expired_schedule_is_409(api: Api, store: Store, clock: Clock) -> None:
    load_test = api.load_test()
    sid = api.schedule(load_test, {"starts": "2026-11-23T13:00:00Z"})["id"]
    api.post(f"/cloud/v6/schedules/{sid}/deactivate")
    clock.now = T0 + timedelta(days=1)
    before = snapshot(store)

    response = api.post(f"/cloud/v6/schedules/{sid}/activate")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert snapshot(store) == before


def test_deactivate_an_expired_schedule_is_204_without_effect(api: Api, store: Store) -> None:
    load_test = api.load_test()
    sid = api.schedule(load_test, {"starts": "2023-08-01T12:00:00Z"})["id"]
    before = store.client.hgetall(store.keys.schedule(sid))

    response = api.post(f"/cloud/v6/schedules/{sid}/deactivate")

    assert response.status_code == 204
    assert store.client.hgetall(store.keys.schedule(sid)) == before
    assert api.get(f"/cloud/v6/schedules/{sid}").json()["deactivated"] is False


def test_a_schedule_whose_last_occurrence_passed_unsettled_is_expired_for_both_operations(
    api: Api, store: Store, clock: Clock
) -> None:
    # Given a one-shot whose instant has passed but that no scheduler has settled yet
    load_test = api.load_test()
    sid = api.schedule(load_test, {"starts": "2026-11-23T13:00:00Z"})["id"]
    clock.now = T0 + timedelta(days=1)
    assert store.client.zscore(store.keys.due, str(sid)) is not None
    before = store.client.hgetall(store.keys.schedule(sid))

    everything = snapshot(store)

    # Then deactivate has no effect and activate is a conflict, as for a settled one
    assert api.post(f"/cloud/v6/schedules/{sid}/deactivate").status_code == 204
    assert store.client.hgetall(store.keys.schedule(sid)) == before
    activated = api.post(f"/cloud/v6/schedules/{sid}/activate")
    assert activated.status_code == 409
    assert activated.json()["error"]["code"] == "conflict"
    assert "expired" in activated.json()["error"]["message"]
    assert store.client.hgetall(store.keys.schedule(sid)) == before
    assert snapshot(store) == everything


def test_activate_an_active_schedule_is_204(api: Api) -> None:
    load_test = api.load_test()
    sid = api.schedule(load_test)["id"]

    assert api.post(f"/cloud/v6/schedules/{sid}/activate").status_code == 204


@pytest.mark.parametrize("operation", ["activate", "deactivate"])
def test_activate_and_deactivate_a_missing_schedule_is_404(
    api: Api, store: Store, operation: str
) -> None:
    api.schedule(api.load_test())
    before = snapshot(store)

    response = api.post(f"/cloud/v6/schedules/12345/{operation}")

    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert "12345" in error["message"]
    assert snapshot(store) == before


def test_extension_fields_are_stored_and_echoed(api: Api, store: Store) -> None:
    load_test = api.load_test()

    body = api.schedule(
        load_test,
        {"starts": "2026-12-01T08:00:00Z", "overlap": "allow", "catch_up_seconds": 60},
    )

    assert body["overlap"] == "allow"
    assert body["catch_up_seconds"] == 60
    record = store.schedules.get(1, body["id"])
    assert (record.overlap, record.catch_up_s) == ("allow", 60)


def test_post_nudges_the_scheduler(api: Api, store: Store) -> None:
    load_test = api.load_test()

    api.schedule(load_test)

    assert store.client.llen(store.keys.nudge) == 1


def test_deleting_the_load_test_deletes_its_schedule(api: Api, store: Store) -> None:
    load_test = api.load_test()
    sid = api.schedule(load_test)["id"]

    assert api.delete(f"/cloud/v6/load_tests/{load_test}").status_code == 204

    assert api.get(f"/cloud/v6/schedules/{sid}").status_code == 404
    assert store.client.zscore(store.keys.due, str(sid)) is None
    assert api.get("/cloud/v6/schedules").json()["value"] == []


@pytest.mark.parametrize("catch_up", [-1, 365 * 86_400 + 1, 10**23])
def test_catch_up_window_out_of_range_is_400(api: Api, store: Store, catch_up: int) -> None:
    load_test = api.load_test()
    before = snapshot(store)

    response = api.post(
        f"/cloud/v6/load_tests/{load_test}/schedule",
        json={"starts": "2026-12-01T08:00:00Z", "catch_up_seconds": catch_up},
    )

    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["target"] == "catch_up_seconds"
    assert snapshot(store) == before
