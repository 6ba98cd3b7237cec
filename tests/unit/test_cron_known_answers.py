"""Known answers for cron schedules, each worked out by hand from the rules of the contract.

The 2026 transitions used below (checked against the installed tzdata, see the first test):

===================  ==================================  ==================================
zone                 spring forward: wall times skipped  fall back: wall times repeated
===================  ==================================  ==================================
America/New_York     Mar 8 02:00-03:00 at 07:00Z, -5/-4  Nov 1 01:00-02:00 at 06:00Z, -4/-5
Europe/Berlin        Mar 29 02:00-03:00 at 01:00Z        Oct 25 02:00-03:00 at 01:00Z
Europe/London        Mar 29 01:00-02:00 at 01:00Z        Oct 25 01:00-02:00 at 01:00Z
Australia/Sydney     Oct 4 02:00-03:00 at Oct 3 16:00Z   Apr 5 02:00-03:00 at Apr 4 16:00Z
Australia/Lord_Howe  Oct 4 02:00-02:30 at Oct 3 15:30Z   Apr 5 01:30-02:00 at Apr 4 15:00Z
America/Havana       Mar 8 00:00-01:00 at 05:00Z, -5/-4  Nov 1 00:00-01:00 at 05:00Z, -4/-5
America/Santiago     Sep 6 00:00-01:00 at 04:00Z, -4/-3  Apr 4 23:00-24:00 at Apr 5 03:00Z
===================  ==================================  ==================================

A fixed-time job (minute and hour fields both not beginning with ``*``) runs on the wall
clock: a skipped time runs once at the first instant after the gap, a repeated time once at
its first pass. Any other job follows elapsed time: every real instant whose wall time
matches, nothing for wall times that do not exist, twice for repeated ones.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from tickwork.core import (
    CronSpec,
    build_schedule,
    format_instant,
    is_expired,
    next_run,
    occurrences_after,
    parse_instant,
)

EARLY = "2000-01-01T00:00:00Z"

Case = tuple[str, str, str, list[str]]  # expression, time zone, after, expected


def _occurrences(
    expression: str, time_zone: str, after: str, count: int, *, starts: str = EARLY
) -> list[str]:
    schedule = build_schedule(starts=starts, cron=CronSpec(expression, time_zone))
    found = occurrences_after(schedule, parse_instant(after), count)
    return [format_instant(value) for value in found]


def _check(case: Case) -> None:
    expression, time_zone, after, expected = case
    assert _occurrences(expression, time_zone, after, len(expected)) == expected


@pytest.mark.parametrize(
    ("zone_name", "before", "after", "offset_before", "offset_after"),
    [
        ("America/New_York", "2026-03-08T06:59:00Z", "2026-03-08T07:00:00Z", -300, -240),
        ("America/New_York", "2026-11-01T05:59:00Z", "2026-11-01T06:00:00Z", -240, -300),
        ("Europe/Berlin", "2026-03-29T00:59:00Z", "2026-03-29T01:00:00Z", 60, 120),
        ("Europe/Berlin", "2026-10-25T00:59:00Z", "2026-10-25T01:00:00Z", 120, 60),
        ("Europe/London", "2026-03-29T00:59:00Z", "2026-03-29T01:00:00Z", 0, 60),
        ("Europe/London", "2026-10-25T00:59:00Z", "2026-10-25T01:00:00Z", 60, 0),
        ("Australia/Sydney", "2026-10-03T15:59:00Z", "2026-10-03T16:00:00Z", 600, 660),
        ("Australia/Sydney", "2026-04-04T15:59:00Z", "2026-04-04T16:00:00Z", 660, 600),
        ("Australia/Lord_Howe", "2026-10-03T15:29:00Z", "2026-10-03T15:30:00Z", 630, 660),
        ("Australia/Lord_Howe", "2026-04-04T14:59:00Z", "2026-04-04T15:00:00Z", 660, 630),
        ("America/Havana", "2026-03-08T04:59:00Z", "2026-03-08T05:00:00Z", -300, -240),
        ("America/Havana", "2026-11-01T04:59:00Z", "2026-11-01T05:00:00Z", -240, -300),
        ("America/Santiago", "2026-09-06T03:59:00Z", "2026-09-06T04:00:00Z", -240, -180),
        ("America/Santiago", "2026-04-05T02:59:00Z", "2026-04-05T03:00:00Z", -180, -240),
    ],
)
def test_the_installed_tzdata_has_the_transitions_the_known_answers_assume(
    zone_name: str, before: str, after: str, offset_before: int, offset_after: int
) -> None:
    tz = ZoneInfo(zone_name)
    for instant, minutes in ((before, offset_before), (after, offset_after)):
        offset = parse_instant(instant).astimezone(tz).utcoffset()
        assert offset is not None
        assert offset.total_seconds() == minutes * 60


FIXED_TIME_IN_GAP: list[Case] = [
    (
        "30 2 * * *",
        "America/New_York",
        "2026-03-07T12:00:00Z",
        ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"],
    ),
    (
        "0,30 2 * * *",
        "America/New_York",
        "2026-03-07T00:00:00Z",
        [
            "2026-03-07T07:00:00Z",
            "2026-03-07T07:30:00Z",
            "2026-03-08T07:00:00Z",  # 02:00 and 02:30 both skipped: one run after the gap
            "2026-03-09T06:00:00Z",
            "2026-03-09T06:30:00Z",
        ],
    ),
    (
        "30 2 * * *",
        "Europe/Berlin",
        "2026-03-28T00:00:00Z",
        ["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
    ),
    (
        "30 1 * * *",
        "Europe/London",
        "2026-03-28T00:00:00Z",
        ["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
    ),
    (
        "30 2 * * *",
        "Australia/Sydney",
        "2026-10-02T12:00:00Z",
        ["2026-10-02T16:30:00Z", "2026-10-03T16:00:00Z", "2026-10-04T15:30:00Z"],
    ),
    (
        "15 2 * * *",
        "Australia/Lord_Howe",
        "2026-10-02T12:00:00Z",
        ["2026-10-02T15:45:00Z", "2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"],
    ),
    (
        "0 0 * * *",
        "America/Havana",
        "2026-03-06T12:00:00Z",
        ["2026-03-07T05:00:00Z", "2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"],
    ),
    (
        "0 0 * * *",
        "America/Santiago",
        "2026-09-04T12:00:00Z",
        ["2026-09-05T04:00:00Z", "2026-09-06T04:00:00Z", "2026-09-07T03:00:00Z"],
    ),
    (
        "30 0 * * 0",
        "America/Santiago",
        "2026-08-29T12:00:00Z",
        ["2026-08-30T04:30:00Z", "2026-09-06T04:00:00Z", "2026-09-13T03:30:00Z"],
    ),
]


@pytest.mark.parametrize("case", FIXED_TIME_IN_GAP, ids=lambda c: f"{c[0]} {c[1]}")
def test_a_fixed_time_job_skipped_by_spring_forward_runs_once_at_the_first_instant_after_the_gap(
    case: Case,
) -> None:
    _check(case)


FIXED_TIME_NEXT_TO_GAP: list[Case] = [
    (
        "0 3 * * *",
        "America/New_York",
        "2026-03-07T00:00:00Z",
        ["2026-03-07T08:00:00Z", "2026-03-08T07:00:00Z", "2026-03-09T07:00:00Z"],
    ),
    (
        "45 2 * * *",
        "Australia/Lord_Howe",
        "2026-10-02T12:00:00Z",
        ["2026-10-02T16:15:00Z", "2026-10-03T15:45:00Z", "2026-10-04T15:45:00Z"],
    ),
    (
        "0 2,3 * * *",
        "America/New_York",
        "2026-03-08T00:00:00Z",
        # 02:00 runs at 03:00 EDT, which is also the 03:00 run: one instant, one run
        ["2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z", "2026-03-09T07:00:00Z"],
    ),
]


@pytest.mark.parametrize("case", FIXED_TIME_NEXT_TO_GAP, ids=lambda c: f"{c[0]} {c[1]}")
def test_a_fixed_time_job_at_an_existing_time_on_a_spring_forward_day_runs_at_that_time(
    case: Case,
) -> None:
    _check(case)


FIXED_TIME_IN_FOLD: list[Case] = [
    (
        "30 1 * * *",
        "America/New_York",
        "2026-10-31T12:00:00Z",
        ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
    ),
    (
        "15,45 1 * * *",
        "America/New_York",
        "2026-10-31T12:00:00Z",
        [
            "2026-11-01T05:15:00Z",
            "2026-11-01T05:45:00Z",
            "2026-11-02T06:15:00Z",
            "2026-11-02T06:45:00Z",
        ],
    ),
    (
        "0 2 * * *",
        "America/New_York",
        "2026-10-31T00:00:00Z",
        ["2026-10-31T06:00:00Z", "2026-11-01T07:00:00Z", "2026-11-02T07:00:00Z"],
    ),
    (
        "30 2 * * *",
        "Europe/Berlin",
        "2026-10-24T00:00:00Z",
        ["2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
    ),
    (
        "30 1 * * *",
        "Europe/London",
        "2026-10-24T12:00:00Z",
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
    ),
    (
        "30 2 * * *",
        "Australia/Sydney",
        "2026-04-03T12:00:00Z",
        ["2026-04-03T15:30:00Z", "2026-04-04T15:30:00Z", "2026-04-05T16:30:00Z"],
    ),
    (
        "45 1 * * *",
        "Australia/Lord_Howe",
        "2026-04-03T12:00:00Z",
        ["2026-04-03T14:45:00Z", "2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"],
    ),
    (
        "30 0 * * *",
        "America/Havana",
        "2026-10-30T12:00:00Z",
        ["2026-10-31T04:30:00Z", "2026-11-01T04:30:00Z", "2026-11-02T05:30:00Z"],
    ),
    (
        "30 23 * * *",
        "America/Santiago",
        "2026-04-03T12:00:00Z",
        ["2026-04-04T02:30:00Z", "2026-04-05T02:30:00Z", "2026-04-06T03:30:00Z"],
    ),
    (
        # asked from inside the second pass: the repeated 01:30 already ran at its first pass
        "30 1 * * *",
        "America/New_York",
        "2026-11-01T06:10:00Z",
        ["2026-11-02T06:30:00Z"],
    ),
]


@pytest.mark.parametrize("case", FIXED_TIME_IN_FOLD, ids=lambda c: f"{c[0]} {c[1]} {c[2]}")
def test_a_fixed_time_job_repeated_by_fall_back_runs_once_at_the_first_pass(case: Case) -> None:
    _check(case)


def test_a_fixed_time_job_whose_first_pass_is_before_starts_does_not_run_at_the_second_pass() -> (
    None
):
    # starts at 01:10 EST, in the second pass; 01:30 ran (would have run) at 05:30Z
    got = _occurrences(
        "30 1 * * *",
        "America/New_York",
        "2026-10-01T00:00:00Z",
        2,
        starts="2026-11-01T06:10:00Z",
    )
    assert got == ["2026-11-02T06:30:00Z", "2026-11-03T06:30:00Z"]


WILDCARD_ACROSS_TRANSITIONS: list[Case] = [
    (
        "*/15 * * * *",
        "America/New_York",
        "2026-03-08T06:30:00Z",
        ["2026-03-08T06:45:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:15:00Z"],
    ),
    (
        "*/15 * * * *",
        "America/New_York",
        "2026-11-01T05:30:00Z",
        [
            "2026-11-01T05:45:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T06:15:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-01T06:45:00Z",
            "2026-11-01T07:00:00Z",
        ],
    ),
    (
        "30 * * * *",
        "America/New_York",
        "2026-11-01T04:00:00Z",
        [
            "2026-11-01T04:30:00Z",
            "2026-11-01T05:30:00Z",  # 01:30 EDT
            "2026-11-01T06:30:00Z",  # 01:30 EST
            "2026-11-01T07:30:00Z",
        ],
    ),
    (
        "30 * * * *",
        "America/New_York",
        "2026-03-08T05:00:00Z",
        [
            "2026-03-08T05:30:00Z",
            "2026-03-08T06:30:00Z",  # 01:30 EST; 02:30 does not exist
            "2026-03-08T07:30:00Z",  # 03:30 EDT
            "2026-03-08T08:30:00Z",
        ],
    ),
    (
        "0 * * * *",
        "America/New_York",
        "2026-11-01T04:30:00Z",
        ["2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"],
    ),
    (
        "*/30 1 * * *",
        "America/New_York",
        "2026-10-31T12:00:00Z",
        [
            "2026-11-01T05:00:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-02T06:00:00Z",
        ],
    ),
    (
        "*/30 2 * * *",
        "America/New_York",
        "2026-03-07T00:00:00Z",
        [
            "2026-03-07T07:00:00Z",
            "2026-03-07T07:30:00Z",
            "2026-03-09T06:00:00Z",  # nothing on Mar 8: 02:xx does not exist
            "2026-03-09T06:30:00Z",
        ],
    ),
    (
        "*/20 2 * * *",
        "Europe/Berlin",
        "2026-10-24T23:00:00Z",
        [
            "2026-10-25T00:00:00Z",
            "2026-10-25T00:20:00Z",
            "2026-10-25T00:40:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T01:20:00Z",
            "2026-10-25T01:40:00Z",
            "2026-10-26T01:00:00Z",
        ],
    ),
    (
        "*/20 2 * * *",
        "Europe/Berlin",
        "2026-03-28T00:00:00Z",
        [
            "2026-03-28T01:00:00Z",
            "2026-03-28T01:20:00Z",
            "2026-03-28T01:40:00Z",
            "2026-03-30T00:00:00Z",
            "2026-03-30T00:20:00Z",
            "2026-03-30T00:40:00Z",
        ],
    ),
    (
        "45 * * * *",
        "Europe/London",
        "2026-03-29T00:00:00Z",
        ["2026-03-29T00:45:00Z", "2026-03-29T01:45:00Z", "2026-03-29T02:45:00Z"],
    ),
    (
        "30 * * * *",
        "Europe/London",
        "2026-10-25T00:00:00Z",
        ["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-25T02:30:00Z"],
    ),
    (
        "*/30 2 * * *",
        "Australia/Sydney",
        "2026-04-04T12:00:00Z",
        [
            "2026-04-04T15:00:00Z",
            "2026-04-04T15:30:00Z",
            "2026-04-04T16:00:00Z",
            "2026-04-04T16:30:00Z",
            "2026-04-05T16:00:00Z",
        ],
    ),
    (
        "*/30 2 * * *",
        "Australia/Sydney",
        "2026-10-02T12:00:00Z",
        [
            "2026-10-02T16:00:00Z",
            "2026-10-02T16:30:00Z",
            "2026-10-04T15:00:00Z",
            "2026-10-04T15:30:00Z",
        ],
    ),
    (
        "*/10 3 * * *",
        "Australia/Lord_Howe",
        "2026-10-03T12:00:00Z",
        [
            "2026-10-03T16:00:00Z",
            "2026-10-03T16:10:00Z",
            "2026-10-03T16:20:00Z",
            "2026-10-03T16:30:00Z",
            "2026-10-03T16:40:00Z",
            "2026-10-03T16:50:00Z",
            "2026-10-04T16:00:00Z",
        ],
    ),
    (
        "40 * * * *",
        "Australia/Lord_Howe",
        "2026-10-03T15:00:00Z",
        [
            "2026-10-03T15:10:00Z",  # 01:40 +10:30
            "2026-10-03T15:40:00Z",  # 02:40 +11, just after the half-hour gap
            "2026-10-03T16:40:00Z",
        ],
    ),
    (
        "*/30 1 * * *",
        "Australia/Lord_Howe",
        "2026-04-04T12:00:00Z",
        [
            "2026-04-04T14:00:00Z",
            "2026-04-04T14:30:00Z",
            "2026-04-04T15:00:00Z",  # 01:30 again, at +10:30
            "2026-04-05T14:30:00Z",
            "2026-04-05T15:00:00Z",
        ],
    ),
    (
        "30 * * * *",
        "Australia/Lord_Howe",
        "2026-04-04T13:00:00Z",
        [
            "2026-04-04T13:30:00Z",
            "2026-04-04T14:30:00Z",
            "2026-04-04T15:00:00Z",
            "2026-04-04T16:00:00Z",
        ],
    ),
    (
        "*/15 0 * * 0",
        "America/Havana",
        "2026-03-02T00:00:00Z",
        [
            # Sunday Mar 8 has no 00:xx at all
            "2026-03-15T04:00:00Z",
            "2026-03-15T04:15:00Z",
            "2026-03-15T04:30:00Z",
            "2026-03-15T04:45:00Z",
        ],
    ),
    (
        "15 * 8 3 *",
        "America/Havana",
        "2026-03-08T00:00:00Z",
        ["2026-03-08T05:15:00Z", "2026-03-08T06:15:00Z"],
    ),
    (
        "*/30 0 * * *",
        "America/Havana",
        "2026-10-31T12:00:00Z",
        [
            "2026-11-01T04:00:00Z",
            "2026-11-01T04:30:00Z",
            "2026-11-01T05:00:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-02T05:00:00Z",
        ],
    ),
    (
        "*/20 0 * * 0",
        "America/Santiago",
        "2026-09-05T12:00:00Z",
        ["2026-09-13T03:00:00Z", "2026-09-13T03:20:00Z", "2026-09-13T03:40:00Z"],
    ),
    (
        "*/30 23 * * *",
        "America/Santiago",
        "2026-04-05T00:00:00Z",
        [
            "2026-04-05T02:00:00Z",
            "2026-04-05T02:30:00Z",
            "2026-04-05T03:00:00Z",
            "2026-04-05T03:30:00Z",
            "2026-04-06T03:00:00Z",
        ],
    ),
]


@pytest.mark.parametrize("case", WILDCARD_ACROSS_TRANSITIONS, ids=lambda c: f"{c[0]} {c[1]} {c[2]}")
def test_a_job_with_a_wildcard_minute_or_hour_fires_at_every_real_instant_whose_wall_time_matches(
    case: Case,
) -> None:
    _check(case)


DAY_FIELDS: list[Case] = [
    (
        # both restricted: the 1st of the month OR a Monday
        "0 0 1 * 1",
        "UTC",
        "2026-01-31T00:00:00Z",
        [
            "2026-02-01T00:00:00Z",
            "2026-02-02T00:00:00Z",
            "2026-02-09T00:00:00Z",
            "2026-02-16T00:00:00Z",
            "2026-02-23T00:00:00Z",
            "2026-03-01T00:00:00Z",
            "2026-03-02T00:00:00Z",
        ],
    ),
    (
        # day-of-month begins with '*': an odd day AND a Monday
        "0 0 */2 * 1",
        "UTC",
        "2026-02-01T00:00:00Z",
        [
            "2026-02-09T00:00:00Z",
            "2026-02-23T00:00:00Z",
            "2026-03-09T00:00:00Z",
            "2026-03-23T00:00:00Z",
            "2026-04-13T00:00:00Z",
            "2026-04-27T00:00:00Z",
        ],
    ),
    (
        # day-of-week begins with '*' (*/7 is 0 and 7, Sunday): the first Sunday of a month
        "0 0 1-7 * */7",
        "UTC",
        "2026-01-01T00:00:00Z",
        [
            "2026-01-04T00:00:00Z",
            "2026-02-01T00:00:00Z",
            "2026-03-01T00:00:00Z",
            "2026-04-05T00:00:00Z",
            "2026-05-03T00:00:00Z",
        ],
    ),
    (
        # the same days with a plain 0: days 1-7 OR any Sunday
        "0 0 1-7 * 0",
        "UTC",
        "2025-12-31T12:00:00Z",
        [
            "2026-01-01T00:00:00Z",
            "2026-01-02T00:00:00Z",
            "2026-01-03T00:00:00Z",
            "2026-01-04T00:00:00Z",
            "2026-01-05T00:00:00Z",
            "2026-01-06T00:00:00Z",
            "2026-01-07T00:00:00Z",
            "2026-01-11T00:00:00Z",
            "2026-01-18T00:00:00Z",
        ],
    ),
    (
        "0 0 13 * *",
        "UTC",
        "2026-01-01T00:00:00Z",
        ["2026-01-13T00:00:00Z", "2026-02-13T00:00:00Z"],
    ),
    (
        "0 0 * * 5",
        "UTC",
        "2026-01-01T00:00:00Z",
        ["2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z"],
    ),
]


@pytest.mark.parametrize("case", DAY_FIELDS, ids=lambda c: c[0])
def test_day_of_month_and_day_of_week_match_either_unless_one_begins_with_a_star(
    case: Case,
) -> None:
    _check(case)


SUNDAYS_AT_NOON = ["2026-01-04T12:00:00Z", "2026-01-11T12:00:00Z", "2026-01-18T12:00:00Z"]


@pytest.mark.parametrize("expression", ["0 12 * * 7", "0 12 * * 0", "0 12 * * sun", "0 12 * * SUN"])
def test_seven_zero_and_sun_all_mean_sunday(expression: str) -> None:
    assert _occurrences(expression, "UTC", "2026-01-01T00:00:00Z", 3) == SUNDAYS_AT_NOON


NAMES_RANGES_STEPS: list[Case] = [
    (
        "0 9 * jan,jul mon-fri",
        "UTC",
        "2026-01-01T00:00:00Z",
        [
            "2026-01-01T09:00:00Z",
            "2026-01-02T09:00:00Z",
            "2026-01-05T09:00:00Z",
            "2026-01-06T09:00:00Z",
        ],
    ),
    (
        "0 9 * JAN,Jul MON-fri",
        "UTC",
        "2026-01-31T00:00:00Z",
        [
            "2026-07-01T09:00:00Z",
            "2026-07-02T09:00:00Z",
            "2026-07-03T09:00:00Z",
            "2026-07-06T09:00:00Z",
        ],
    ),
    (
        "0 0 * * 5-7",
        "UTC",
        "2026-01-01T00:00:00Z",
        [
            "2026-01-02T00:00:00Z",
            "2026-01-03T00:00:00Z",
            "2026-01-04T00:00:00Z",
            "2026-01-09T00:00:00Z",
        ],
    ),
    (
        "10-40/15 8-10/2 * * *",
        "UTC",
        "2026-01-01T00:00:00Z",
        [
            "2026-01-01T08:10:00Z",
            "2026-01-01T08:25:00Z",
            "2026-01-01T08:40:00Z",
            "2026-01-01T10:10:00Z",
            "2026-01-01T10:25:00Z",
            "2026-01-01T10:40:00Z",
            "2026-01-02T08:10:00Z",
        ],
    ),
    (
        "0 0 1 */3 *",
        "UTC",
        "2026-02-01T00:00:00Z",
        [
            "2026-04-01T00:00:00Z",
            "2026-07-01T00:00:00Z",
            "2026-10-01T00:00:00Z",
            "2027-01-01T00:00:00Z",
        ],
    ),
    (
        "0 0 1 feb-apr/2,dec *",
        "UTC",
        "2026-01-01T00:00:00Z",
        ["2026-02-01T00:00:00Z", "2026-04-01T00:00:00Z", "2026-12-01T00:00:00Z"],
    ),
    (
        "5,55 23 * * sat",
        "UTC",
        "2026-01-01T00:00:00Z",
        ["2026-01-03T23:05:00Z", "2026-01-03T23:55:00Z", "2026-01-10T23:05:00Z"],
    ),
    (
        "0 */8 * * *",
        "UTC",
        "2026-01-01T01:00:00Z",
        ["2026-01-01T08:00:00Z", "2026-01-01T16:00:00Z", "2026-01-02T00:00:00Z"],
    ),
]


@pytest.mark.parametrize("case", NAMES_RANGES_STEPS, ids=lambda c: c[0])
def test_names_ranges_steps_and_lists_have_their_cron_meaning(case: Case) -> None:
    _check(case)


def test_the_thirty_first_skips_months_without_one() -> None:
    assert _occurrences("0 0 31 * *", "UTC", "2026-01-01T00:00:00Z", 8) == [
        "2026-01-31T00:00:00Z",
        "2026-03-31T00:00:00Z",
        "2026-05-31T00:00:00Z",
        "2026-07-31T00:00:00Z",
        "2026-08-31T00:00:00Z",
        "2026-10-31T00:00:00Z",
        "2026-12-31T00:00:00Z",
        "2027-01-31T00:00:00Z",
    ]


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        ("2026-01-01T00:00:00Z", ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]),
        # 2100 is not a leap year
        ("2096-03-01T00:00:00Z", ["2104-02-29T00:00:00Z"]),
    ],
)
def test_february_the_twenty_ninth_runs_only_in_leap_years(after: str, expected: list[str]) -> None:
    assert _occurrences("0 0 29 2 *", "UTC", after, len(expected)) == expected


ALIASES: list[Case] = [
    ("@yearly", "UTC", "2026-03-01T00:00:00Z", ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]),
    ("@annually", "UTC", "2026-03-01T00:00:00Z", ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]),
    ("@monthly", "UTC", "2026-03-01T00:00:00Z", ["2026-04-01T00:00:00Z", "2026-05-01T00:00:00Z"]),
    ("@weekly", "UTC", "2026-03-01T00:00:00Z", ["2026-03-08T00:00:00Z", "2026-03-15T00:00:00Z"]),
    ("@daily", "UTC", "2026-03-01T00:00:00Z", ["2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z"]),
    ("@hourly", "UTC", "2026-03-01T00:00:00Z", ["2026-03-01T01:00:00Z", "2026-03-01T02:00:00Z"]),
    (
        "@daily",
        "America/New_York",
        "2026-03-06T12:00:00Z",
        ["2026-03-07T05:00:00Z", "2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"],
    ),
    (
        "@daily",
        "America/Havana",
        "2026-03-06T12:00:00Z",
        ["2026-03-07T05:00:00Z", "2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"],
    ),
    (
        "@hourly",
        "Australia/Lord_Howe",
        "2026-10-03T14:00:00Z",
        # 01:00 +10:30, 02:00 does not exist, 03:00 +11
        ["2026-10-03T14:30:00Z", "2026-10-03T16:00:00Z"],
    ),
]


@pytest.mark.parametrize("case", ALIASES, ids=lambda c: f"{c[0]} {c[1]}")
def test_the_six_aliases_mean_their_five_field_expressions(case: Case) -> None:
    _check(case)


@pytest.mark.parametrize(
    ("starts", "expected"),
    [
        (
            "2026-05-05T12:34:56Z",
            ["2026-05-05T17:00:00Z", "2026-05-06T09:00:00Z", "2026-05-06T17:00:00Z"],
        ),
        (
            "2026-05-05T09:00:00Z",
            ["2026-05-05T09:00:00Z", "2026-05-05T17:00:00Z", "2026-05-06T09:00:00Z"],
        ),
        (
            "2026-05-05T09:00:00.001Z",
            ["2026-05-05T17:00:00Z", "2026-05-06T09:00:00Z", "2026-05-06T17:00:00Z"],
        ),
        (
            "2026-05-05T14:00:00+04:00",
            ["2026-05-05T17:00:00Z", "2026-05-06T09:00:00Z", "2026-05-06T17:00:00Z"],
        ),
    ],
)
def test_a_cron_schedule_runs_at_or_after_starts_and_never_before(
    starts: str, expected: list[str]
) -> None:
    got = _occurrences("0 9,17 * * *", "UTC", "2000-01-01T00:00:00Z", 3, starts=starts)
    assert got == expected


def test_a_cron_schedule_is_evaluated_in_its_time_zone_not_in_the_offset_of_starts() -> None:
    # starts at 10:30 CEST; 09:00 and 17:00 are Berlin wall times
    got = _occurrences(
        "0 9,17 * * *",
        "Europe/Berlin",
        "2000-01-01T00:00:00Z",
        3,
        starts="2026-05-05T10:30:00+02:00",
    )
    assert got == ["2026-05-05T15:00:00Z", "2026-05-06T07:00:00Z", "2026-05-06T15:00:00Z"]


def test_next_run_of_a_cron_schedule_is_the_first_occurrence_at_or_after_now() -> None:
    schedule = build_schedule(
        starts="2026-01-01T00:00:00Z", cron=CronSpec("30 1 * * *", "America/New_York")
    )
    on_the_dot = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert next_run(schedule, now=on_the_dot) == on_the_dot
    assert next_run(schedule, now=datetime(2026, 11, 1, 5, 30, 0, 1, tzinfo=UTC)) == datetime(
        2026, 11, 2, 6, 30, tzinfo=UTC
    )
    assert next_run(schedule, now=datetime(2020, 1, 1, tzinfo=UTC)) == datetime(
        2026, 1, 1, 6, 30, tzinfo=UTC
    )
    assert not is_expired(schedule, now=datetime(2030, 1, 1, tzinfo=UTC))
