"""The RFC 5545 subset of k6 recurrence rules, computed by occurrence index.

Occurrence ``k`` (``k = 0`` is the first) has a closed form for every frequency, so finding
the next occurrence after an instant is O(1) whatever the schedule's age, and ``count``
is a bound on ``k``. Times of day (to the microsecond) and the UTC offset are those of
``starts``: a rule never follows a zone's DST changes, as the k6 documentation's examples
show (starts ...08:46:04.021Z, next_run ...01:46:04.021Z).

* HOURLY, DAILY, and WEEKLY without ``byday`` add a fixed period.
* WEEKLY with ``byday``: weeks begin on Monday; runs on the given days of weeks that are a
  multiple of ``interval`` weeks from the week of ``starts``; ``starts`` itself is an
  occurrence only when its weekday is listed.
* MONTHLY and YEARLY keep the day of ``starts`` and clamp it to the month's last day where it
  is missing (Jan 31 -> Feb 28 -> Mar 31; Feb 29 -> Feb 28 in common years).
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

from tickwork.core.model import Frequency, Rule

_FIXED_PERIOD = {
    Frequency.HOURLY: timedelta(hours=1),
    Frequency.DAILY: timedelta(days=1),
    Frequency.WEEKLY: timedelta(weeks=1),
}
_MAX_YEAR = 9999


def weekdays(rule: Rule) -> tuple[int, ...]:
    """The sorted, distinct weekday indexes (Monday 0) a WEEKLY rule runs on; () if none."""
    if rule.frequency is not Frequency.WEEKLY or not rule.byday:
        return ()
    return tuple(sorted({day.number for day in rule.byday}))


def nth(rule: Rule, starts: datetime, k: int) -> datetime | None:
    """Occurrence number ``k`` of the unbounded series (count and until not applied)."""
    days = weekdays(rule)
    try:
        if days:
            return _nth_byday(rule, starts, days, k)
        if rule.frequency in _FIXED_PERIOD:
            return starts + _FIXED_PERIOD[rule.frequency] * (rule.interval * k)
        months = rule.interval * k * (12 if rule.frequency is Frequency.YEARLY else 1)
        return _add_months(starts, months)
    except OverflowError:
        return None


def first_index_after(rule: Rule, starts: datetime, after: datetime) -> int:
    """The smallest ``k`` whose occurrence is strictly after ``after``."""
    if after < starts:
        return 0
    k = _estimate(rule, starts, after)
    while k > 0 and _after(nth(rule, starts, k - 1), after):
        k -= 1
    while not _after(nth(rule, starts, k), after):
        k += 1
    return k


def _after(value: datetime | None, after: datetime) -> bool:
    return value is None or value > after  # beyond year 9999 counts as "after everything"


def _estimate(rule: Rule, starts: datetime, after: datetime) -> int:
    """A close lower guess of the index; first_index_after corrects it by walking."""
    try:
        return _guess(rule, starts, after)
    except OverflowError:
        # One step is longer than a timedelta holds (a rule stored before intervals were
        # bounded): the second occurrence lies past the calendar, so the walk is short.
        return 0


def _guess(rule: Rule, starts: datetime, after: datetime) -> int:
    days = weekdays(rule)
    if days:
        weeks = (after - starts) // timedelta(weeks=1)
        return max(0, (weeks // rule.interval - 1) * len(days))
    if rule.frequency in _FIXED_PERIOD:
        return (after - starts) // (_FIXED_PERIOD[rule.frequency] * rule.interval)
    local = after.astimezone(starts.tzinfo)
    months = (local.year - starts.year) * 12 + local.month - starts.month
    if rule.frequency is Frequency.YEARLY:
        return max(0, months // 12 // rule.interval - 1)
    return max(0, months // rule.interval - 1)


def _nth_byday(rule: Rule, starts: datetime, days: tuple[int, ...], k: int) -> datetime:
    first_week = [d for d in days if d >= starts.weekday()]
    if k < len(first_week):
        week, day = 0, first_week[k]
    else:
        rest = k - len(first_week)
        week, day = 1 + rest // len(days), days[rest % len(days)]
    # Whole days in the offset of starts: wall time and offset stay those of starts.
    return starts + timedelta(days=week * 7 * rule.interval + day - starts.weekday())


def _add_months(starts: datetime, months: int) -> datetime | None:
    index = starts.month - 1 + months
    year, month = starts.year + index // 12, index % 12 + 1
    if year > _MAX_YEAR:
        return None
    day = min(starts.day, calendar.monthrange(year, month)[1])
    return starts.replace(year=year, month=month, day=day)
