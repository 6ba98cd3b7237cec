"""Blackout windows: spans in which no run starts. Pure.

A window is one-off (``starts_at`` to ``ends_at``) or recurring (a cron expression in an IANA
zone for its starts, and a duration: "every Saturday 00:00-06:00 Europe/Berlin"). Its policy
says what becomes of an occurrence whose planned instant falls inside: ``skip`` (recorded
skipped, reason ``blackout``) or ``defer`` (it runs at the window's end; several deferred
occurrences of one schedule collapse into that one run, the others recorded skipped, reason
``deferred``).

``timing`` is the one place that decides: the scheduler plans with it, and the occurrence
ledger previews with it, so what the preview shows is what the commit does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from tickwork.core.model import Cron, Schedule
from tickwork.core.occurrences import next_after

# Recurring windows count their starts from here, so a window set today covers a span that
# began before it was set (a Saturday window set at 03:00 on a Saturday covers 03:00).
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

MAX_CHAIN = 16
"""A deferred run that lands in another window moves on at most this many times (then it is
skipped): windows back to back cannot keep a run waiting forever."""


class WindowPolicy(StrEnum):
    SKIP = "skip"
    DEFER = "defer"


@dataclass(frozen=True, slots=True)
class Window:
    id: int
    policy: WindowPolicy
    starts_at: datetime | None = None  # one-off
    ends_at: datetime | None = None
    cron: Cron | None = None  # recurring: when each span starts
    duration: timedelta | None = None  # and how long it lasts

    def __post_init__(self) -> None:
        one_off = self.starts_at is not None and self.ends_at is not None
        recurring = self.cron is not None and self.duration is not None
        if one_off == recurring:
            raise ValueError("a window is one-off (starts_at, ends_at) or recurring (cron)")

    def end_of_span(self, at: datetime) -> datetime | None:
        """The end of this window's span that contains ``at`` (start inclusive, end
        exclusive), or None when ``at`` is outside every span."""
        if self.starts_at is not None and self.ends_at is not None:
            return self.ends_at if self.starts_at <= at < self.ends_at else None
        assert self.cron is not None
        assert self.duration is not None
        start = next_after(Schedule(_EPOCH, self.cron), at - self.duration)
        if start is not None and start <= at:
            return start + self.duration
        return None

    def spans(self, after: datetime, before: datetime) -> list[tuple[datetime, datetime]]:
        """Its spans that overlap [after, before), oldest first (a recurring one's at most
        100)."""
        if self.starts_at is not None and self.ends_at is not None:
            overlaps = self.starts_at < before and after < self.ends_at
            return [(self.starts_at, self.ends_at)] if overlaps else []
        assert self.cron is not None
        assert self.duration is not None
        found: list[tuple[datetime, datetime]] = []
        schedule = Schedule(_EPOCH, self.cron)
        start = next_after(schedule, after - self.duration)
        while start is not None and start < before and len(found) < 100:
            found.append((start, start + self.duration))
            start = next_after(schedule, start)
        return found


@dataclass(frozen=True, slots=True)
class Timing:
    """What the windows make of one occurrence."""

    planned: datetime  # when it runs (or would have run, when skipped)
    skipped_by: int | None = None  # a skip window covers it: recorded skipped, reason blackout
    deferred_by: int | None = None  # a defer window moved it to ``planned``, that span's end


def timing(
    planned: datetime, windows: Iterable[Window], *, offset: timedelta = timedelta(0)
) -> Timing:
    """The fate of an occurrence planned for ``planned`` (its instant plus its jitter
    ``offset``): a skip window covering it skips it; defer windows covering it move it to the
    latest of their spans' ends plus the same offset (a herd deferred together stays spread),
    and again while that falls in a window."""
    active = tuple(windows)
    if not active:
        return Timing(planned)
    deferred_by: int | None = None
    for _ in range(MAX_CHAIN):
        covering = [(w, end) for w in active if (end := w.end_of_span(planned)) is not None]
        if not covering:
            return Timing(planned, deferred_by=deferred_by)
        skips = [w for w, _ in covering if w.policy is WindowPolicy.SKIP]
        if skips:
            return Timing(planned, skipped_by=min(w.id for w in skips), deferred_by=deferred_by)
        window, end = max(covering, key=lambda pair: (pair[1], -pair[0].id))
        deferred_by = window.id if deferred_by is None else deferred_by
        planned = end + offset
    return Timing(planned, skipped_by=deferred_by, deferred_by=deferred_by)
