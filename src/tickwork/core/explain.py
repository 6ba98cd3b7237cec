"""Occurrences with the reasons anything about them is unusual. Pure.

The occurrence ledger shows every instant a schedule fires, past or future, with its local
wall-clock time and a note wherever the calendar did something a reader would not guess:

- ``dst_gap``: a fixed-time cron job's local time did not exist (spring-forward); it runs at
  the first instant after the gap (cronie's rule);
- ``dst_repeated``: the local time happened twice (fall-back): a fixed-time job runs at the
  first pass only; an elapsed-time job (minute or hour field beginning with ``*``) runs at
  both, and the note says which pass this is;
- ``month_end_clamped``: a monthly or yearly rule's day does not exist in that month (the
  31st in April, Feb 29 in a common year): it runs on the month's last day;
- ``last``: no occurrence follows (``count`` or ``until`` reached, or a one-shot).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from tickwork.core import cron
from tickwork.core.instants import zone
from tickwork.core.model import Cron, DstRepeat, Frequency, Once, Rule, Schedule
from tickwork.core.occurrences import next_after

MAX_WINDOW = 1000
"""Occurrences one explanation covers at most."""


@dataclass(frozen=True, slots=True)
class Note:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Explained:
    instant: datetime  # UTC
    local: datetime  # wall-clock time in the schedule's zone (cron), else in starts' offset
    notes: tuple[Note, ...] = ()


def explained(
    schedule: Schedule, *, after: datetime, before: datetime | None, limit: int
) -> list[Explained]:
    """The occurrences strictly after ``after`` and before ``before`` (up to ``limit``,
    at most MAX_WINDOW), oldest first, each with its local time and notes."""
    found: list[Explained] = []
    current = next_after(schedule, after)
    while current is not None and len(found) < min(limit, MAX_WINDOW):
        if before is not None and current >= before:
            break
        following = next_after(schedule, current)
        found.append(explain(schedule, current, following=following))
        current = following
    return found


def explain(schedule: Schedule, instant: datetime, *, following: datetime | None) -> Explained:
    """One occurrence of ``schedule`` at ``instant``; ``following`` is the next one."""
    trigger = schedule.trigger
    notes: list[Note] = []
    if isinstance(trigger, Cron):
        tz = zone(trigger.time_zone)
        local = instant.astimezone(tz)
        notes += _cron_notes(trigger, tz, instant, local)
    else:
        offset = schedule.starts.tzinfo or UTC
        local = instant.astimezone(offset)
        if isinstance(trigger, Rule):
            notes += _clamp_notes(trigger, schedule.starts, local)
    if following is None:
        notes.append(_last(schedule))
    return Explained(instant.astimezone(UTC), local, tuple(notes))


def _cron_notes(trigger: Cron, tz: tzinfo, instant: datetime, local: datetime) -> list[Note]:
    wall = local.replace(tzinfo=None)
    notes = []
    if cron.follows_wall_clock(trigger) and not cron.wall_matches(trigger, wall):
        nominal = cron.wall_before(trigger, wall)
        when = f"{nominal:%H:%M} on {nominal:%Y-%m-%d}" if nominal else "its local time"
        notes.append(
            Note(
                "dst_gap",
                f"{when} did not exist in {trigger.time_zone} (clocks went forward): it runs "
                f"at the first instant after the gap, {wall:%H:%M} {local.tzname()}",
            )
        )
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first != second:  # the wall time happened twice
        if cron.follows_wall_clock(trigger) and trigger.repeat is DstRepeat.BOTH:
            which = "first" if instant.astimezone(UTC) == first else "second"
            message = (
                f"{wall:%H:%M} happened twice on {wall:%Y-%m-%d} in {trigger.time_zone} "
                f"(clocks went back): this is the {which} pass; this schedule runs at both "
                "(dst.repeat both)"
            )
        elif cron.follows_wall_clock(trigger):
            message = (
                f"{wall:%H:%M} happened twice on {wall:%Y-%m-%d} in {trigger.time_zone} "
                "(clocks went back): a fixed-time job runs at the first pass only"
            )
        else:
            which = "first" if instant.astimezone(UTC) == first else "second"
            message = (
                f"{wall:%H:%M} happened twice on {wall:%Y-%m-%d} in {trigger.time_zone} "
                f"(clocks went back): this is the {which} pass; a job following elapsed "
                "time runs at both"
            )
        notes.append(Note("dst_repeated", message))
    return notes


def _clamp_notes(rule: Rule, starts: datetime, local: datetime) -> list[Note]:
    if rule.frequency not in (Frequency.MONTHLY, Frequency.YEARLY) or rule.byday:
        return []
    wanted = starts.astimezone(local.tzinfo).day
    if local.day >= wanted:
        return []
    return [
        Note(
            "month_end_clamped",
            f"day {wanted} does not exist in {local:%B %Y}: it runs on the month's last day, "
            f"the {local.day}th",
        )
    ]


def _last(schedule: Schedule) -> Note:
    trigger = schedule.trigger
    if isinstance(trigger, Once):
        why = "a one-shot schedule"
    elif isinstance(trigger, Rule) and trigger.count is not None:
        why = f"count {trigger.count} reached"
    elif isinstance(trigger, Rule) and trigger.until is not None:
        why = f"until {trigger.until.isoformat()} reached"
    else:
        why = "no later occurrence exists"
    return Note("last", f"the last occurrence: {why}")
