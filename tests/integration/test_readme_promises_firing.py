"""README promises about which occurrences fire, held through the API a user calls.

Each schedule is set with ``POST /cloud/v6/load_tests/{id}/schedule`` on the app (hand-set
clock), the leader's fire path (``Firer``, as the daemon builds it) runs at chosen instants,
and the outcome is read back from ``/cloud/v6/load_tests/{id}/test_runs``:

- "A schedule never fires occurrences from before it was set" (recurring, past ``starts``);
- "Past 100 skipped records for one schedule in one go, the last record counts the rest";
- per-schedule ``catch_up_seconds`` (a tickwork extension) decides what fires;
- an occurrence skipped for overlap is recorded with its reason, ``overlap``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from tickwork.core.instants import format_instant, parse_instant
from tickwork.scheduler.firing import BatchResult, Firer
from tickwork.scheduler.loop import LEASE_NAME
from tickwork.store import Lease, Store
from tickwork.store.queue import queue

from .api_support import T0, Api, Clock

DEPLOYMENT_CATCH_UP = timedelta(seconds=300)  # TICKWORK_CATCH_UP_WINDOW_SECONDS' default


def _firer(store: Store, clock: Clock, *, lookahead: timedelta = timedelta(0)) -> Firer:
    return Firer(
        store,
        queue(store.client, f"{store.keys.prefix}-runs"),  # the app's queue (conftest)
        clock=clock,
        catch_up=DEPLOYMENT_CATCH_UP,
        lookahead=lookahead,
    )


def _lease(store: Store) -> Lease:
    lease = store.leases.acquire(LEASE_NAME, "leader", 3_600_000)
    assert lease is not None
    return lease


def _fire_at(firer: Firer, lease: Lease, clock: Clock, now: datetime) -> BatchResult:
    """The leader wakes at ``now`` and commits batches until none is full, as its loop does;
    what they fired and skipped, together."""
    clock.now = now
    total = BatchResult()
    for _ in range(100):
        result = firer.fire_ahead(lease) or firer.fire_due(lease)
        total.fired += result.fired
        for reason, count in result.skipped.items():
            total.skipped[reason] = total.skipped.get(reason, 0) + count
        if not result.full:
            return total
    raise AssertionError("the leader never caught up")


def _runs(api: Api, load_test: int) -> list[dict[str, Any]]:
    """The load test's runs through the API, by the occurrence they are for."""
    response = api.get(f"/cloud/v6/load_tests/{load_test}/test_runs", params={"$top": 1000})
    assert response.status_code == 200, response.text
    runs: list[dict[str, Any]] = response.json()["value"]
    return sorted(runs, key=lambda run: parse_instant(run["scheduled_for"]))


def _when(run: dict[str, Any]) -> datetime:
    return parse_instant(run["scheduled_for"])


def _message(run: dict[str, Any]) -> str:
    message: str = run["status_details"]["extra"]["message"]
    return message


# "A schedule never fires occurrences from before it was set."

WEEK = timedelta(days=7)
SET_AT = T0 + timedelta(minutes=3)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {"cron": {"schedule": "*/10 * * * *", "time_zone": "UTC"}},
            [T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)],
            id="cron",
        ),
        pytest.param(
            {"recurrence_rule": {"frequency": "HOURLY"}, "starts_offset": timedelta(minutes=30)},
            [T0 + timedelta(minutes=30), T0 + timedelta(minutes=90)],
            id="hourly_rule",
        ),
        pytest.param(
            {"recurrence_rule": {"frequency": "DAILY", "count": 30}},
            [T0 + timedelta(days=1), T0 + timedelta(days=2)],
            id="daily_rule_with_count",
        ),
    ],
)
def test_a_recurring_schedule_with_a_past_starts_never_fires_occurrences_from_before_it_was_set(
    api: Api, store: Store, clock: Clock, body: dict[str, Any], expected: list[datetime]
) -> None:
    body = dict(body)
    starts = T0 - WEEK + body.pop("starts_offset", timedelta(0))
    load_test = api.load_test()
    clock.now = SET_AT  # a week of occurrences lies before this moment
    # overlap "allow": the first run, never executed here, does not hold up the second.
    api.schedule(load_test, {"starts": format_instant(starts), "overlap": "allow", **body})
    firer, lease = _firer(store, clock), _lease(store)

    assert _fire_at(firer, lease, clock, SET_AT).fired == []
    assert _fire_at(firer, lease, clock, SET_AT + timedelta(seconds=59)).fired == []
    for occurrence in expected:
        _fire_at(firer, lease, clock, occurrence)

    runs = _runs(api, load_test)
    assert [(r["status"], _when(r)) for r in runs] == [("created", at) for at in expected]


# "Past 100 skipped records for one schedule in one go, the last record counts the rest."

EVERY_MINUTE = {
    "starts": format_instant(T0),
    "cron": {"schedule": "* * * * *", "time_zone": "UTC"},
    "overlap": "allow",
}
MISSED_MINUTES = 250  # occurrences T0+1 .. T0+250 min fall due while no leader runs
HOURLY = {"starts": format_instant(T0), "cron": {"schedule": "0 * * * *", "time_zone": "UTC"}}
MISSED_HOURS = 250


