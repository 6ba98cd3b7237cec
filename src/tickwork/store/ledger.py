"""The occurrence ledger: what happened at each past occurrence of a schedule, and why.

The fire commit indexes every run it writes, fired or skipped, by the occurrence it settles
({p}:schedule:{id}:ledger). An occurrence in the past is then:

    fired      a run of it exists (its id, status, result, and lateness: created - instant)
               or a backfill created one later (reason ``backfill``, lateness not measured)
    skipped    a skipped record of it exists, directly or as part of a counted series (the
               reason: missed, missed_outside_catch_up_window, overlap, ...), or it passed
               while the schedule was paused (reason ``paused``)
    deleted    it had a run, since deleted by hand
    pending    after what the scheduler has settled: it is due and about to be
    forgotten  at or before what retention removed
    missed     none of these: it should have happened and left no record. This must never
               occur; the ledger is how anyone can check.

Occurrences before the schedule's current timing took effect (``since``) are not its own and
are not reported.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import redis

from tickwork.core.instants import ONE_MICROSECOND, from_us, parse_instant, to_us
from tickwork.core.lifecycle import Status
from tickwork.store.connection import text_of, translated
from tickwork.store.keys import Keys
from tickwork.store.schedules import ScheduleRecord

FIRED, SKIPPED, DELETED, PENDING, FORGOTTEN, MISSED = (
    "fired",
    "skipped",
    "deleted",
    "pending",
    "forgotten",
    "missed",
)
PAUSED = "paused"
BACKFILL = "backfill"
_RUN_FIELDS = ("status", "result", "created", "scheduled_for", "details")


@dataclass(frozen=True, slots=True)
class Happened:
    outcome: str
    run_id: int | None = None
    reason: str | None = None  # why it was skipped
    lateness_ms: int | None = None  # fired: created - planned instant (jitter, defer window)
    status: str | None = None  # fired: the run's status and result now
    result: str | None = None
    window_id: int | None = None  # skipped or deferred by a blackout window
    planned_for: datetime | None = None  # fired: the instant it was planned for


@dataclass(frozen=True, slots=True)
class _Entry:
    run_id: int
    at: datetime  # the occurrence
    exists: bool
    status: str | None = None
    result: str | None = None
    created: datetime | None = None
    reason: str | None = None
    last_at: datetime | None = None  # a skipped series: its last occurrence
    backfill: bool = False  # a backfill created the run after the occurrence had passed
    window_id: int | None = None
    planned_for: datetime | None = None


class Ledger:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    def happened(
        self, record: ScheduleRecord, instants: Sequence[datetime]
    ) -> list[Happened | None]:
        """What happened at each past instant (ascending); None where the instant is not
        this schedule's (before its timing took effect)."""
        if not instants:
            return []
        entries = self._entries(record.id, instants[0], instants[-1])
        at = {entry.at: entry for entry in entries}
        series = [e for e in entries if e.last_at is not None]
        return [self._one(record, instant, at.get(instant), series) for instant in instants]

    def window_start(self, schedule_id: int, *, now: datetime, since: datetime) -> datetime:
        """Where a health window begins: ``since``, or later when the ledger already holds
        the window's worth of occurrences after it (so the window is never walked far)."""
        key = self._keys.schedule_ledger(schedule_id)
        with translated():
            rows = self._client.zrevrangebyscore(
                key,
                to_us(now),
                f"({to_us(since)}",
                HEALTH_WINDOW_OCCURRENCES - 1,
                1,
                withscores=True,
            )
        return max(since, from_us(int(rows[0][1])) - ONE_MICROSECOND) if rows else since

    def _one(
        self,
        record: ScheduleRecord,
        instant: datetime,
        entry: _Entry | None,
        series: list[_Entry],
    ) -> Happened | None:
        if record.since is not None and instant <= record.since:
            return None
        if entry is not None:
            if not entry.exists:
                return Happened(DELETED, run_id=entry.run_id)
            if entry.status == Status.SKIPPED:
                return Happened(
                    SKIPPED, run_id=entry.run_id, reason=entry.reason, window_id=entry.window_id
                )
            if entry.backfill:  # asked for after the occurrence passed: it was not late
                return Happened(
                    FIRED,
                    run_id=entry.run_id,
                    reason=BACKFILL,
                    status=entry.status,
                    result=entry.result,
                )
            assert entry.created is not None
            planned = entry.planned_for or instant
            lateness = round((entry.created - planned).total_seconds() * 1000)
            return Happened(
                FIRED,
                run_id=entry.run_id,
                lateness_ms=max(0, lateness),
                status=entry.status,
                result=entry.result,
                window_id=entry.window_id,
                planned_for=entry.planned_for,
            )
        for run in series:
            if run.last_at is not None and run.at <= instant <= run.last_at:
                return Happened(
                    SKIPPED, run_id=run.run_id, reason=run.reason, window_id=run.window_id
                )
        if any(pause.covers(instant) for pause in record.pauses):
            return Happened(SKIPPED, reason=PAUSED)
        if instant > record.fired_through:
            return Happened(PENDING)
        if record.forgotten_through is not None and instant <= record.forgotten_through:
            return Happened(FORGOTTEN)
        return Happened(MISSED)

    def _entries(self, schedule_id: int, first: datetime, last: datetime) -> list[_Entry]:
        """The ledger's entries between two instants, and the one before (a skipped series
        recorded at its first occurrence may reach into the window)."""
        key = self._keys.schedule_ledger(schedule_id)
        with translated():
            pipe = self._client.pipeline(transaction=False)
            pipe.zrangebyscore(key, to_us(first), to_us(last), withscores=True)
            pipe.zrevrangebyscore(key, f"({to_us(first)}", "-inf", 0, 1, withscores=True)
            inside, before = pipe.execute()
            rows = [(int(text_of(m)), int(score)) for m, score in [*before, *inside]]
            pipe = self._client.pipeline(transaction=False)
            for run_id, _ in rows:
                pipe.hmget(self._keys.run(run_id), list(_RUN_FIELDS))
            replies = pipe.execute()
        return [
            _entry(run_id, from_us(score), reply)
            for (run_id, score), reply in zip(rows, replies, strict=True)
        ]


