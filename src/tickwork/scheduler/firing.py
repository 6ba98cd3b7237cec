"""One fire batch: ask the core what is due, then commit it under the lease.

For a batch of due schedules the leader reads the schedules, plans each one with the pure
core (what fires, what is skipped and why, where the schedule moves; ``planning.py``), and
hands the plan to the store's fire commit, which writes it atomically: only if the lease is
still this leader's, for each schedule only if it is still the version the plan was made
from, and never for an occurrence already committed (``store/scripts/commit_fires.lua``).
A paused old leader that wakes up commits nothing; a schedule rewritten, deleted or fired
meanwhile is left out of the batch and re-read on the next one.

Fires planned and encoded ahead of their instant (``lookahead.py``) are committed through
the same commit, stamped with the moment they are sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rq import Queue

from tickwork.scheduler.lookahead import CAP as LOOKAHEAD_CAP
from tickwork.scheduler.lookahead import Lookahead
from tickwork.scheduler.planning import Planner, runs_needed
from tickwork.store import Lease, Store
from tickwork.store.fires import Advance, CommitOutcome
from tickwork.store.queue import JobShape

log = logging.getLogger("tickwork.scheduler")

Clock = Callable[[], datetime]


@dataclass
class BatchResult:
    fired: list[tuple[int, datetime]] = field(default_factory=list)  # (run id, occurrence)
    lags_s: list[float] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> occurrences
    conflicts: int = 0
    full: bool = False  # the batch was full: more may be due right now
    load_tests: set[int] = field(default_factory=set)  # those that got runs


class Firer:
    def __init__(
        self,
        store: Store,
        rq_queue: Queue,
        *,
        clock: Clock,
        catch_up: timedelta,
        batch_size: int = 500,
        lookahead: timedelta = timedelta(0),
        lookahead_cap: int = LOOKAHEAD_CAP,
    ) -> None:
        self._store = store
        self._jobs = JobShape(rq_queue, prefix=store.prefix)
        self._planner = Planner(self._jobs, catch_up=catch_up)
        self._lookahead = Lookahead(store, self._planner, window=lookahead, cap=lookahead_cap)
        self._clock = clock
        self._batch_size = batch_size

    @property
    def ahead(self) -> int:
        """Fires planned and encoded ahead, not yet committed."""
        return len(self._lookahead)

    def discard_ahead(self) -> None:
        """Forget the work done ahead (on losing the lease: it may be stale by the next)."""
        self._lookahead.discard()

    def prepare(self) -> int:
        """One look-ahead step; how many due-index entries it looked at (0: none to do)."""
        return self._lookahead.prepare(now=self._clock())

    def fire_ahead(self, lease: Lease) -> BatchResult | None:
        """Commit one batch of fires encoded ahead whose instant has come; None when none
        has. LeaseLost when the lease is not ours."""
        now = self._clock()
        if not self._lookahead.ready(now=now):
            return None
        batch = self._lookahead.take(now=now, limit=self._batch_size)
        result = BatchResult(full=True)  # the ordinary path looks right after
        if not batch:
            return result
        stamp = self._clock()
        outcome = self._store.fires.commit(
            lease, [a.entry for a in batch], self._jobs.template(), stamp=stamp
        )
        self._resettle(outcome)
        left_out = outcome.conflicts | outcome.busy | outcome.repeats
        for ahead in batch:
            if ahead.entry.schedule_id not in left_out:
                result.load_tests.add(ahead.load_test_id)
                result.fired.append((ahead.run_id, ahead.due))
                result.lags_s.append((stamp - ahead.planned).total_seconds())
        # Busy ones are not conflicts: the ordinary path records their overlap skip next.
        result.conflicts = len(outcome.conflicts)
        return result

    def resume_due(self, lease: Lease) -> list[int]:
        """Re-activate the paused schedules whose resume_at has come, each under the lease
        and checked against the version read (so once, whoever leads); their ids.
        LeaseLost when the lease is not ours."""
        schedules = self._store.schedules
        resumed = []
        for sid in schedules.resumes_due(now=self._clock(), limit=self._batch_size):
            record = schedules.get_any(sid)
            done = schedules.resume(lease, record) if record is not None else False
            if done:
                resumed.append(sid)
            elif done is False:
                schedules.forget_resume(sid)
            # None: changed since it was read; the next loop reads it again
        return resumed

    def fire_due(self, lease: Lease) -> BatchResult:
        """Commit one batch of due schedules. LeaseLost when the lease is not ours."""
        now = self._clock()
        listed = self._store.due.due(now=now, limit=self._batch_size)
        # Those encoded ahead for an instant that has come are the look-ahead's to commit,
        # at once (its clock read was a moment earlier): here they would only conflict.
        ids = [sid for sid in listed if not self._lookahead.holds_due(sid, now=now)]
        if not ids:
            return BatchResult(full=len(listed) == self._batch_size)
        result = self._commit(lease, ids)
        # A full batch, or schedules that changed under it: look again at once.
        result.full = len(listed) == self._batch_size or result.conflicts > 0
        return result

    def _commit(self, lease: Lease, ids: list[int]) -> BatchResult:
        store, planner = self._store, self._planner
        records = store.schedules.read_many(ids)
        store.due.forget(sid for sid in ids if sid not in records)  # nothing left to fire
        unfinished = store.runs.unfinished(
            [r.load_test_id for r in records.values() if r.overlap == "skip"]
        )
        projects = store.load_tests.project_ids([r.load_test_id for r in records.values()])
        windows = store.windows.of_stacks(r.stack for r in records.values())
        now = self._clock()
        plans, advances = {}, []
        for sid, record in records.items():
            if record.next_at is None:
                continue
            stack = windows[record.stack]
            fate = record.timing(record.next_at, stack.windows)
            if fate.planned > now:
                # A window defers it (created since its due score was written): look again
                # at the window's end, through the commit so that the move is fenced too.
                advances.append(
                    Advance(
                        record,
                        record.fired_through,
                        record.next_at,
                        due=fate.planned,
                        windows_version=stack.version,
                    )
                )
                continue
            unfinished_now = record.load_test_id in unfinished
            plans[sid] = planner.plan(record, now, unfinished=unfinished_now, windows=stack.windows)
        next_id = store.runs.reserve_ids(sum(runs_needed(p) for p in plans.values()))
        for sid, decision in plans.items():
            record = records[sid]
            stack = windows[record.stack]
            runs = planner.runs(
                record,
                decision,
                project_id=projects.get(record.load_test_id, 0),
                first_id=next_id,
                now=now,
            )
            next_id += len(runs)
            due = None
            if decision.next_at is not None:
                due = record.timing(decision.next_at, stack.windows).planned
            advances.append(
                Advance(
                    record,
                    decision.fired_through,
                    decision.next_at,
                    tuple(runs),
                    due=due,
                    windows_version=stack.version,
                )
            )
        entries = [store.fires.encode(advance, ahead=False) for advance in advances]
        outcome = store.fires.commit(lease, entries, self._jobs.template())
        self._resettle(outcome)
        left_out = outcome.conflicts | outcome.repeats
        result = BatchResult(conflicts=len(left_out))
        for advance in advances:
            if advance.record.id in left_out:
                continue
            if advance.runs:
                result.load_tests.add(advance.record.load_test_id)
            for run, job in advance.runs:
                if job is not None:
                    assert run.scheduled_for is not None
                    result.fired.append((run.id, run.scheduled_for))
                    planned = plans[advance.record.id].fate
                    at = run.scheduled_for if planned is None else planned.planned
                    result.lags_s.append((now - at).total_seconds())
                else:
                    reason = str(run.details["skip_reason"])
                    more = int(run.details.get("more", 0))
                    result.skipped[reason] = result.skipped.get(reason, 0) + 1 + more
        return result

    def _resettle(self, outcome: CommitOutcome) -> None:
        """Schedules whose plan repeated an occurrence the commit had already settled: the
        commit refused it; move them past it, and say so loudly (something else is wrong)."""
        for sid in sorted(outcome.repeats):
            log.error("fire_repeat_refused", extra={"schedule_id": sid})
            self._store.schedules.resettle(sid)