def test_missed_occurrences_past_100_are_counted_by_the_last_of_100_skipped_records(
    api: Api, store: Store, clock: Clock
) -> None:
    load_test = api.load_test()
    api.schedule(load_test, EVERY_MINUTE)  # set at T0: its first occurrence is T0
    firer, lease = _firer(store, clock), _lease(store)
    _fire_at(firer, lease, clock, T0)
    back = T0 + timedelta(minutes=MISSED_MINUTES, seconds=30)  # within the catch-up window

    result = _fire_at(firer, lease, clock, back)

    assert result.skipped == {"missed": MISSED_MINUTES - 1}
    runs = _runs(api, load_test)
    skipped = [r for r in runs if r["status"] == "skipped"]
    fired = [_when(r) for r in runs if r["status"] != "skipped"]
    assert fired == [T0, T0 + timedelta(minutes=MISSED_MINUTES)]  # the latest, once
    assert len(skipped) == 100
    assert [_when(r) for r in skipped] == [T0 + timedelta(minutes=m) for m in range(1, 101)]
    assert all(_message(r) == "occurrence skipped: missed" for r in skipped[:-1])
    rest = MISSED_MINUTES - 1 - 100
    last = T0 + timedelta(minutes=MISSED_MINUTES - 1)
    assert _message(skipped[-1]).startswith(f"occurrence skipped: missed (and {rest} later")
    assert str(last.year) in _message(skipped[-1])
    (summary,) = [r for r in store.runs.page(1, skip=0, top=1000)[0] if r.details.get("more")]
    assert (summary.scheduled_for, summary.details["more"]) == (_when(skipped[-1]), rest)


def test_every_missed_occurrence_is_accounted_for_when_the_latest_is_outside_the_window(
    api: Api, store: Store, clock: Clock
) -> None:
    load_test = api.load_test()
    api.schedule(load_test, {**HOURLY, "overlap": "allow"})  # first occurrence: T0
    firer, lease = _firer(store, clock), _lease(store)
    _fire_at(firer, lease, clock, T0)
    # Back 6 min after the 250th hour: the latest due one is past the 5 min window too.
    back = T0 + timedelta(hours=MISSED_HOURS, minutes=6)

    result = _fire_at(firer, lease, clock, back)

    assert result.fired == []
    assert result.skipped == {"missed": MISSED_HOURS - 1, "missed_outside_catch_up_window": 1}
    records = [r for r in store.runs.page(1, skip=0, top=1000)[0] if r.status == "skipped"]
    # 100 records of missed ones (the last counting the rest), and the latest's own record.
    assert len(records) == 101
    accounted = sum(1 + int(r.details.get("more", 0)) for r in records)
    assert accounted == MISSED_HOURS  # every occurrence T0+1h .. T0+250h: never silence
    outside = [r for r in records if r.details["skip_reason"] != "missed"]
    assert [(r.details["skip_reason"], r.scheduled_for) for r in outside] == [
        ("missed_outside_catch_up_window", T0 + timedelta(hours=MISSED_HOURS))
    ]


# Per-schedule catch_up_seconds.


def test_per_schedule_catch_up_seconds_decides_which_late_occurrence_still_fires(
    api: Api, store: Store, clock: Clock
) -> None:
    clock.now = T0 + timedelta(minutes=1)  # set after 12:00: the first occurrence is 13:00
    windows: dict[str, int | None] = {"narrow": 60, "deployment": None, "wide": 900}
    load_tests = {}
    for name, window in windows.items():
        load_tests[name] = api.load_test(name=name)
        body = {**HOURLY, "catch_up_seconds": window, "overlap": "allow"}
        schedule = api.schedule(load_tests[name], body)
        assert schedule["catch_up_seconds"] == window
    firer, lease = _firer(store, clock), _lease(store)

    # The leader comes back 120 s after 13:00, then 600 s after 14:00.
    _fire_at(firer, lease, clock, T0 + timedelta(hours=1, seconds=120))
    _fire_at(firer, lease, clock, T0 + timedelta(hours=2, seconds=600))

    def outcome(run: dict[str, Any]) -> str:
        return "fired" if run["status"] != "skipped" else _message(run).split(": ")[1]

    outcomes = {name: [outcome(r) for r in _runs(api, lt)] for name, lt in load_tests.items()}
    late = "missed_outside_catch_up_window"
    assert outcomes == {
        "narrow": [late, late],  # 60 s: neither
        "deployment": ["fired", late],  # 300 s: 120 s late fires, 600 s late does not
        "wide": ["fired", "fired"],  # 900 s: both
    }


# The reason on overlap records.


@pytest.mark.parametrize("lookahead", [timedelta(0), timedelta(seconds=30)], ids=["plain", "ahead"])
def test_an_occurrence_skipped_for_overlap_is_recorded_with_the_reason_overlap(
    api: Api, store: Store, clock: Clock, lookahead: timedelta
) -> None:
    load_test = api.load_test()
    clock.now = T0 + timedelta(minutes=1)
    api.schedule(load_test, HOURLY)  # overlap "skip", the default
    firer, lease = _firer(store, clock, lookahead=lookahead), _lease(store)
    first = T0 + timedelta(hours=1)
    second = T0 + timedelta(hours=2)

    _fire_at(firer, lease, clock, first)  # its run stays "created": not finished
    clock.now = second - timedelta(seconds=10)
    while firer.prepare():  # with the look-ahead: encoded now, found busy at commit
        pass
    assert firer.ahead == (1 if lookahead else 0)
    result = _fire_at(firer, lease, clock, second)

    assert result.skipped == {"overlap": 1}
    runs = _runs(api, load_test)
    assert [(r["status"], _when(r)) for r in runs] == [("created", first), ("skipped", second)]
    assert _message(runs[1]) == "occurrence skipped: overlap"
    assert runs[1]["status_history"][-1]["extra"]["message"] == "occurrence skipped: overlap"
    record = store.runs.get(1, runs[1]["id"])
    assert record.details["skip_reason"] == "overlap"
