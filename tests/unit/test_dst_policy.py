"""The per-schedule DST policy of fixed-time cron jobs (issue 16 §5): known answers in five
DST-odd zones, and properties over many expressions and instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickwork.core import CronSpec, build_schedule, occurrences_after, parse_instant
from tickwork.core.instants import zone as zone_of
from tickwork.core.model import DstGap, DstRepeat, Schedule
from tickwork.core.occurrences import next_after
from tickwork.dialects.k6 import parse_create_schedule
from tickwork.store.codec import decode_schedule, encode_schedule


def _cron(
    expression: str, zone: str, gap: DstGap = DstGap.SHIFT, repeat: DstRepeat = DstRepeat.FIRST
) -> Schedule:
    spec = CronSpec(expression, zone, gap=gap, repeat=repeat)
    return build_schedule(starts="2026-01-01T00:00:00Z", cron=spec)


def _next(schedule: Schedule, after: str, n: int = 3) -> list[str]:
    return [
        o.isoformat().replace("+00:00", "Z")
        for o in occurrences_after(schedule, parse_instant(after), n)
    ]


@pytest.mark.parametrize(
    ("expression", "zone", "after", "shift", "skip"),
    [
        pytest.param(
            "30 2 * * *",
            "America/New_York",
            "2026-03-07T12:00:00Z",
            ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"],
            ["2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"],
            id="new_york_0230",
        ),
        pytest.param(
            "30 2 * * *",
            "Europe/Berlin",
            "2026-03-28T12:00:00Z",
            ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
            ["2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"],
            id="berlin_0230",
        ),
        pytest.param(
            "15 2 * * *",
            "Australia/Lord_Howe",
            "2026-10-03T00:00:00Z",
            ["2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"],
            ["2026-10-04T15:15:00Z", "2026-10-05T15:15:00Z"],
            id="lord_howe_half_hour_0215",
        ),
        pytest.param(
            "0 0 * * *",
            "America/Santiago",
            "2026-09-05T12:00:00Z",
            ["2026-09-06T04:00:00Z", "2026-09-07T03:00:00Z"],
            ["2026-09-07T03:00:00Z", "2026-09-08T03:00:00Z"],
            id="santiago_midnight",
        ),
        pytest.param(
            "45 2 * * *",
            "Pacific/Chatham",
            "2026-09-26T12:00:00Z",
            ["2026-09-26T14:00:00Z", "2026-09-27T13:00:00Z"],
            ["2026-09-27T13:00:00Z", "2026-09-28T13:00:00Z"],
            id="chatham_0245",
        ),
    ],
)
def test_a_local_time_in_a_gap_shifts_or_is_skipped(
    expression: str, zone: str, after: str, shift: list[str], skip: list[str]
) -> None:
    assert _next(_cron(expression, zone), after, 2) == shift
    assert _next(_cron(expression, zone, gap=DstGap.SKIP), after, 2) == skip


@pytest.mark.parametrize(
    ("expression", "zone", "after", "first", "both"),
    [
        pytest.param(
            "30 1 * * *",
            "America/New_York",
            "2026-10-31T12:00:00Z",
            ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
            ["2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z"],
            id="new_york_0130",
        ),
        pytest.param(
            "30 2 * * *",
            "Europe/Berlin",
            "2026-10-24T12:00:00Z",
            ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
            ["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-26T01:30:00Z"],
            id="berlin_0230",
        ),
        pytest.param(
            "45 1 * * *",
            "Australia/Lord_Howe",
            "2026-04-04T00:00:00Z",
            ["2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"],
            ["2026-04-04T14:45:00Z", "2026-04-04T15:15:00Z", "2026-04-05T15:15:00Z"],
            id="lord_howe_half_hour_0145",
        ),
        pytest.param(
            "0 23 * * *",
            "America/Santiago",
            "2026-04-04T12:00:00Z",
            ["2026-04-05T02:00:00Z", "2026-04-06T03:00:00Z"],
            ["2026-04-05T02:00:00Z", "2026-04-05T03:00:00Z", "2026-04-06T03:00:00Z"],
            id="santiago_2300",
        ),
        pytest.param(
            "0 3 * * *",
            "Pacific/Chatham",
            "2026-04-04T12:00:00Z",
            ["2026-04-04T13:15:00Z", "2026-04-05T14:15:00Z"],
            ["2026-04-04T13:15:00Z", "2026-04-04T14:15:00Z", "2026-04-05T14:15:00Z"],
            id="chatham_0300",
        ),
    ],
)
def test_a_repeated_local_time_runs_at_the_first_pass_or_at_both(
    expression: str, zone: str, after: str, first: list[str], both: list[str]
) -> None:
    assert _next(_cron(expression, zone), after, 2) == first
    assert _next(_cron(expression, zone, repeat=DstRepeat.BOTH), after, 3) == both


def test_elapsed_time_jobs_ignore_the_policy() -> None:
    for gap, repeat in [(DstGap.SKIP, DstRepeat.FIRST), (DstGap.SHIFT, DstRepeat.BOTH)]:
        schedule = _cron("*/30 1 * * *", "America/New_York", gap, repeat)
        assert _next(schedule, "2026-11-01T04:00:00Z", 4) == _next(
            _cron("*/30 1 * * *", "America/New_York"), "2026-11-01T04:00:00Z", 4
        )


def test_the_policy_is_a_k6_extension_that_survives_the_store() -> None:
    body = (
        '{"starts": "2026-01-01T00:00:00Z", "cron": {"schedule": "30 2 * * *", '
        '"time_zone": "Europe/Berlin", "dst": {"gap": "skip", "repeat": "both"}}}'
    )
    _, schedule = parse_create_schedule(body)
    assert decode_schedule(encode_schedule(schedule)) == schedule
    assert schedule == _cron("30 2 * * *", "Europe/Berlin", DstGap.SKIP, DstRepeat.BOTH)


ZONES = st.sampled_from(
    [
        "America/New_York",
        "Europe/Berlin",
        "Australia/Lord_Howe",
        "America/Santiago",
        "Pacific/Chatham",
        "America/Havana",
    ]
)
AFTER = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)


@given(
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    zone=ZONES,
    gap=st.sampled_from(list(DstGap)),
    repeat=st.sampled_from(list(DstRepeat)),
    after=AFTER,
)
def test_occurrences_strictly_increase_and_skip_never_fires_inside_a_gap(
    minute: int, hour: int, zone: str, gap: DstGap, repeat: DstRepeat, after: datetime
) -> None:
    schedule = _cron(f"{minute} {hour} * * *", zone, gap, repeat)
    found = occurrences_after(schedule, after, 8)
    assert all(b > a for a, b in zip([after, *found], found, strict=False))  # next(t) > t
    assert len(set(found)) == len(found)  # never two runs at one instant
    for instant in found:
        local = instant.astimezone(zone_of(zone))
        if gap is DstGap.SKIP:
            assert (local.hour, local.minute) == (hour, minute)


@given(minute=st.integers(0, 59), hour=st.integers(0, 23), zone=ZONES, after=AFTER)
def test_both_adds_exactly_the_second_passes_to_first(
    minute: int, hour: int, zone: str, after: datetime
) -> None:
    first = _cron(f"{minute} {hour} * * *", zone)
    both = _cron(f"{minute} {hour} * * *", zone, repeat=DstRepeat.BOTH)
    horizon = after + timedelta(days=40)
    seen_first = [o for o in occurrences_after(first, after, 60) if o < horizon]
    seen_both = [o for o in occurrences_after(both, after, 80) if o < horizon]
    assert set(seen_first) <= set(seen_both)
    for extra in set(seen_both) - set(seen_first):
        # each extra one is a second pass: an hour or less after a first-pass occurrence
        assert any(timedelta(0) < extra - o <= timedelta(hours=1) for o in seen_first)
    assert next_after(both, after) is not None
