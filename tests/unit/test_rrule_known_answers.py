"""Known answers for recurrence rules, each worked out by hand from the rules of the contract.

``starts`` is the first instant; the time of day (to the millisecond) and the UTC offset are
those of ``starts`` and never follow a zone's DST. WEEKLY weeks begin on Monday. MONTHLY and
YEARLY clamp a missing day to the month's last day.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tickwork.core import (
    Frequency,
    Rule,
    RuleSpec,
    Schedule,
    Weekday,
    build_schedule,
    format_instant,
    is_expired,
    next_after,
    next_run,
    occurrences_after,
    parse_instant,
)

MO, TU, WE, TH, FR, SA, SU = (
    Weekday.MO,
    Weekday.TU,
    Weekday.WE,
    Weekday.TH,
    Weekday.FR,
    Weekday.SA,
    Weekday.SU,
)
HOURLY, DAILY, WEEKLY, MONTHLY, YEARLY = (
    Frequency.HOURLY,
    Frequency.DAILY,
    Frequency.WEEKLY,
    Frequency.MONTHLY,
    Frequency.YEARLY,
)


def _schedule(starts: str, rule: RuleSpec) -> Schedule:
    return build_schedule(starts=starts, rule=rule)


def _listed(schedule: Schedule, limit: int, *, after: str | None = None) -> list[str]:
    since = parse_instant(after) if after else schedule.starts - timedelta(microseconds=1)
    return [format_instant(value) for value in occurrences_after(schedule, since, limit)]


Case = tuple[str, RuleSpec, list[str]]  # starts, rule, the first occurrences


def _check(case: Case) -> None:
    starts, rule, expected = case
    assert _listed(_schedule(starts, rule), len(expected)) == expected


def _ids(case: Case) -> str:
    starts, rule, _ = case
    byday = ",".join(rule.byday) if rule.byday else "-"
    return f"{rule.frequency}/{rule.interval} {byday} from {starts}"


FIXED_PERIODS: list[Case] = [
    (
        "2024-07-16T08:46:04.021Z",
        RuleSpec(HOURLY, interval=2),
        [
            "2024-07-16T08:46:04.021Z",
            "2024-07-16T10:46:04.021Z",
            "2024-07-16T12:46:04.021Z",
            "2024-07-16T14:46:04.021Z",
        ],
    ),
    (
        "2026-12-31T22:15:00Z",
        RuleSpec(HOURLY),
        ["2026-12-31T22:15:00Z", "2026-12-31T23:15:00Z", "2027-01-01T00:15:00Z"],
    ),
    (
        # -05:00 is New York's winter offset; the rule keeps it across Mar 8
        "2026-03-06T09:15:00-05:00",
        RuleSpec(DAILY, interval=3),
        [
            "2026-03-06T14:15:00Z",
            "2026-03-09T14:15:00Z",
            "2026-03-12T14:15:00Z",
            "2026-03-15T14:15:00Z",
        ],
    ),
    (
        # -04:00 is New York's summer offset; the rule keeps it across Nov 1
        "2026-10-30T09:00:00-04:00",
        RuleSpec(DAILY),
        [
            "2026-10-30T13:00:00Z",
            "2026-10-31T13:00:00Z",
            "2026-11-01T13:00:00Z",
            "2026-11-02T13:00:00Z",
        ],
    ),
    (
        # +01:00 is Berlin's winter offset; the rule keeps it across Mar 29
        "2026-03-28T02:30:00+01:00",
        RuleSpec(DAILY),
        ["2026-03-28T01:30:00Z", "2026-03-29T01:30:00Z", "2026-03-30T01:30:00Z"],
    ),
    (
        "2026-03-27T23:45:00.250+05:30",
        RuleSpec(DAILY),
        [
            "2026-03-27T18:15:00.250Z",
            "2026-03-28T18:15:00.250Z",
            "2026-03-29T18:15:00.250Z",
            "2026-03-30T18:15:00.250Z",
        ],
    ),
    (
        "2028-02-27T12:00:00Z",
        RuleSpec(DAILY, interval=2),
        ["2028-02-27T12:00:00Z", "2028-02-29T12:00:00Z", "2028-03-02T12:00:00Z"],
    ),
    (
        "2026-01-07T10:00:00Z",
        RuleSpec(WEEKLY, interval=2),
        ["2026-01-07T10:00:00Z", "2026-01-21T10:00:00Z", "2026-02-04T10:00:00Z"],
    ),
]


@pytest.mark.parametrize("case", FIXED_PERIODS, ids=_ids)
def test_hourly_daily_and_plain_weekly_rules_add_a_fixed_period_in_the_offset_of_starts(
    case: Case,
) -> None:
    _check(case)


WEEKLY_BY_DAY: list[Case] = [
    (
        # starts on a Wednesday, which is listed
        "2026-01-07T10:00:00Z",
        RuleSpec(WEEKLY, byday=[MO, WE, FR]),
        [
            "2026-01-07T10:00:00Z",
            "2026-01-09T10:00:00Z",
            "2026-01-12T10:00:00Z",
            "2026-01-14T10:00:00Z",
            "2026-01-16T10:00:00Z",
        ],
    ),
    (
        # the Tuesday of the first week is before starts; then every other week
        "2026-01-07T10:00:00Z",
        RuleSpec(WEEKLY, interval=2, byday=[TU, TH]),
        [
            "2026-01-08T10:00:00Z",
            "2026-01-20T10:00:00Z",
            "2026-01-22T10:00:00Z",
            "2026-02-03T10:00:00Z",
            "2026-02-05T10:00:00Z",
        ],
    ),
    (
        # weeks begin on Monday: the Sunday after a Monday start is in the first week
        "2026-01-05T10:00:00Z",
        RuleSpec(WEEKLY, interval=2, byday=[SU]),
        ["2026-01-11T10:00:00Z", "2026-01-25T10:00:00Z", "2026-02-08T10:00:00Z"],
    ),
    (
        # a Sunday start ends its week; the next Monday is in the week that is skipped
        "2026-01-04T10:00:00Z",
        RuleSpec(WEEKLY, interval=2, byday=[SU, MO]),
        [
            "2026-01-04T10:00:00Z",
            "2026-01-12T10:00:00Z",
            "2026-01-18T10:00:00Z",
            "2026-01-26T10:00:00Z",
            "2026-02-01T10:00:00Z",
        ],
    ),
    (
        "2026-01-07T10:00:00Z",
        RuleSpec(WEEKLY, byday=[FR, MO]),
        [
            "2026-01-09T10:00:00Z",
            "2026-01-12T10:00:00Z",
            "2026-01-16T10:00:00Z",
            "2026-01-19T10:00:00Z",
        ],
    ),
    (
        "2026-01-09T18:00:00Z",
        RuleSpec(WEEKLY, interval=3, byday=[FR]),
        ["2026-01-09T18:00:00Z", "2026-01-30T18:00:00Z", "2026-02-20T18:00:00Z"],
    ),
    (
        "2024-07-16T08:46:04.021Z",
        RuleSpec(WEEKLY, byday=[SA, SU], count=10),
        [
            "2024-07-20T08:46:04.021Z",
            "2024-07-21T08:46:04.021Z",
            "2024-07-27T08:46:04.021Z",
            "2024-07-28T08:46:04.021Z",
            "2024-08-03T08:46:04.021Z",
            "2024-08-04T08:46:04.021Z",
            "2024-08-10T08:46:04.021Z",
            "2024-08-11T08:46:04.021Z",
            "2024-08-17T08:46:04.021Z",
            "2024-08-18T08:46:04.021Z",
        ],
    ),
    (
        # Monday 01:00 at +05:30 is Sunday 19:30Z: weekdays are those of the offset of starts
        "2026-01-05T01:00:00+05:30",
        RuleSpec(WEEKLY, byday=[MO]),
        ["2026-01-04T19:30:00Z", "2026-01-11T19:30:00Z", "2026-01-18T19:30:00Z"],
    ),
    (
        "2026-01-05T01:00:00+05:30",
        RuleSpec(WEEKLY, byday=[SU]),
        ["2026-01-10T19:30:00Z", "2026-01-17T19:30:00Z"],
    ),
]


@pytest.mark.parametrize("case", WEEKLY_BY_DAY, ids=_ids)
def test_weekly_by_day_runs_on_the_listed_days_of_every_interval_th_week_from_monday(
    case: Case,
) -> None:
    _check(case)


MONTHS_AND_YEARS: list[Case] = [
    (
        "2026-01-31T10:00:00Z",
        RuleSpec(MONTHLY),
        [
            "2026-01-31T10:00:00Z",
            "2026-02-28T10:00:00Z",
            "2026-03-31T10:00:00Z",
            "2026-04-30T10:00:00Z",
            "2026-05-31T10:00:00Z",
            "2026-06-30T10:00:00Z",
        ],
    ),
    (
        "2028-01-31T10:00:00Z",
        RuleSpec(MONTHLY),
        ["2028-01-31T10:00:00Z", "2028-02-29T10:00:00Z", "2028-03-31T10:00:00Z"],
    ),
    (
        "2026-01-30T10:00:00Z",
        RuleSpec(MONTHLY),
        ["2026-01-30T10:00:00Z", "2026-02-28T10:00:00Z", "2026-03-30T10:00:00Z"],
    ),
    (
        "2026-08-31T10:00:00Z",
        RuleSpec(MONTHLY, interval=2),
        [
            "2026-08-31T10:00:00Z",
            "2026-10-31T10:00:00Z",
            "2026-12-31T10:00:00Z",
            "2027-02-28T10:00:00Z",
            "2027-04-30T10:00:00Z",
        ],
    ),
    (
        "2026-01-15T10:00:00Z",
        RuleSpec(MONTHLY, interval=5),
        [
            "2026-01-15T10:00:00Z",
            "2026-06-15T10:00:00Z",
            "2026-11-15T10:00:00Z",
            "2027-04-15T10:00:00Z",
        ],
    ),
    (
        # the 31st at +05:30 is the 30th in UTC; the clamp is to the month of the offset
        "2026-01-31T02:00:00+05:30",
        RuleSpec(MONTHLY),
        [
            "2026-01-30T20:30:00Z",
            "2026-02-27T20:30:00Z",
            "2026-03-30T20:30:00Z",
            "2026-04-29T20:30:00Z",
        ],
    ),
    (
        "2026-01-31T22:00:00-05:00",
        RuleSpec(MONTHLY),
        [
            "2026-02-01T03:00:00Z",
            "2026-03-01T03:00:00Z",
            "2026-04-01T03:00:00Z",
            "2026-05-01T03:00:00Z",
        ],
    ),
    (
        "2024-02-29T12:00:00Z",
        RuleSpec(YEARLY),
        [
            "2024-02-29T12:00:00Z",
            "2025-02-28T12:00:00Z",
            "2026-02-28T12:00:00Z",
            "2027-02-28T12:00:00Z",
            "2028-02-29T12:00:00Z",
        ],
    ),
    (
        "2024-02-29T12:00:00Z",
        RuleSpec(YEARLY, interval=2),
        [
            "2024-02-29T12:00:00Z",
            "2026-02-28T12:00:00Z",
            "2028-02-29T12:00:00Z",
            "2030-02-28T12:00:00Z",
        ],
    ),
    (
        # 2100 is not a leap year
        "2096-02-29T00:00:00Z",
        RuleSpec(YEARLY, interval=4),
        ["2096-02-29T00:00:00Z", "2100-02-28T00:00:00Z", "2104-02-29T00:00:00Z"],
    ),
]


@pytest.mark.parametrize("case", MONTHS_AND_YEARS, ids=_ids)
def test_monthly_and_yearly_keep_the_day_of_starts_and_clamp_it_to_the_last_day_of_short_months(
    case: Case,
) -> None:
    _check(case)


def test_count_counts_every_occurrence_from_starts_including_those_already_past() -> None:
    schedule = _schedule("2026-01-01T09:00:00Z", RuleSpec(DAILY, count=5))
    assert _listed(schedule, 10, after="2026-01-03T12:00:00Z") == [
        "2026-01-04T09:00:00Z",
        "2026-01-05T09:00:00Z",
    ]
    last = datetime(2026, 1, 5, 9, tzinfo=UTC)
    assert next_after(schedule, last) is None
    assert not is_expired(schedule, now=last)
    assert is_expired(schedule, now=last + timedelta(microseconds=1))


def test_count_counts_only_occurrences_that_fit_the_rule_not_starts_itself() -> None:
    # starts on a Tuesday with SA,SU: starts is not an occurrence and is not counted
    schedule = _schedule("2024-07-16T08:46:04.021Z", RuleSpec(WEEKLY, byday=[SA, SU], count=3))
    assert _listed(schedule, 10) == [
        "2024-07-20T08:46:04.021Z",
        "2024-07-21T08:46:04.021Z",
        "2024-07-27T08:46:04.021Z",
    ]


@pytest.mark.parametrize(
    ("until", "expected"),
    [
        ("2026-01-03T09:00:00Z", 3),
        ("2026-01-03T10:00:00+01:00", 3),  # the same instant in another offset
        ("2026-01-03T08:59:59.999Z", 2),
        ("2026-01-01T09:00:00Z", 1),  # until equal to starts
    ],
)
def test_until_is_inclusive(until: str, expected: int) -> None:
    schedule = _schedule("2026-01-01T09:00:00Z", RuleSpec(DAILY, until=until))
    got = _listed(schedule, 10)
    assert got == [f"2026-01-0{day}T09:00:00Z" for day in range(1, expected + 1)]


@pytest.mark.parametrize(
    ("count", "until", "expected"),
    [
        (5, "2026-01-03T09:00:00Z", 3),  # until ends it first
        (2, "2026-01-10T09:00:00Z", 2),  # count ends it first
        (3, "2026-01-03T09:00:00Z", 3),  # both at once
    ],
)
def test_with_count_and_until_whichever_ends_first_wins(
    count: int, until: str, expected: int
) -> None:
    schedule = _schedule("2026-01-01T09:00:00Z", RuleSpec(DAILY, count=count, until=until))
    got = _listed(schedule, 10)
    assert got == [f"2026-01-0{day}T09:00:00Z" for day in range(1, expected + 1)]


def test_a_rule_whose_until_comes_before_its_first_fitting_day_never_occurs() -> None:
    # starts on a Tuesday, runs on Saturdays, ends on Thursday
    schedule = _schedule(
        "2026-01-06T10:00:00Z", RuleSpec(WEEKLY, byday=[SA], until="2026-01-08T10:00:00Z")
    )
    assert _listed(schedule, 5) == []
    assert next_run(schedule, now=datetime(2026, 1, 1, tzinfo=UTC)) is None
    assert is_expired(schedule, now=datetime(2026, 1, 1, tzinfo=UTC))


def test_a_yearly_rule_with_a_count_ends_after_that_many_years() -> None:
    schedule = _schedule("2026-07-04T16:00:00.500Z", RuleSpec(YEARLY, count=3))
    assert _listed(schedule, 10) == [
        "2026-07-04T16:00:00.500Z",
        "2027-07-04T16:00:00.500Z",
        "2028-07-04T16:00:00.500Z",
    ]


def test_next_run_of_a_rule_is_starts_when_now_is_starts_and_the_next_fitting_one_after() -> None:
    schedule = _schedule("2024-07-16T08:46:04.021Z", RuleSpec(HOURLY, interval=2))
    starts = datetime(2024, 7, 16, 8, 46, 4, 21000, tzinfo=UTC)
    assert next_run(schedule, now=starts) == starts
    assert next_run(schedule, now=datetime(2020, 1, 1, tzinfo=UTC)) == starts
    assert next_run(schedule, now=starts + timedelta(microseconds=1)) == starts + timedelta(hours=2)
    # long after starts: the closed form, not a walk from starts
    assert (
        format_instant(next_run(schedule, now=datetime(2124, 7, 16, 9, tzinfo=UTC)) or starts)
        == "2124-07-16T10:46:04.021Z"
    )


def test_occurrences_are_returned_in_utc() -> None:
    schedule = _schedule("2026-03-27T23:45:00.250+05:30", RuleSpec(DAILY))
    first = next_run(schedule, now=datetime(2026, 1, 1, tzinfo=UTC))
    assert first == datetime(2026, 3, 27, 18, 15, 0, 250_000, tzinfo=UTC)
    assert first is not None
    assert first.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("frequency", "interval", "byday"),
    [
        (HOURLY, 10**12, None),
        (DAILY, 2 * 10**9, None),
        (WEEKLY, 10**12, None),
        (WEEKLY, 10**12, (MO, FR)),
        (MONTHLY, 10**12, None),
        (YEARLY, 10**12, None),
    ],
)
def test_a_rule_stored_before_intervals_were_bounded_ends_after_its_first_occurrence(
    frequency: Frequency, interval: int, byday: tuple[Weekday, ...] | None
) -> None:
    # Requests are refused past 10,000 (test_validation); a rule stored before still reads:
    # its second occurrence lies past the calendar, so none remains after the first.
    starts = datetime(2026, 1, 5, 9, tzinfo=UTC)  # a Monday
    schedule = Schedule(starts, Rule(frequency, interval=interval, byday=byday))
    assert next_after(schedule, starts - timedelta(microseconds=1)) == starts
    assert next_after(schedule, datetime(2026, 6, 1, tzinfo=UTC)) is None
    assert next_run(schedule, now=datetime(2027, 1, 1, tzinfo=UTC)) is None
