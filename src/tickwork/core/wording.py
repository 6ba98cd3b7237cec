"""A schedule's timing in words, for people: "every weekday at 09:00 Europe/Berlin",
"every 2 weeks on Mon, Wed at 09:00 UTC", "once at 2026-11-23 09:00 UTC". Pure.

The console's lists and pages show these beside the exact rule. A cron expression whose
shape is not one of the common ones below is shown as itself ("cron 5,35 1-4 * 2 * in
Europe/Berlin") rather than paraphrased wrongly: the words must never promise a time the
engine will not fire at.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tickwork.core.model import Cron, Frequency, Interval, Once, Rule, Schedule

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_CRON_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_CRON_MONTHS = tuple(name.upper() for name in MONTH_NAMES)


def describe(schedule: Schedule) -> str:
    """The schedule's timing in words (lower case first, no final stop)."""
    trigger = schedule.trigger
    if isinstance(trigger, Once):
        return f"once at {_stamp(schedule.starts)}"
    if isinstance(trigger, Interval):
        return f"every {_period(trigger.period)}"
    if isinstance(trigger, Rule):
        return _rule(trigger, schedule.starts)
    return _cron(trigger)


def offset_label(value: datetime) -> str:
    """ "UTC" for a zero offset, else "UTC+02:00" (the zone a rule keeps: that of starts)."""
    offset = value.utcoffset() or timedelta(0)
    if not offset:
        return "UTC"
    sign = "+" if offset > timedelta(0) else "-"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _stamp(value: datetime) -> str:
    seconds = f":{value:%S}" if value.second or value.microsecond else ""
    return f"{value:%Y-%m-%d %H:%M}{seconds} {offset_label(value)}"


def _clock(value: datetime) -> str:
    seconds = f":{value:%S}" if value.second or value.microsecond else ""
    return f"{value:%H:%M}{seconds}"


def _plural(count: int, unit: str) -> str:
    return f"{unit}" if count == 1 else f"{count} {unit}s"


