"""The worked examples of the issue and the k6 documentation, as known answers."""

from __future__ import annotations

from datetime import UTC, datetime

from tickwork.core import (
    CronSpec,
    Frequency,
    RuleSpec,
    Weekday,
    build_schedule,
    format_instant,
    next_run,
    occurrences_after,
)


def _iso(values: list[datetime]) -> list[str]:
    return [format_instant(v) for v in values]


def test_fixed_time_job_on_fall_back_day_fires_once_at_first_pass() -> None:
    schedule = build_schedule(
        starts="2026-10-01T00:00:00Z", cron=CronSpec("30 1 * * *", "America/New_York")
    )
    after = datetime(2026, 10, 31, 12, tzinfo=UTC)
    assert _iso(occurrences_after(schedule, after, 2)) == [
        "2026-11-01T05:30:00Z",
        "2026-11-02T06:30:00Z",
    ]


def test_fixed_time_job_in_spring_gap_fires_once_after_gap() -> None:
    schedule = build_schedule(
        starts="2026-01-01T00:00:00Z", cron=CronSpec("30 2 * * *", "America/New_York")
    )
    after = datetime(2026, 3, 7, 12, tzinfo=UTC)
    assert _iso(occurrences_after(schedule, after, 2)) == [
        "2026-03-08T07:00:00Z",
        "2026-03-09T06:30:00Z",
    ]


def test_rule_keeps_the_milliseconds_of_starts() -> None:
    schedule = build_schedule(
        starts="2024-07-16T08:46:04.021Z", rule=RuleSpec(Frequency.HOURLY, interval=2)
    )
    now = datetime(2024, 7, 20, 1, tzinfo=UTC)
    assert format_instant(next_run(schedule, now=now) or now) == "2024-07-20T02:46:04.021Z"


def test_weekly_on_weekends_with_starts_on_a_tuesday_begins_that_saturday() -> None:
    schedule = build_schedule(
        starts="2024-07-16T08:46:04.021Z",
        rule=RuleSpec(Frequency.WEEKLY, byday=[Weekday.SA, Weekday.SU], count=10),
    )
    got = occurrences_after(schedule, datetime(2024, 1, 1, tzinfo=UTC), 20)
    assert len(got) == 10
    assert format_instant(got[0]) == "2024-07-20T08:46:04.021Z"
    assert format_instant(got[-1]) == "2024-08-18T08:46:04.021Z"


def test_one_shot_in_the_past_has_no_next_run() -> None:
    schedule = build_schedule(starts="2023-08-01T12:00:00.000Z")
    assert next_run(schedule, now=datetime(2024, 7, 16, tzinfo=UTC)) is None
