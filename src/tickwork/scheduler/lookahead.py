"""Fires planned and encoded ahead of their instant, so that at the instant only the commit
remains.

Reading, planning and encoding cost the leader ~60 µs per fire, which at 10,000 simultaneous
occurrences is most of a second after the instant. So while idle the leader does that work
for schedules due within the look-ahead window and keeps the encoded entries in memory, in a
heap of instants; at the instant it sends them as they are, stamped with the commit time
(``Firer.fire_ahead``). Nothing is written ahead: the run ids are reserved, the rest waits
here. The fire commit's checks are the same, so an entry encoded ahead is only ever an
optimisation. It is dropped for the ordinary path to settle the schedule when:

- its schedule changed (the commit finds another version: a conflict);
- its load test is still running under overlap ``skip`` (the commit finds it ``busy``);
- the instant is too far gone for the plan to hold: its following occurrence is due too,
  or its catch-up window has passed (``take`` leaves it out);
- the leader lost its lease (``discard``: it may be stale by the next term).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime, timedelta

from tickwork.core.instants import to_ms, to_us
from tickwork.scheduler.planning import Planner
from tickwork.store import Store
from tickwork.store.fires import Advance, FireEntry

STEP = 250
"""Schedules planned per look-ahead step: small, so a step (~15 ms) never holds up a fire."""
CAP = 150_000
"""Entries held ahead at most (~0.9 KB each: ~135 MB, inside the deploy files' 256 MiB
limit for a scheduler); beyond this the ordinary path takes the rest."""
GUARD_MS = 50
"""No look-ahead step starts this close to the earliest due instant."""


@dataclass(frozen=True, slots=True)
class Ahead:
    """A schedule's fire encoded ahead of its instant, and until when the plan holds: until
    its following occurrence, and within its catch-up window."""

    entry: FireEntry
    run_id: int
    load_test_id: int
    due: datetime  # the occurrence
    planned: datetime  # when it runs (its instant, plus the schedule's jitter)
    holds_until: datetime


class Lookahead:
    def __init__(
        self, store: Store, planner: Planner, *, window: timedelta, cap: int = CAP
    ) -> None:
        self._store = store
        self._planner = planner
        self._window = window
        self._cap = cap
        self._by_instant: dict[int, list[Ahead]] = {}  # due instant (µs) -> entries
        self._instants: list[int] = []  # heap of the keys of _by_instant
        self._schedules: dict[int, int] = {}  # schedule id -> its entry's instant (µs)
        self._cursor = (0, 0)  # due-index score and offset where the next step goes on

    def __len__(self) -> int:
        return len(self._schedules)

    def holds_due(self, schedule_id: int, *, now: datetime) -> bool:
        """Whether the schedule's fire is held here, encoded, for an instant that has come:
        the look-ahead commits it next (a schedule moved earlier meanwhile is not held so)."""
        at = self._schedules.get(schedule_id)
        # In the due index's unit: it lists a schedule from the first millisecond of its
        # instant, and the ordinary path, planning at a later clock read, would fire it.
        return at is not None and at // 1000 <= to_ms(now)

    def discard(self) -> None:
        """Forget everything encoded ahead."""
        self._by_instant.clear()
        self._instants.clear()
        self._schedules.clear()
        self._cursor = (0, 0)

    def prepare(self, *, now: datetime) -> int:
        """Plan and encode one step of schedules due within the window; how many due-index
        entries it looked at (0: nothing left to do ahead for now)."""
        if self._window <= timedelta(0) or len(self._schedules) >= self._cap:
            return 0
        now_ms = to_ms(now)
        earliest = self._store.due.earliest()
        if earliest is None or earliest - now_ms < GUARD_MS:
            return 0
        low, offset = self._cursor
        if low <= now_ms:
            low, offset = now_ms + 1, 0
        room = min(STEP, self._cap - len(self._schedules))  # never past the cap
        rows = self._store.due.window(low, to_ms(now + self._window), offset=offset, limit=room)
        for _, score in rows:
            low, offset = (low, offset + 1) if score == low else (score, 1)
        self._cursor = (low, offset)
        self._encode([sid for sid, _ in rows if sid not in self._schedules])
        return len(rows)

    def take(self, *, now: datetime, limit: int) -> list[Ahead]:
        """Up to ``limit`` entries whose instant has come, less those whose plan no longer
        holds at ``now`` (the ordinary path settles those)."""
        taken: list[Ahead] = []
        while self._instants and self._instants[0] <= to_us(now) and len(taken) < limit:
            at = self._instants[0]
            waiting, room = self._by_instant[at], limit - len(taken)
            taken += waiting[:room]
            if len(waiting) > room:
                self._by_instant[at] = waiting[room:]
            else:
                del self._by_instant[at]
                heapq.heappop(self._instants)
        for ahead in taken:
            self._schedules.pop(ahead.entry.schedule_id, None)
        return [ahead for ahead in taken if now < ahead.holds_until]

    def ready(self, *, now: datetime) -> bool:
        """Whether an entry's instant has come."""
        return bool(self._instants) and self._instants[0] <= to_us(now)

    def _encode(self, ids: list[int]) -> None:
        if not ids:
            return
        store, planner = self._store, self._planner
        records = store.schedules.read_many(ids)
        projects = store.load_tests.project_ids([r.load_test_id for r in records.values()])
        windows = store.windows.of_stacks(r.stack for r in records.values())
        plans = {}
        for sid, record in records.items():
            if record.next_at is None or record.deactivated:
                continue
            in_stack = windows[record.stack].windows
            fate = record.timing(record.next_at, in_stack)
            if fate.skipped_by is not None or fate.deferred_by is not None:
                continue  # a window decides: left to the ordinary path, at the instant
            decision = planner.plan(record, fate.planned, unfinished=False, windows=in_stack)
            if decision.fire == record.next_at and not decision.skips:
                plans[sid] = decision
        if not plans:
            return
        # Reserved now, so the commit needs no round trip; an entry dropped later leaves a
        # gap in the run ids, as an aborted transaction would.
        next_id = store.runs.reserve_ids(len(plans))
        for sid, decision in plans.items():
            record = records[sid]
            assert decision.fire is not None
            runs = planner.runs(
                record,
                decision,
                project_id=projects.get(record.load_test_id, 0),
                first_id=next_id,
                now=record.planned(decision.fire),
            )
            next_id += 1
            stack = windows[record.stack]
            due = None
            if decision.next_at is not None:
                due = record.timing(decision.next_at, stack.windows).planned
            advance = Advance(
                record,
                decision.fired_through,
                decision.next_at,
                tuple(runs),
                due=due,
                windows_version=stack.version,
            )
            entry = store.fires.encode(advance, ahead=True, overlap_check=record.overlap == "skip")
            planned = record.planned(decision.fire)
            holds_until = planned + planner.catch_up_of(record)
            if due is not None:
                holds_until = min(holds_until, due)
            at = to_us(planned)
            if at not in self._by_instant:
                self._by_instant[at] = []
                heapq.heappush(self._instants, at)
            ahead = Ahead(
                entry, runs[0][0].id, record.load_test_id, decision.fire, planned, holds_until
            )
            self._by_instant[at].append(ahead)
            self._schedules[sid] = at
