"""The occurrence ledger's notes: known answers in DST-odd zones, month ends and series ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickwork.core import CronSpec, Frequency, RuleSpec, build_schedule, parse_instant
from tickwork.core.explain import explained
from tickwork.core.model import Schedule


def _cron(expression: str, zone: str) -> Schedule:
    return build_schedule(starts="2026-01-01T00:00:00Z", cron=CronSpec(expression, zone))


def _rows(schedule: Schedule, after: str, before: str | None = None) -> list[tuple[str, str, str]]:
    """(instant, local, note codes) of each occurrence in the window."""
    return [
        (e.instant.isoformat(), e.local.isoformat(), ",".join(n.code for n in e.notes))
        for e in explained(
            schedule,
            after=parse_instant(after),
            before=parse_instant(before) if before else None,
            limit=50,
        )
    ]


@pytest.mark.parametrize(
    ("schedule", "after", "before", "expected"),
    [
        pytest.param(
            _cron("30 2 * * *", "America/New_York"),
            "2026-03-08T00:00:00Z",
            "2026-03-09T00:00:00Z",
            [("2026-03-08T07:00:00+00:00", "2026-03-08T03:00:00-04:00", "dst_gap")],
            id="new_york_spring_gap_0230_moves_to_0300",
        ),
        pytest.param(
            _cron("30 1 * * *", "America/New_York"),
            "2026-11-01T00:00:00Z",
            "2026-11-02T00:00:00Z",
            [("2026-11-01T05:30:00+00:00", "2026-11-01T01:30:00-04:00", "dst_repeated")],
            id="new_york_fall_back_0130_first_pass_only",
        ),
        pytest.param(
            _cron("0 * * * *", "America/New_York"),
            "2026-11-01T04:30:00Z",
            "2026-11-01T07:30:00Z",
            [
                ("2026-11-01T05:00:00+00:00", "2026-11-01T01:00:00-04:00", "dst_repeated"),
                ("2026-11-01T06:00:00+00:00", "2026-11-01T01:00:00-05:00", "dst_repeated"),
                ("2026-11-01T07:00:00+00:00", "2026-11-01T02:00:00-05:00", ""),
            ],
            id="new_york_elapsed_time_hourly_runs_both_passes",
        ),
        pytest.param(
            _cron("30 2 * * *", "Europe/Berlin"),
            "2026-03-29T00:00:00Z",
            "2026-03-30T00:00:00Z",
            [("2026-03-29T01:00:00+00:00", "2026-03-29T03:00:00+02:00", "dst_gap")],
            id="berlin_spring_gap_0230_moves_to_0300",
        ),
        pytest.param(
            _cron("30 2 * * *", "Europe/Berlin"),
            "2026-10-25T00:00:00Z",
            "2026-10-26T00:00:00Z",
            [("2026-10-25T00:30:00+00:00", "2026-10-25T02:30:00+02:00", "dst_repeated")],
            id="berlin_fall_back_0230_first_pass_only",
        ),
        pytest.param(
            _cron("15 2 * * *", "Australia/Lord_Howe"),
            "2026-10-03T12:00:00Z",
            "2026-10-04T12:00:00Z",
            [("2026-10-03T15:30:00+00:00", "2026-10-04T02:30:00+11:00", "dst_gap")],
            id="lord_howe_half_hour_gap_0215_moves_to_0230",
        ),
        pytest.param(
            _cron("45 1 * * *", "Australia/Lord_Howe"),
            "2026-04-04T12:00:00Z",
            "2026-04-05T12:00:00Z",
            [("2026-04-04T14:45:00+00:00", "2026-04-05T01:45:00+11:00", "dst_repeated")],
            id="lord_howe_half_hour_fold_0145_first_pass_only",
        ),
        pytest.param(
            _cron("0 0 * * *", "America/Santiago"),
            "2026-09-05T12:00:00Z",
            "2026-09-07T12:00:00Z",
            [
                ("2026-09-06T04:00:00+00:00", "2026-09-06T01:00:00-03:00", "dst_gap"),
                ("2026-09-07T03:00:00+00:00", "2026-09-07T00:00:00-03:00", ""),
            ],
            id="santiago_midnight_gap_moves_to_0100",
        ),
        pytest.param(
            _cron("30 1 * * *", "UTC"),
            "2026-03-08T00:00:00Z",
            "2026-03-09T00:00:00Z",
            [("2026-03-08T01:30:00+00:00", "2026-03-08T01:30:00+00:00", "")],
            id="utc_never_has_notes",
        ),
        pytest.param(
            build_schedule(
                starts="2026-01-31T09:00:00+01:00", rule=RuleSpec(Frequency.MONTHLY, count=4)
            ),
            "2026-01-01T00:00:00Z",
            None,
            [
                ("2026-01-31T08:00:00+00:00", "2026-01-31T09:00:00+01:00", ""),
                ("2026-02-28T08:00:00+00:00", "2026-02-28T09:00:00+01:00", "month_end_clamped"),
                ("2026-03-31T08:00:00+00:00", "2026-03-31T09:00:00+01:00", ""),
                (
                    "2026-04-30T08:00:00+00:00",
                    "2026-04-30T09:00:00+01:00",
                    "month_end_clamped,last",
                ),
            ],
            id="monthly_31st_clamps_and_count_ends",
        ),
        pytest.param(
            build_schedule(starts="2028-02-29T09:00:00Z", rule=RuleSpec(Frequency.YEARLY, count=2)),
            "2026-01-01T00:00:00Z",
            None,
            [
                ("2028-02-29T09:00:00+00:00", "2028-02-29T09:00:00+00:00", ""),
                (
                    "2029-02-28T09:00:00+00:00",
                    "2029-02-28T09:00:00+00:00",
                    "month_end_clamped,last",
                ),
            ],
            id="yearly_feb_29_clamps_to_28_in_a_common_year",
        ),
        pytest.param(
            build_schedule(
                starts="2026-12-01T08:00:00Z",
                rule=RuleSpec(Frequency.DAILY, until="2026-12-03T08:00:00Z"),
            ),
            "2026-11-01T00:00:00Z",
            None,
            [
                ("2026-12-01T08:00:00+00:00", "2026-12-01T08:00:00+00:00", ""),
                ("2026-12-02T08:00:00+00:00", "2026-12-02T08:00:00+00:00", ""),
                ("2026-12-03T08:00:00+00:00", "2026-12-03T08:00:00+00:00", "last"),
            ],
            id="until_is_inclusive_and_ends_the_series",
        ),
        pytest.param(
            build_schedule(starts="2026-12-24T18:00:00+01:00"),
            "2026-12-01T00:00:00Z",
            None,
            [("2026-12-24T17:00:00+00:00", "2026-12-24T18:00:00+01:00", "last")],
            id="a_one_shot_is_its_own_last",
        ),
    ],
)
def test_occurrences_carry_the_notes_a_reader_needs(
    schedule: Schedule, after: str, before: str | None, expected: list[tuple[str, str, str]]
) -> None:
    assert _rows(schedule, after, before) == expected


def test_the_messages_name_what_happened() -> None:
    (gap,) = explained(
        _cron("30 2 * * *", "America/New_York"),
        after=parse_instant("2026-03-08T00:00:00Z"),
        before=parse_instant("2026-03-09T00:00:00Z"),
        limit=5,
    )
    assert gap.notes[0].message == (
        "02:30 on 2026-03-08 did not exist in America/New_York (clocks went forward): it runs "
        "at the first instant after the gap, 03:00 EDT"
    )


@given(
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    zone=st.sampled_from(
        ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago"]
    ),
    after=st.datetimes(
        min_value=datetime(2020, 1, 1),
        max_value=datetime(2035, 1, 1),
        timezones=st.just(UTC),
    ),
)
def test_a_fixed_time_job_shows_its_own_wall_time_unless_a_gap_note_says_why_not(
    minute: int, hour: int, zone: str, after: datetime
) -> None:
    schedule = _cron(f"{minute} {hour} * * *", zone)
    for entry in explained(schedule, after=after, before=after + timedelta(days=3), limit=5):
        shown = (entry.local.hour, entry.local.minute) == (hour, minute)
        gap = "dst_gap" in [note.code for note in entry.notes]
        assert shown != gap
