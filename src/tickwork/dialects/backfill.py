"""Wire shapes of a backfill (a tickwork extension beside the k6 schedules API): the request,
its checks, and the answer.

A backfill names a window of the past, ``from`` (inclusive) to ``to`` (exclusive), and asks
for a run of each of the schedule's occurrences in it that has none. The checks here refuse,
each naming its field, what cannot be a backfill: a window that is empty, reaches into the
future (the scheduler fires the future), starts before the schedule's timing took effect
(earlier occurrences are not its own), or holds more than ``MAX_OCCURRENCES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Literal

from pydantic import BaseModel, Field

from tickwork.core import Schedule
from tickwork.core.instants import ONE_MICROSECOND, format_instant
from tickwork.core.occurrences import iter_after
from tickwork.core.validation import instant_field
from tickwork.dialects.wire import DateTime, StrictWire, from_json
from tickwork.errors import Problem, ValidationError

MAX_OCCURRENCES = 1000
"""Occurrences one backfill covers at most."""
INVALID = "The backfill is not valid."

Mark = Literal["would_run", "created", "already_has_run", "already_skipped", "pending", "forgotten"]


class BackfillRequest(StrictWire):
    """tickwork extension: runs for the past occurrences of a schedule that have none."""

    from_: DateTime = Field(
        alias="from",
        description="The window's start (RFC 3339), inclusive: at or after the schedule's "
        "timing took effect.",
    )
    to: DateTime = Field(description="The window's end (RFC 3339), exclusive: not after now.")
    overlap: Literal["skip", "allow"] | None = Field(
        default=None,
        description="'skip': the runs run one at a time, each after the load test's previous "
        "run ended (the schedule's own fires meanwhile are skipped for overlap); 'allow': all "
        "are queued at once. Default: the schedule's own overlap.",
    )
    dry_run: bool = Field(
        default=True,
        description="true (the default): only say what would happen; nothing is created "
        "unless dry_run is false.",
    )


class BackfillItem(BaseModel):
    instant: str = Field(description="The occurrence, in UTC.")
    mark: Mark = Field(
        description="would_run (a dry run: it has no run and would get one), created (its "
        "run was created now), already_has_run (fired, or backfilled before: a repeated "
        "request creates nothing), already_skipped (the ledger records it skipped: see "
        "`reason`), pending (the scheduler has not settled it yet and will), forgotten "
        "(retention removed its record: whether it ran cannot be known, so it is left alone)."
    )
    run_id: int | None = Field(default=None, description="Its run (created or earlier).")
    reason: str | None = Field(default=None, description="already_skipped: why it was skipped.")


class BackfillResponse(BaseModel):
    dry_run: bool
    overlap: Literal["skip", "allow"] = Field(description="The overlap the runs follow.")
    value: list[BackfillItem] = Field(description="Each occurrence of the window, oldest first.")


@dataclass(frozen=True, slots=True)
class Backfill:
    """A valid request: the window in UTC, and what it asks."""

    from_at: datetime
    to_at: datetime
    overlap: str | None
    dry_run: bool


def parse_backfill(body: str | bytes, *, now: datetime) -> Backfill:
    """The request, its window checked against ``now``; ValidationError naming each field."""
    request = from_json(BackfillRequest, body, INVALID)
    found: list[Problem] = []
    from_at = instant_field(request.from_, "from", found)
    to_at = instant_field(request.to, "to", found)
    if from_at is not None and to_at is not None:
        if to_at <= from_at:
            found.append(Problem("invalid_window", "to", "'to' must be later than 'from'."))
        elif to_at > now:
            found.append(
                Problem(
                    "in_future",
                    "to",
                    f"'to' must not be later than now ({format_instant(now)}): a backfill is "
                    "for the past, the scheduler fires the future.",
                )
            )
    if found or from_at is None or to_at is None:
        raise ValidationError(found, INVALID)
    return Backfill(
        from_at.astimezone(UTC), to_at.astimezone(UTC), request.overlap, request.dry_run
    )


def window_occurrences(
    schedule: Schedule, backfill: Backfill, *, since: datetime | None
) -> list[datetime]:
    """The schedule's occurrences t with from <= t < to; ValidationError naming ``from`` when
    the window starts before the timing took effect (``since``: its occurrences are those
    after it), naming ``to`` when it holds more than MAX_OCCURRENCES."""
    earliest = None if since is None else since + ONE_MICROSECOND
    if earliest is not None and backfill.from_at < earliest:
        message = (
            f"'from' must be at or after {format_instant(earliest)}, when the schedule's "
            "current timing took effect: earlier occurrences are not its own."
        )
        raise ValidationError([Problem("before_since", "from", message)], INVALID)
    found = []
    for instant in islice(
        iter_after(schedule, backfill.from_at - ONE_MICROSECOND), MAX_OCCURRENCES + 1
    ):
        if instant >= backfill.to_at:
            break
        found.append(instant)
    if len(found) > MAX_OCCURRENCES:
        message = (
            f"The window holds more than {MAX_OCCURRENCES} occurrences (counting stopped at "
            f"{len(found)}): narrow it, or backfill it in parts."
        )
        raise ValidationError([Problem("too_many_occurrences", "to", message)], INVALID)
    return found
