"""When a schedule fires: pure functions of the schedule and an instant.

Every function returns aware UTC instants. Occurrences count from ``starts`` whether or not
anything fired them (a deactivated schedule's occurrences still count toward ``count`` and
``until``); what fires is the scheduler's business.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from tickwork.core import cron, rrule
from tickwork.core.instants import ONE_MICROSECOND
from tickwork.core.model import Cron, Interval, Once, Rule, Schedule


def next_after(schedule: Schedule, after: datetime) -> datetime | None:
    """The first occurrence strictly after ``after``; None when the series has ended."""
    trigger, starts = schedule.trigger, schedule.starts
    if isinstance(trigger, Once):
        return starts.astimezone(UTC) if starts > after else None
    if isinstance(trigger, Cron):
        return cron.next_after(trigger, starts, after)
    if isinstance(trigger, Interval):
        if after < starts:
            return starts.astimezone(UTC)
        steps = (after - starts) // trigger.period + 1
        try:
            return (starts + trigger.period * steps).astimezone(UTC)
        except OverflowError:
            return None
    return _rule_next_after(trigger, starts, after)


def _rule_next_after(rule: Rule, starts: datetime, after: datetime) -> datetime | None:
    k = rrule.first_index_after(rule, starts, after)
    if rule.count is not None and k >= rule.count:
        return None
    value = rrule.nth(rule, starts, k)
    if value is None or (rule.until is not None and value > rule.until):
        return None
    return value.astimezone(UTC)


def occurrences_after(schedule: Schedule, after: datetime, limit: int) -> list[datetime]:
    """Up to ``limit`` occurrences strictly after ``after``, in increasing order."""
    found: list[datetime] = []
    for value in iter_after(schedule, after):
        if len(found) >= limit:
            break
        found.append(value)
    return found


def iter_after(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    current: datetime | None = next_after(schedule, after)
    while current is not None:
        yield current
        current = next_after(schedule, current)


def next_run(schedule: Schedule, *, now: datetime) -> datetime | None:
    """The next occurrence at or after ``now``: the k6 API's ``next_run``."""
    return next_after(schedule, now - ONE_MICROSECOND)


def is_expired(schedule: Schedule, *, now: datetime) -> bool:
    """True when no occurrence remains at or after ``now``."""
    return next_run(schedule, now=now) is None
