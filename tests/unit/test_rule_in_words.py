"""A schedule's timing in words (core.wording): what the console shows beside each rule.
A table of known answers; anything the wording does not recognise is shown as the cron
expression itself, never paraphrased into a time the engine would not fire at."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tickwork.core import (
    CronSpec,
    Frequency,
    Interval,
    RuleSpec,
    Schedule,
    Weekday,
    build_schedule,
    parse_instant,
)
from tickwork.core.wording import describe, offset_label

STARTS = "2026-11-23T09:00:00Z"  # a Monday


def _cron(expression: str, zone: str = "Europe/Berlin") -> str:
    return describe(build_schedule(starts=STARTS, cron=CronSpec(expression, zone)))


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 9 * * 1-5", "every weekday at 09:00 Europe/Berlin"),
        ("0 9 * * MON-FRI", "every weekday at 09:00 Europe/Berlin"),
        ("30 1 * * *", "every day at 01:30 Europe/Berlin"),
        ("0 9,17 * * *", "every day at 09:00 and 17:00 Europe/Berlin"),
        ("0 0 * * 0", "every Sun at 00:00 Europe/Berlin"),
        ("0 0 * * 7", "every Sun at 00:00 Europe/Berlin"),
        ("@weekly", "every Sun at 00:00 Europe/Berlin"),
        ("0 0 * * 6,0", "every Sat and Sun at 00:00 Europe/Berlin"),
        ("15 8 * * 1,3", "every Mon, Wed at 08:15 Europe/Berlin"),
        ("@monthly", "on the 1st of every month at 00:00 Europe/Berlin"),
        ("0 0 1 1 *", "every year on Jan 1 at 00:00 Europe/Berlin"),
        ("0 0 29 2 *", "every year on Feb 29 at 00:00 Europe/Berlin"),
        ("0 9 * 1-3 *", "every day in Jan, Feb, Mar at 09:00 Europe/Berlin"),
        ("* * * * *", "every minute Europe/Berlin"),
        ("*/15 * * * *", "every 15 minutes Europe/Berlin"),
        ("0 * * * *", "every hour at minute 0 Europe/Berlin"),
        (
            "*/15 9-17 * * MON-FRI",
            "every 15 minutes, 09:00-17:59, every weekday Europe/Berlin",
        ),
    ],
)
def test_common_cron_shapes_read_as_words(expression: str, words: str) -> None:
    assert _cron(expression) == words


@pytest.mark.parametrize(
    "expression",
    [
        "5,35 1-4 * 2 *",  # several minutes in several hours
        "0 9 1,15 * 1",  # day-of-month OR day-of-week: too easy to say wrongly
        "0-30/7 */5 * * *",
    ],
)
def test_an_unusual_cron_is_shown_as_itself(expression: str) -> None:
    assert _cron(expression) == f"cron {expression} in Europe/Berlin"


def _rule(starts: str = STARTS, **fields: object) -> str:
    spec = RuleSpec(**fields)  # type: ignore[arg-type]
    return describe(build_schedule(starts=starts, rule=spec))


def test_weekly_rules_name_their_days_and_interval() -> None:
    days = [Weekday.MO, Weekday.WE]
    assert _rule(frequency=Frequency.WEEKLY, interval=2, byday=days) == (
        "every 2 weeks on Mon, Wed at 09:00 UTC"
    )
    # without byday: the weekday of starts
    assert _rule(frequency=Frequency.WEEKLY) == "every week on Mon at 09:00 UTC"


def test_rules_keep_the_offset_of_starts_and_say_how_they_end() -> None:
    assert _rule("2026-01-31T08:30:00+02:00", frequency=Frequency.MONTHLY, count=10) == (
        "every month on the 31st (the last day in shorter months) at 08:30 UTC+02:00, 10 times"
    )
    assert _rule(frequency=Frequency.DAILY, interval=3, until="2026-12-31T00:00:00Z") == (
        "every 3 days at 09:00 UTC, until 2026-12-31 00:00 UTC"
    )
    assert _rule(frequency=Frequency.DAILY, count=1) == "every day at 09:00 UTC, once"
    assert _rule("2028-02-29T06:00:00Z", frequency=Frequency.YEARLY) == (
        "every year on Feb 29 (Feb 28 in common years) at 06:00 UTC"
    )


def test_hourly_rules_say_the_minute_past_each_hour_in_utc() -> None:
    # +05:30: 08:30 local is 03:00 UTC; an hourly rule fires at minute 0 of each UTC hour
    assert _rule("2026-01-31T08:30:00+05:30", frequency=Frequency.HOURLY, interval=3) == (
        "every 3 hours at minute 0"
    )


def test_one_shots_and_intervals() -> None:
    assert describe(build_schedule(starts="2026-11-23T09:00:05-05:00")) == (
        "once at 2026-11-23 09:00:05 UTC-05:00"
    )
    starts = parse_instant(STARTS)
    assert describe(Schedule(starts, Interval(timedelta(seconds=90)))) == "every 90 seconds"
    assert describe(Schedule(starts, Interval(timedelta(minutes=5)))) == "every 5 minutes"
    assert describe(Schedule(starts, Interval(timedelta(days=1)))) == "every day"


def test_offset_labels() -> None:
    assert offset_label(parse_instant("2026-01-01T00:00:00Z")) == "UTC"
    assert offset_label(parse_instant("2026-01-01T00:00:00+05:30")) == "UTC+05:30"
    assert offset_label(parse_instant("2026-01-01T00:00:00-03:00")) == "UTC-03:00"