def _entry(run_id: int, at: datetime, reply: list[bytes | None]) -> _Entry:
    status, result, created, _, details = (text_of(v) if v is not None else None for v in reply)
    if status is None or created is None:
        return _Entry(run_id, at, exists=False)
    data = json.loads(details or "{}")
    last_at = data.get("last_at")
    planned_for = data.get("planned_for")
    window_id = data.get("window_id", data.get("deferred_by"))
    return _Entry(
        run_id,
        at,
        exists=True,
        status=status,
        result=result or None,
        created=parse_instant(created),
        reason=data.get("skip_reason"),
        last_at=parse_instant(last_at) if isinstance(last_at, str) else None,
        backfill=data.get("backfill") is True,
        window_id=window_id if isinstance(window_id, int) else None,
        planned_for=parse_instant(planned_for) if isinstance(planned_for, str) else None,
    )


HEALTH_WINDOW_DAYS = 7
HEALTH_WINDOW_OCCURRENCES = 100
ON_TIME_MS = 1000
"""A fire later than this after its instant counts as late."""


@dataclass(frozen=True, slots=True)
class Health:
    """A schedule's recent record: its last ``HEALTH_WINDOW_OCCURRENCES`` occurrences within
    ``HEALTH_WINDOW_DAYS`` days."""

    since: datetime  # the window's start
    occurrences: int
    last_fire: tuple[datetime, Happened] | None
    fired_on_time: int
    fired_late: int
    skipped: dict[str, int]
    missed: int
    runs: dict[str, int]  # passed, failed, error, aborted, unfinished
    lateness_ms: dict[str, int | None]  # p50, p99, max
    consecutive_failures: int


def health_of(occurrences: Sequence[tuple[datetime, Happened]], *, since: datetime) -> Health:
    """The health figures of classified occurrences (oldest first). Pure."""
    skipped: dict[str, int] = {}
    runs = dict.fromkeys(("passed", "failed", "error", "aborted", "unfinished"), 0)
    lateness: list[int] = []
    on_time = late = missed = 0
    fired = [(at, h) for at, h in occurrences if h.outcome == FIRED]
    for _, happened in occurrences:
        if happened.outcome == SKIPPED:
            reason = happened.reason or "unknown"
            skipped[reason] = skipped.get(reason, 0) + 1
        elif happened.outcome == MISSED:
            missed += 1
    for _, happened in fired:
        if happened.reason == BACKFILL:  # run when asked, after the fact: neither on time nor late
            runs[_run_bucket(happened)] += 1
            continue
        assert happened.lateness_ms is not None
        lateness.append(happened.lateness_ms)
        if happened.lateness_ms <= ON_TIME_MS:
            on_time += 1
        else:
            late += 1
        runs[_run_bucket(happened)] += 1
    failures = 0
    for _, happened in reversed(fired):
        bucket = _run_bucket(happened)
        if bucket == "unfinished":
            continue
        if bucket == "passed":
            break
        failures += 1
    lateness.sort()
    return Health(
        since=since,
        occurrences=len(occurrences),
        last_fire=fired[-1] if fired else None,
        fired_on_time=on_time,
        fired_late=late,
        skipped=skipped,
        missed=missed,
        runs=runs,
        lateness_ms={
            "p50": _rank(lateness, 0.50),
            "p99": _rank(lateness, 0.99),
            "max": lateness[-1] if lateness else None,
        },
        consecutive_failures=failures,
    )


def _run_bucket(happened: Happened) -> str:
    if happened.status == Status.ABORTED:
        return "aborted"
    if happened.status != Status.COMPLETED:
        return "unfinished"
    return happened.result if happened.result in ("passed", "failed", "error") else "error"


def _rank(ordered: list[int], q: float) -> int | None:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
