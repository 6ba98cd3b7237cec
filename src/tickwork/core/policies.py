"""What to do with a schedule's due occurrences: fire, skip, and why. Pure.

Catch-up: when occurrences were missed (no leader, Redis down), only the latest due one can
fire, and only if it is within the catch-up window of ``now``; every other due occurrence is
recorded as skipped with a reason. Never a burst, never silence.

Overlap: with policy ``skip`` (the default) an occurrence whose load test's previous run has
not finished is recorded as skipped; ``allow`` fires it anyway.

Timing: each occurrence runs at its planned instant (``Timing``: its instant plus jitter,
moved by a defer window, or skipped by a skip window; see windows.py). Occurrences deferred
past the next one's instant collapse: the latest runs, the others are recorded ``deferred``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tickwork.core.model import Schedule
from tickwork.core.occurrences import next_after
from tickwork.core.windows import Timing

MISSED = "missed"
MISSED_OUTSIDE_WINDOW = "missed_outside_catch_up_window"
OVERLAP = "overlap"
BLACKOUT = "blackout"
DEFERRED = "deferred"

# Each skipped occurrence becomes a run record; past this many a single summary stands for
# the rest, so a schedule that missed a month of minutes does not write 40,000 records.
SKIP_RECORD_CAP = 100


@dataclass(frozen=True, slots=True)
class Skip:
    occurrence_at: datetime
    reason: str
    more: int = 0  # further occurrences this record stands for (after the cap)
    last_at: datetime | None = None  # the last of those
    window_id: int | None = None  # blackout, deferred: the window


@dataclass(frozen=True, slots=True)
class Plan:
    fire: datetime | None
    fired_through: datetime  # every occurrence up to here is settled
    next_at: datetime | None
    skips: list[Skip] = field(default_factory=list)
    fate: Timing | None = None  # the timing of the fired occurrence


def _on_time(at: datetime) -> Timing:
    return Timing(at)


def plan(
    schedule: Schedule,
    *,
    due_at: datetime,
    now: datetime,
    catch_up: timedelta,
    overlap: str = "skip",
    previous_unfinished: bool = False,
    timing: Callable[[datetime], Timing] = _on_time,
) -> Plan:
    """Settle every occurrence from ``due_at`` (inclusive) whose planned instant (``timing``:
    jitter and blackout windows) has come by ``now``."""
    missed: list[Skip] = []
    missed_count, last_missed = 0, None
    latest, fate = due_at, timing(due_at)
    upcoming = next_after(schedule, latest)
    while upcoming is not None and (following := timing(upcoming)).planned <= now:
        # ``latest`` has a successor that is also due: it was missed (or deferred into it).
        missed_count, last_missed = missed_count + 1, latest
        if len(missed) < SKIP_RECORD_CAP:
            missed.append(_passed(latest, fate))
        latest, fate = upcoming, following
        upcoming = next_after(schedule, latest)
    skips = missed
    if missed_count > len(missed):
        last = missed[-1]
        skips[-1] = Skip(
            last.occurrence_at,
            last.reason,
            more=missed_count - len(missed),
            last_at=last_missed,
            window_id=last.window_id,
        )
    fire: datetime | None = latest
    if now - fate.planned > catch_up:
        skips.append(Skip(latest, MISSED_OUTSIDE_WINDOW))
        fire = None
    elif fate.skipped_by is not None:
        skips.append(Skip(latest, BLACKOUT, window_id=fate.skipped_by))
        fire = None
    elif overlap == "skip" and previous_unfinished:
        skips.append(Skip(latest, OVERLAP))
        fire = None
    return Plan(fire=fire, fired_through=latest, next_at=upcoming, skips=skips, fate=fate)


def _passed(at: datetime, fate: Timing) -> Skip:
    """The record of an occurrence a later one overtook: a window's doing, or a miss."""
    if fate.skipped_by is not None:
        return Skip(at, BLACKOUT, window_id=fate.skipped_by)
    if fate.deferred_by is not None:
        return Skip(at, DEFERRED, window_id=fate.deferred_by)
    return Skip(at, MISSED)
