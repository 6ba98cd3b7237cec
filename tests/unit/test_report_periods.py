"""When report schedules fire and which window each report covers: the pure core, and the
report dialect's update of a schedule's timing."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

import pytest

from tickwork.core import occurrences_after
from tickwork.core.reports import report_schedule, report_window
from tickwork.dialects.reports import apply_update
from tickwork.errors import ValidationError


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("period", "zone", "now", "expected"),
    [
        ("daily", "UTC", _utc(2026, 3, 1, 0, 30), [_utc(2026, 3, 2), _utc(2026, 3, 3)]),
        # Rome: CET (+1) until 2026-03-29 02:00, then CEST (+2)
        (
            "daily",
            "Europe/Rome",
            _utc(2026, 3, 27, 12),
            [_utc(2026, 3, 27, 23), _utc(2026, 3, 28, 23), _utc(2026, 3, 29, 22)],
        ),
        ("weekly", "UTC", _utc(2026, 11, 23, 12), [_utc(2026, 11, 30), _utc(2026, 12, 7)]),
        (
            "monthly",
            "America/New_York",
            _utc(2026, 10, 15),
            [_utc(2026, 11, 1, 4), _utc(2026, 12, 1, 5)],  # EDT, then EST
        ),
        # Santiago springs forward at 24:00: the first Sunday of September 2026 has no
        # midnight, and its report fires right after the gap (01:00 local, 04:00Z).
        (
            "daily",
            "America/Santiago",
            _utc(2026, 9, 5, 12),
            [_utc(2026, 9, 6, 4), _utc(2026, 9, 7, 3)],
        ),
    ],
)
def test_a_report_fires_at_each_local_period_boundary(
    period: str, zone: str, now: datetime, expected: list[datetime]
) -> None:
    schedule = report_schedule(period, zone, now=now)

    assert occurrences_after(schedule, now, len(expected)) == expected


def test_an_unknown_zone_is_a_validation_error() -> None:
    with pytest.raises(ValidationError):
        report_schedule("daily", "Mars/Olympus", now=_utc(2026, 1, 1))


@pytest.mark.parametrize(
    ("period", "zone", "at", "window"),
    [
        ("daily", "UTC", _utc(2026, 3, 1), (_utc(2026, 2, 28), _utc(2026, 3, 1))),
        ("daily", "UTC", _utc(2026, 3, 1, 17), (_utc(2026, 2, 28), _utc(2026, 3, 1))),
        # the day of the spring-forward lasts 23 hours, the day of the fall-back 25
        (
            "daily",
            "Europe/Rome",
            _utc(2026, 3, 29, 22),
            (_utc(2026, 3, 28, 23), _utc(2026, 3, 29, 22)),
        ),
        (
            "daily",
            "Europe/Rome",
            _utc(2026, 10, 25, 23),
            (_utc(2026, 10, 24, 22), _utc(2026, 10, 25, 23)),
        ),
        ("weekly", "UTC", _utc(2026, 11, 30), (_utc(2026, 11, 23), _utc(2026, 11, 30))),
        ("monthly", "UTC", _utc(2026, 3, 1), (_utc(2026, 2, 1), _utc(2026, 3, 1))),
        ("monthly", "UTC", _utc(2024, 3, 1), (_utc(2024, 2, 1), _utc(2024, 3, 1))),
        ("monthly", "UTC", _utc(2026, 1, 1), (_utc(2025, 12, 1), _utc(2026, 1, 1))),
        (
            "monthly",
            "Australia/Sydney",
            _utc(2026, 4, 30, 14),
            (_utc(2026, 3, 31, 13), _utc(2026, 4, 30, 14)),
        ),
        (
            "daily",
            "America/Santiago",
            _utc(2026, 9, 7, 3),
            (_utc(2026, 9, 6, 4), _utc(2026, 9, 7, 3)),
        ),
    ],
)
def test_the_window_is_the_last_whole_period_ended_by_then(
    period: str, zone: str, at: datetime, window: tuple[datetime, datetime]
) -> None:
    assert report_window(period, zone, at=at) == window


@pytest.mark.parametrize("period", ["daily", "weekly", "monthly"])
@pytest.mark.parametrize("zone", ["UTC", "Europe/Rome", "America/Santiago", "Asia/Kolkata"])
def test_each_occurrence_closes_the_window_that_the_next_one_opens(period: str, zone: str) -> None:
    schedule = report_schedule(period, zone, now=_utc(2026, 1, 1))
    boundaries = occurrences_after(schedule, _utc(2026, 1, 1), 14)

    for start, end in pairwise(boundaries):
        assert report_window(period, zone, at=end) == (start, end)


ATTRS = {
    "name": "Nightly",
    "schedule": "daily",
    "send_via": "email",
    "send_to": ["ops@example.com"],
    "timezone": "UTC",
    "type": "generic",
    "hosts": ["shop.example.com"],
    "services": None,
}
UPDATED_AT = _utc(2026, 11, 23, 12)


def test_a_new_zone_gives_the_report_the_new_zones_boundaries() -> None:
    attrs, trigger = apply_update(ATTRS, {"timezone": "Asia/Tokyo"}, now=UPDATED_AT)

    assert attrs == ATTRS | {"timezone": "Asia/Tokyo"}
    assert trigger is not None
    assert occurrences_after(trigger, UPDATED_AT, 1) == [_utc(2026, 11, 23, 15)]  # Tokyo 00:00


def test_a_change_outside_the_timing_keeps_the_trigger() -> None:
    attrs, trigger = apply_update(ATTRS, {"name": "Renamed", "schedule": "daily"}, now=UPDATED_AT)

    assert (attrs["name"], trigger) == ("Renamed", None)


def test_an_update_is_checked_as_merged() -> None:
    with pytest.raises(ValidationError) as refused:
        apply_update(ATTRS, {"send_via": "webhook"}, now=UPDATED_AT)

    assert [problem.target for problem in refused.value.problems] == ["attrs.send_to.0"]
