"""What to do with a schedule's due occurrences: fire, skip, and why. Pure.

Catch-up: when occurrences were missed (no leader, Redis down), only the latest due one can
fire, and only if it is within the catch-up window of ``now``; every other due occurrence is
recorded as skipped with a reason. Never a burst, never silence.

Overlap: with policy ``skip`` (the default) an occurrence whose load test's previous run has
not finished is recorded as skipped; ``allow`` fires it anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tickwork.core.model import Schedule
from tickwork.core.occurrences import next_after

MISSED = "missed"
MISSED_OUTSIDE_WINDOW = "missed_outside_catch_up_window"
OVERLAP = "overlap"

# Each skipped occurrence becomes a run record; past this many a single summary stands for
# the rest, so a schedule that missed a month of minutes does not write 40,000 records.
SKIP_RECORD_CAP = 100


@dataclass(frozen=True, slots=True)
class Skip:
    occurrence_at: datetime
    reason: str
    more: int = 0  # further occurrences this record stands for (after the cap)
    last_at: datetime | None = None  # the last of those


@dataclass(frozen=True, slots=True)
class Plan:
    fire: datetime | None
    fired_through: datetime  # every occurrence up to here is settled
    next_at: datetime | None
    skips: list[Skip] = field(default_factory=list)


def _on_time(at: datetime) -> datetime:
    return at


def plan(
    schedule: Schedule,
    *,
    due_at: datetime,
    now: datetime,
    catch_up: timedelta,
    overlap: str = "skip",
    previous_unfinished: bool = False,
    planned: Callable[[datetime], datetime] = _on_time,
) -> Plan:
    """Settle every occurrence from ``due_at`` (inclusive) whose planned instant (with the
    schedule's jitter; ``planned``) has come by ``now``."""
    missed: list[datetime] = []
    missed_count, last_missed = 0, None
    latest = due_at
    upcoming = next_after(schedule, latest)
    while upcoming is not None and planned(upcoming) <= now:
        # ``latest`` has a successor that is also due: it was missed.
        missed_count, last_missed = missed_count + 1, latest
        if len(missed) < SKIP_RECORD_CAP:
            missed.append(latest)
        latest = upcoming
        upcoming = next_after(schedule, latest)
    skips = [Skip(at, MISSED) for at in missed]
    if missed_count > len(missed):
        skips[-1] = Skip(missed[-1], MISSED, more=missed_count - len(missed), last_at=last_missed)
    fire: datetime | None = latest
    if now - planned(latest) > catch_up:
        skips.append(Skip(latest, MISSED_OUTSIDE_WINDOW))
        fire = None
    elif overlap == "skip" and previous_unfinished:
        skips.append(Skip(latest, OVERLAP))
        fire = None
    return Plan(fire=fire, fired_through=latest, next_at=upcoming, skips=skips)
