"""Report periods: when a report schedule fires and which window of runs it covers. Pure.

A report covers the last whole period in its time zone. A daily report fires at each local
midnight and covers the day that has just ended; a weekly one fires on Monday at 00:00 and
covers the week (Monday to Sunday) before; a monthly one fires on the 1st at 00:00 and covers
the month before. Its trigger is an ordinary cron trigger: the same engine computes it and the
same scheduler fires it, with the same DST rules (a midnight skipped by a spring-forward fires
once, right after the gap).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from tickwork.core.instants import format_instant
from tickwork.core.model import Cron, Schedule
from tickwork.core.occurrences import next_after
from tickwork.core.validation import CronSpec, build_schedule

PERIOD_CRON: Final = {"daily": "0 0 * * *", "weekly": "0 0 * * 1", "monthly": "0 0 1 * *"}
PERIODS: Final = tuple(PERIOD_CRON)

# Longer than one period in any zone (a local day lasts 23 to 25 hours, a month 28 to 31
# days) and shorter than two: exactly one period boundary lies in (end - reach, end).
_REACH: Final = {
    "daily": timedelta(hours=26),
    "weekly": timedelta(days=7, hours=2),
    "monthly": timedelta(days=31, hours=2),
}


def report_schedule(period: str, time_zone: str, *, now: datetime) -> Schedule:
    """The trigger of a ``period`` report in ``time_zone``; its first occurrence is the first
    period boundary after ``now``. ValidationError for an unknown zone; KeyError for an
    unknown period (the dialect checks both first)."""
    return build_schedule(starts=format_instant(now), cron=CronSpec(PERIOD_CRON[period], time_zone))


def report_window(period: str, time_zone: str, *, at: datetime) -> tuple[datetime, datetime]:
    """The last whole period that ended at or before ``at``, as [start, end) in UTC.

    For a fired report ``at`` is the occurrence itself, so the window ends exactly there; a
    report run at any other instant covers the last period that has ended by then."""
    reach = _REACH[period]
    series = Schedule(at - 3 * reach, Cron(PERIOD_CRON[period], time_zone))
    end = next_after(series, at - reach)
    assert end is not None  # a cron series of period boundaries never ends
    while (later := next_after(series, end)) is not None and later <= at:
        end = later
    start = next_after(series, end - reach)
    assert start is not None
    return start, end