def _period(period: timedelta) -> str:
    seconds = int(period.total_seconds())
    for size, unit in ((86_400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds % size == 0:
            return _plural(seconds // size, unit)
    return f"{period.total_seconds():g} seconds"


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _rule(rule: Rule, starts: datetime) -> str:
    at = f"at {_clock(starts)} {offset_label(starts)}"
    every = rule.interval
    if rule.frequency is Frequency.HOURLY:
        # Elapsed time: the zone does not move it (minutes past the hour in UTC).
        text = f"every {_plural(every, 'hour')} at minute {starts.astimezone(UTC).minute}"
    elif rule.frequency is Frequency.DAILY:
        text = f"every {_plural(every, 'day')} {at}"
    elif rule.frequency is Frequency.WEEKLY:
        numbers = sorted({day.number for day in rule.byday or ()}) or [starts.weekday()]
        text = f"every {_plural(every, 'week')} on {_days(numbers)} {at}"
    elif rule.frequency is Frequency.MONTHLY:
        clamp = " (the last day in shorter months)" if starts.day > 28 else ""
        text = f"every {_plural(every, 'month')} on the {_ordinal(starts.day)}{clamp} {at}"
    else:
        clamp = " (Feb 28 in common years)" if (starts.month, starts.day) == (2, 29) else ""
        day = f"{MONTH_NAMES[starts.month - 1]} {starts.day}"
        text = f"every {_plural(every, 'year')} on {day}{clamp} {at}"
    if rule.count is not None:
        text += ", once" if rule.count == 1 else f", {rule.count} times"
    if rule.until is not None:
        text += f", until {_stamp(rule.until)}"
    return text


def _days(numbers: list[int]) -> str:
    """Weekday indexes (Monday 0) as names: "Mon, Wed"; five working days: "weekdays"."""
    return ", ".join(DAY_NAMES[n] for n in numbers)


# --- cron -----------------------------------------------------------------------------------


def _values(field: str, low: int, high: int, names: tuple[str, ...]) -> list[int] | None:
    """The values a plain cron field lists (numbers, names, ranges, lists; steps on a range
    or on *), or None for "*" (any)."""
    if field == "*":
        return None
    found: set[int] = set()
    for item in field.split(","):
        base, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            first, last = low, high
        else:
            ends = [_number(end, low, names) for end in base.split("-")]
            first, last = ends[0], ends[-1]
            if step_text and len(ends) == 1:
                last = high  # "5/15" means from 5 on, every 15
        if last < first:
            return []
        found.update(range(first, last + 1, step))
    return sorted(found)


def _number(text: str, low: int, names: tuple[str, ...]) -> int:
    upper = text.upper()
    if upper in names:
        return names.index(upper) + (1 if low == 1 else 0)
    return int(text)


def _cron(trigger: Cron) -> str:
    zone_name = trigger.time_zone
    raw = trigger.expression.split()
    try:
        minutes = _values(raw[0], 0, 59, ())
        hours = _values(raw[1], 0, 23, ())
        days = _values(raw[2], 1, 31, ())
        months = _values(raw[3], 1, 12, _CRON_MONTHS)
        weekdays = _values(raw[4], 0, 7, _CRON_DAYS)
    except (ValueError, IndexError):
        return _literal(trigger)
    if weekdays is not None:
        # cron's Sunday is 0 or 7; ours is 6 (Monday 0)
        weekdays = sorted({(d - 1) % 7 for d in weekdays})
        if weekdays == list(range(7)):
            weekdays = None
    when = _cron_time(raw[0], raw[1], minutes, hours)
    if when is None:
        return _literal(trigger)
    on = _cron_days(days, months, weekdays, raw[2], raw[4])
    if on is None:
        return _literal(trigger)
    if when.startswith(" every"):
        # "every 15 minutes, 09:00-17:59, every weekday": the repetition reads first
        text = when.strip() + ("" if on == "every day" else f", {on}")
    else:
        text = on + when
    return f"{text} {zone_name}"


def _cron_time(
    minute_field: str, hour_field: str, minutes: list[int] | None, hours: list[int] | None
) -> str | None:
    """ " at 09:00", " at 09:00 and 17:30", " every 15 minutes", " every hour at minute 5"
    (leading space), or None when the shape is not a common one."""
    if minutes is None and hours is None:
        return " every minute"
    if minutes is not None and len(minutes) == 1 and hours is not None and len(hours) <= 4:
        return " at " + " and ".join(f"{h:02d}:{minutes[0]:02d}" for h in hours)
    if minutes is not None and len(minutes) <= 2 and hours is not None and len(hours) == 1:
        return " at " + " and ".join(f"{hours[0]:02d}:{m:02d}" for m in minutes)
    step = _step_of(minute_field)
    within = "" if hours is None else _hours_span(hours)
    if within is None:
        return None
    if step is not None:
        return f" every {_plural(step, 'minute')}{within}"
    if minutes is not None and len(minutes) == 1 and hours is None:
        return f" every hour at minute {minutes[0]}"
    if minutes is not None and len(minutes) == 1:
        return f" at minute {minutes[0]} of every hour{within}"
    if minutes is None:
        return f" every minute{within}"
    return None


def _step_of(field: str) -> int | None:
    """N of "*/N" (a minute field that repeats from 0); None for any other shape."""
    if field.startswith("*/") and field[2:].isdigit():
        return int(field[2:])
    return None


def _hours_span(hours: list[int]) -> str | None:
    if hours == list(range(hours[0], hours[-1] + 1)):
        return f", {hours[0]:02d}:00-{hours[-1]:02d}:59"
    if len(hours) <= 4:
        return ", in hours " + ", ".join(f"{h:02d}" for h in hours)
    return None


def _cron_days(
    days: list[int] | None,
    months: list[int] | None,
    weekdays: list[int] | None,
    day_field: str,
    weekday_field: str,
) -> str | None:
    """The day part ("every weekday", "on the 1st of every month", "every day") with a
    trailing space, or None when not a common shape."""
    if (
        days is not None
        and weekdays is not None
        and not (day_field.startswith("*") or weekday_field.startswith("*"))
    ):
        return None  # either may match (cron's rule): too easy to say wrongly
    month_part = ""
    if months is not None:
        month_part = " in " + ", ".join(MONTH_NAMES[m - 1] for m in months)
    if weekdays is not None:
        if weekdays == [0, 1, 2, 3, 4]:
            return f"every weekday{month_part}"
        if weekdays == [5, 6]:
            return f"every Sat and Sun{month_part}"
        return f"every {_days(weekdays)}{month_part}"
    if days is not None:
        day_text = " and ".join(_ordinal(d) for d in days) if len(days) <= 3 else None
        if day_text is None:
            return None
        if months is None:
            return f"on the {day_text} of every month"
        if len(months) == 1 and len(days) == 1:
            return f"every year on {MONTH_NAMES[months[0] - 1]} {days[0]}"
        return f"on the {day_text}{month_part}"
    return f"every day{month_part}"


def _literal(trigger: Cron) -> str:
    return f"cron {trigger.expression} in {trigger.time_zone}"
