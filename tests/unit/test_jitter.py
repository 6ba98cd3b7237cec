"""Jitter (issue 16 §3): an occurrence's offset is fixed by the schedule and the instant,
within [0, jitter), spread evenly, and never so wide that occurrences change order."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickwork.core import CronSpec, build_schedule, parse_instant
from tickwork.core.jitter import MAX_JITTER_S, jitter_offset, widest_jitter
from tickwork.core.occurrences import next_after
from tickwork.dialects.k6 import jitter_of, parse_create_schedule
from tickwork.errors import ValidationError

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_the_offset_is_the_same_on_every_call_and_differs_between_schedules() -> None:
    first = [jitter_offset(sid, T0, 60) for sid in range(1, 200)]
    assert first == [jitter_offset(sid, T0, 60) for sid in range(1, 200)]
    assert len(set(first)) > 150  # not one offset for the herd
    # the next occurrence of one schedule has its own offset too
    assert jitter_offset(1, T0, 60) != jitter_offset(1, T0 + timedelta(hours=1), 60)


def test_no_jitter_is_no_offset() -> None:
    assert jitter_offset(7, T0, 0) == timedelta(0)


def test_a_herd_of_ten_thousand_spreads_evenly_over_the_window() -> None:
    offsets = [jitter_offset(sid, T0, 60) for sid in range(1, 10_001)]
    per_second = [0] * 60
    for offset in offsets:
        assert timedelta(0) <= offset < timedelta(seconds=60)
        per_second[int(offset.total_seconds())] += 1
    # 166.7 expected per second; a fixed input, so this is a known answer, not a sample
    assert min(per_second) > 120
    assert max(per_second) < 215


@given(
    schedule_id=st.integers(min_value=1, max_value=2**53),
    instant_s=st.integers(min_value=0, max_value=4_000_000_000),
    jitter_s=st.integers(min_value=1, max_value=MAX_JITTER_S),
)
def test_the_offset_is_never_negative_and_below_the_jitter(
    schedule_id: int, instant_s: int, jitter_s: int
) -> None:
    at = datetime.fromtimestamp(instant_s, UTC)
    offset = jitter_offset(schedule_id, at, jitter_s)
    assert timedelta(0) <= offset < timedelta(seconds=jitter_s)
    assert offset.microseconds % 1000 == 0  # whole ms: the due index's unit


@pytest.mark.parametrize(
    ("expression", "zone", "widest"),
    [
        ("* * * * *", "UTC", 60),
        ("*/15 * * * *", "UTC", 900),
        ("0,10 * * * *", "UTC", 600),  # 10 min then 50: the shorter one bounds it
        ("0 9 * * 1-5", "Europe/Berlin", 86_400),
        # an hourly job across New York's fall-back: 01:00 EDT and 01:00 EST an hour apart
        ("0 * * * *", "America/New_York", 3600),
        # Lord Howe's 30-minute shift: 01:30 then 02:30 a half hour apart in April
        ("30 1,2 * * *", "Australia/Lord_Howe", 1800),
    ],
)
def test_the_widest_jitter_is_the_shortest_gap(expression: str, zone: str, widest: int) -> None:
    schedule = build_schedule(starts="2026-01-01T00:00:00Z", cron=CronSpec(expression, zone))
    assert widest_jitter(schedule, parse_instant("2027-04-01T00:00:00Z"), look=500) == widest


def test_a_one_shot_takes_any_jitter() -> None:
    schedule = build_schedule(starts="2026-12-02T00:00:00Z")
    assert widest_jitter(schedule, T0) is None


@given(
    minutes=st.sampled_from([1, 5, 15, 60]),
    schedule_id=st.integers(min_value=1, max_value=10**9),
    after_s=st.integers(min_value=1_800_000_000, max_value=1_900_000_000),
)
def test_within_the_widest_jitter_occurrences_keep_their_order(
    minutes: int, schedule_id: int, after_s: int
) -> None:
    schedule = build_schedule(
        starts="2026-01-01T00:00:00Z", cron=CronSpec(f"*/{minutes} * * * *", "UTC")
    )
    after = datetime.fromtimestamp(after_s, UTC)
    jitter = widest_jitter(schedule, after, look=20)
    assert jitter == minutes * 60
    at = next_after(schedule, after)
    assert at is not None
    planned = []
    for _ in range(20):
        planned.append(at + jitter_offset(schedule_id, at, jitter))
        following = next_after(schedule, at)
        assert following is not None
        at = following
    assert planned == sorted(planned)
    assert len(set(planned)) == len(planned)


def _request(jitter: int | None, cron: str = "*/5 * * * *") -> str:
    extra = "" if jitter is None else f', "jitter_seconds": {jitter}'
    return (
        f'{{"starts": "2026-12-01T00:00:00Z", "cron": {{"schedule": "{cron}", '
        f'"time_zone": "UTC"}}{extra}}}'
    )


def test_the_request_jitter_wins_over_the_default() -> None:
    request, schedule = parse_create_schedule(_request(30))
    assert jitter_of(request, schedule, default_s=120, now=T0) == 30


def test_the_default_is_narrowed_to_the_schedule_and_a_request_too_wide_is_refused() -> None:
    request, schedule = parse_create_schedule(_request(None))
    assert jitter_of(request, schedule, default_s=3600, now=T0) == 300
    request, schedule = parse_create_schedule(_request(301))
    with pytest.raises(ValidationError) as refused:
        jitter_of(request, schedule, default_s=0, now=T0)
    assert [p.target for p in refused.value.problems] == ["jitter_seconds"]
    assert "300" in refused.value.problems[0].message


@pytest.mark.parametrize("jitter", [-1, 3601, "10", 1.5, True])
def test_a_jitter_out_of_range_or_not_an_integer_is_refused_naming_it(jitter: object) -> None:
    body = _request(0).replace('"jitter_seconds": 0', f'"jitter_seconds": {json.dumps(jitter)}')
    with pytest.raises(ValidationError) as refused:
        parse_create_schedule(body)
    assert [p.target for p in refused.value.problems] == ["jitter_seconds"]
