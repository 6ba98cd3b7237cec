"""Jitter: an occurrence planned a little after its instant, so that a herd of schedules due
at one instant reaches its targets spread over a window. Pure.

The offset is a function of the schedule and the occurrence alone, uniform in
[0, jitter): the preview, the fire and any retry agree on it, and a restart does not re-roll
it. It is never negative: nothing runs before its nominal instant.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from tickwork.core.instants import to_us
from tickwork.core.model import Schedule
from tickwork.core.occurrences import next_after

MAX_JITTER_S = 3600


def jitter_offset(schedule_id: int, occurrence_at: datetime, jitter_s: int) -> timedelta:
    """How long after ``occurrence_at`` schedule ``schedule_id`` runs it (whole ms)."""
    if jitter_s <= 0:
        return timedelta(0)
    digest = hashlib.sha256(f"{schedule_id}:{to_us(occurrence_at)}".encode()).digest()
    return timedelta(milliseconds=int.from_bytes(digest[:8], "big") % (jitter_s * 1000))


def widest_jitter(schedule: Schedule, after: datetime, *, look: int = 200) -> int | None:
    """The widest jitter (whole seconds) that keeps the schedule's occurrences in order: the
    shortest gap between its next ``look`` occurrences from ``after``. None when fewer than
    two remain (any jitter keeps order)."""
    widest: timedelta | None = None
    previous = next_after(schedule, after)
    for _ in range(look):
        if previous is None:
            break
        upcoming = next_after(schedule, previous)
        if upcoming is None:
            break
        gap = upcoming - previous
        widest = gap if widest is None else min(widest, gap)
        previous = upcoming
    return None if widest is None else int(widest.total_seconds())
