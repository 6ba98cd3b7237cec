"""Blackout windows in the core (issue 16 §2): which instants a window covers, what becomes
of an occurrence inside (skipped, or deferred to the window's end), and how the plan records
occurrences a deferral collapsed. Known answers, and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickwork.core import CronSpec, build_schedule, parse_instant
from tickwork.core.model import Cron
from tickwork.core.policies import BLACKOUT, DEFERRED, plan
from tickwork.core.windows import MAX_CHAIN, Timing, Window, WindowPolicy, timing

SKIP, DEFER = WindowPolicy.SKIP, WindowPolicy.DEFER


def _at(text: str) -> datetime:
    return parse_instant(text)


def _saturday_night(policy: WindowPolicy = SKIP, window_id: int = 1) -> Window:
    """Every Saturday 00:00-06:00 Europe/Berlin."""
    return Window(
        window_id, policy, cron=Cron("0 0 * * 6", "Europe/Berlin"), duration=timedelta(hours=6)
    )


@pytest.mark.parametrize(
    ("instant", "end"),
    [
        # winter (CET, UTC+1): Saturday 00:00 Berlin is Friday 23:00 UTC
        ("2026-12-04T22:59:59Z", None),
        ("2026-12-04T23:00:00Z", "2026-12-05T05:00:00Z"),
        ("2026-12-05T04:59:59Z", "2026-12-05T05:00:00Z"),
        ("2026-12-05T05:00:00Z", None),  # the end is not inside
        # summer (CEST, UTC+2)
        ("2027-07-02T22:00:00Z", "2027-07-03T04:00:00Z"),
        ("2027-07-02T21:59:00Z", None),
        # the night clocks go forward (Sun 2027-03-28 02:00): Saturday's span is a plain 6 h
        ("2027-03-27T04:30:00Z", "2027-03-27T05:00:00Z"),
        # a Sunday is never inside
        ("2027-03-28T01:30:00Z", None),
    ],
)
def test_a_recurring_window_covers_its_local_span(instant: str, end: str | None) -> None:
    covered = _saturday_night().end_of_span(_at(instant))
    assert covered == (None if end is None else _at(end))


def test_a_one_off_window_covers_from_inclusive_to_exclusive() -> None:
    window = Window(
        3, SKIP, starts_at=_at("2026-12-10T08:00:00Z"), ends_at=_at("2026-12-10T10:00:00Z")
    )
    assert window.end_of_span(_at("2026-12-10T07:59:59Z")) is None
    assert window.end_of_span(_at("2026-12-10T08:00:00Z")) == _at("2026-12-10T10:00:00Z")
    assert window.end_of_span(_at("2026-12-10T10:00:00Z")) is None


def test_upcoming_spans_of_a_recurring_window_are_listed_in_order() -> None:
    spans = _saturday_night().spans(_at("2026-12-02T00:00:00Z"), _at("2026-12-20T00:00:00Z"))
    assert spans == [
        (_at("2026-12-04T23:00:00Z"), _at("2026-12-05T05:00:00Z")),
        (_at("2026-12-11T23:00:00Z"), _at("2026-12-12T05:00:00Z")),
        (_at("2026-12-18T23:00:00Z"), _at("2026-12-19T05:00:00Z")),
    ]


def test_a_skip_window_wins_over_a_defer_window_covering_the_same_instant() -> None:
    inside = _at("2026-12-05T01:00:00Z")
    fate = timing(inside, [_saturday_night(DEFER, 1), _saturday_night(SKIP, 2)])
    assert fate == Timing(inside, skipped_by=2)


def test_a_deferral_lands_at_the_latest_end_and_moves_on_through_adjacent_windows() -> None:
    first = Window(
        1, DEFER, starts_at=_at("2026-12-10T08:00:00Z"), ends_at=_at("2026-12-10T09:00:00Z")
    )
    adjacent = Window(
        2, DEFER, starts_at=_at("2026-12-10T09:00:00Z"), ends_at=_at("2026-12-10T09:30:00Z")
    )
    fate = timing(_at("2026-12-10T08:15:00Z"), [first, adjacent])
    assert fate == Timing(_at("2026-12-10T09:30:00Z"), deferred_by=1)
    # with its jitter offset kept, so a herd deferred together stays spread
    offset = timedelta(seconds=17)
    fate = timing(_at("2026-12-10T08:15:00Z") + offset, [first], offset=offset)
    assert fate.planned == _at("2026-12-10T09:00:17Z")


def test_a_deferral_into_a_skip_window_is_skipped() -> None:
    defer = Window(
        1, DEFER, starts_at=_at("2026-12-10T08:00:00Z"), ends_at=_at("2026-12-10T09:00:00Z")
    )
    skip = Window(
        2, SKIP, starts_at=_at("2026-12-10T09:00:00Z"), ends_at=_at("2026-12-10T10:00:00Z")
    )
    fate = timing(_at("2026-12-10T08:15:00Z"), [defer, skip])
    assert (fate.skipped_by, fate.deferred_by) == (2, 1)


def test_windows_back_to_back_cannot_keep_a_run_waiting_forever() -> None:
    start = _at("2026-12-10T00:00:00Z")
    chain = [
        Window(
            i + 1,
            DEFER,
            starts_at=start + timedelta(minutes=i),
            ends_at=start + timedelta(minutes=i + 1),
        )
        for i in range(MAX_CHAIN + 5)
    ]
    fate = timing(start, chain)
    assert fate.skipped_by == 1


HOURLY = build_schedule(starts="2026-12-10T00:00:00Z", cron=CronSpec("0 * * * *", "UTC"))


def test_the_plan_skips_an_occurrence_inside_a_skip_window_and_names_the_window() -> None:
    window = Window(
        7, SKIP, starts_at=_at("2026-12-10T07:30:00Z"), ends_at=_at("2026-12-10T08:30:00Z")
    )
    decision = plan(
        HOURLY,
        due_at=_at("2026-12-10T08:00:00Z"),
        now=_at("2026-12-10T08:00:01Z"),
        catch_up=timedelta(minutes=5),
        timing=lambda at: timing(at, [window]),
    )
    assert decision.fire is None
    assert [(s.occurrence_at, s.reason, s.window_id) for s in decision.skips] == [
        (_at("2026-12-10T08:00:00Z"), BLACKOUT, 7)
    ]
    assert decision.next_at == _at("2026-12-10T09:00:00Z")


def test_deferred_occurrences_collapse_into_one_run_at_the_windows_end() -> None:
    # 08:00, 09:00 and 10:00 fall in 07:30-10:30: at 10:30 the latest runs, the others are
    # recorded deferred
    window = Window(
        4, DEFER, starts_at=_at("2026-12-10T07:30:00Z"), ends_at=_at("2026-12-10T10:30:00Z")
    )
    decision = plan(
        HOURLY,
        due_at=_at("2026-12-10T08:00:00Z"),
        now=_at("2026-12-10T10:30:00Z"),
        catch_up=timedelta(minutes=5),
        timing=lambda at: timing(at, [window]),
    )
    assert decision.fire == _at("2026-12-10T10:00:00Z")
    assert decision.fate == Timing(_at("2026-12-10T10:30:00Z"), deferred_by=4)
    assert [(s.occurrence_at, s.reason, s.window_id) for s in decision.skips] == [
        (_at("2026-12-10T08:00:00Z"), DEFERRED, 4),
        (_at("2026-12-10T09:00:00Z"), DEFERRED, 4),
    ]
    assert decision.next_at == _at("2026-12-10T11:00:00Z")


@given(
    start_min=st.integers(min_value=0, max_value=24 * 60),
    length_min=st.integers(min_value=1, max_value=12 * 60),
    instant_min=st.integers(min_value=0, max_value=48 * 60),
    policy=st.sampled_from(list(WindowPolicy)),
)
def test_no_run_is_ever_planned_inside_a_window_nor_before_its_instant(
    start_min: int, length_min: int, instant_min: int, policy: WindowPolicy
) -> None:
    base = datetime(2026, 12, 10, tzinfo=UTC)
    starts = base + timedelta(minutes=start_min)
    window = Window(1, policy, starts_at=starts, ends_at=starts + timedelta(minutes=length_min))
    instant = base + timedelta(minutes=instant_min)
    fate = timing(instant, [window])
    assert fate.planned >= instant
    if fate.skipped_by is None:
        assert window.end_of_span(fate.planned) is None
