"""One fire batch: ask the core what is due, then commit it under the lease.

For a batch of due schedules the leader reads the schedules, plans each one with the pure
core (what fires, what is skipped and why, where the schedule moves), and hands the plan to
the store's fire script, which commits it atomically: only if the lease is still this
leader's, and for each schedule only if it is still the version the plan was made from
(see ``store/fires.py``). A paused old leader that wakes up commits nothing; a schedule
rewritten, deleted or fired meanwhile is left out of the batch and re-read on the next one.

Ahead of time: reading, planning and encoding cost the leader ~60 µs per fire, which at
10,000 simultaneous occurrences is most of a second after the instant. So while idle the
leader does that work for schedules due within the look-ahead window, and at the instant
sends the encoded batches as they are, stamped with the commit time. Nothing is written
ahead: the run ids are reserved, the rest waits in memory. The script's checks are the same,
so an entry encoded ahead is only ever an optimisation: when its schedule changed, its load
test is still running (overlap ``skip``), or the instant is too far gone for the plan made
ahead to hold, the entry is dropped and the schedule fires through the ordinary path.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rq import Queue

from tickwork.core.instants import to_ms, to_us
from tickwork.core.policies import Plan, Skip, plan
from tickwork.store import Lease, RunRecord, ScheduleRecord, Store
from tickwork.store.connection import text_of, translated
from tickwork.store.fires import Advance, Encoded
from tickwork.store.fires import Job as FireJob
from tickwork.store.runs import FINISHED, StatusEntry
from tickwork.store.schedules import decode as decode_schedule
from tickwork.worker.queue import BatchEnqueuer, fire_job_id

log = logging.getLogger("tickwork.scheduler")

Clock = Callable[[], datetime]

# Schedules planned per look-ahead step: small, so a step (~15 ms) never holds up a fire.
_AHEAD_STEP = 250
# Entries held ahead at most (~0.9 KB each: ~135 MB, inside the deploy files' 256 MiB limit
# for a scheduler); beyond this the ordinary path takes the rest.
_AHEAD_CAP = 150_000
# No look-ahead step starts this close to the earliest due instant.
_AHEAD_GUARD_MS = 50


@dataclass(frozen=True, slots=True)
class _Ahead:
    """A schedule's fire planned and encoded ahead of its instant, and when the plan holds:
    until its following occurrence, and within its catch-up window."""

    entry: Encoded
    run_id: int
    due: datetime
    holds_until: datetime


@dataclass
class BatchResult:
    fired: list[tuple[int, datetime]] = field(default_factory=list)  # (run id, occurrence)
    lags_s: list[float] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> occurrences
    conflicts: int = 0
    full: bool = False  # the batch was full: more may be due right now


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
    ) -> None:
        self._store = store
        self._queue = rq_queue
        self._jobs = BatchEnqueuer(rq_queue, prefix=store.keys.prefix)
        self._clock = clock
        self._catch_up = catch_up
        self._batch_size = batch_size
        self._lookahead = lookahead
        self._ahead: dict[int, list[_Ahead]] = {}  # due instant (µs) -> entries
        self._instants: list[int] = []  # heap of the keys of _ahead
        self._ahead_ids: set[int] = set()
        self._cursor = (0, 0)  # due-index score and offset where look-ahead goes on

    @property
    def ahead(self) -> int:
        """Fires planned and encoded ahead, not yet committed."""
        return len(self._ahead_ids)

    def discard_ahead(self) -> None:
        """Forget the work done ahead (on losing the lease: it may be stale by the next)."""
        self._ahead.clear()
        self._instants.clear()
        self._ahead_ids.clear()
        self._cursor = (0, 0)

    def prepare(self) -> int:
        """Plan and encode one step of schedules due within the look-ahead window; how many
        due-index entries it looked at (0: nothing left to do ahead for now)."""
        if self._lookahead <= timedelta(0) or len(self._ahead_ids) >= _AHEAD_CAP:
            return 0
        keys, client = self._store.keys, self._store.client
        now = self._clock()
        now_ms = to_ms(now)
        with translated():
            earliest = client.zrange(keys.due, 0, 0, withscores=True)
            if not earliest or float(earliest[0][1]) - now_ms < _AHEAD_GUARD_MS:
                return 0
            low, offset = self._cursor
            if low <= now_ms:
                low, offset = now_ms + 1, 0
            rows: list[tuple[bytes, float]] = client.zrangebyscore(
                keys.due,
                low,
                to_ms(now + self._lookahead),
                start=offset,
                num=_AHEAD_STEP,
                withscores=True,
            )  # type: ignore[assignment]  # redis-py types replies loosely
            for _, score in rows:
                low, offset = (low, offset + 1) if int(score) == low else (int(score), 1)
            self._cursor = (low, offset)
            ids = [int(text_of(raw)) for raw, _ in rows]
            self._encode_ahead([sid for sid in ids if sid not in self._ahead_ids])
        return len(rows)

    def _encode_ahead(self, ids: list[int]) -> None:
        if not ids:
            return
        records = self._read(ids)
        projects = self._project_ids([r.load_test_id for r in records.values()])
        plans = {}
        for sid, record in records.items():
            if record.next_at is None or record.deactivated:
                continue
            decision = self._plan(record, record.next_at, unfinished=False)
            if decision.fire == record.next_at and not decision.skips:
                plans[sid] = decision
        if not plans:
            return
        # Reserved now, so the commit needs no round trip; an entry dropped later leaves a
        # gap in the run ids, as an aborted transaction would.
        next_id = self._store.runs.reserve_ids(len(plans))
        for sid, decision in plans.items():
            record = records[sid]
            assert decision.fire is not None
            runs, next_id = self._runs(
                record, decision, projects.get(record.load_test_id, 0), next_id, decision.fire
            )
            advance = Advance(record, decision.fired_through, decision.next_at, tuple(runs))
            entry = self._store.fires.encode(advance, overlap_check=record.overlap == "skip")
            at = to_us(decision.fire)
            if at not in self._ahead:
                self._ahead[at] = []
                heapq.heappush(self._instants, at)
            holds_until = decision.fire + self._catch_up_of(record)
            if decision.next_at is not None:
                holds_until = min(holds_until, decision.next_at)
            self._ahead[at].append(_Ahead(entry, runs[0][0].id, decision.fire, holds_until))
            self._ahead_ids.add(sid)

    def fire_ahead(self, lease: Lease) -> BatchResult | None:
        """Commit one batch of fires encoded ahead whose instant has come; None when none
        has. LeaseLost when the lease is not ours."""
        now = self._clock()
        batch: list[_Ahead] = []
        while self._instants and self._instants[0] <= to_us(now) and len(batch) < self._batch_size:
            at = self._instants[0]
            waiting, room = self._ahead[at], self._batch_size - len(batch)
            batch += waiting[:room]
            if len(waiting) > room:
                self._ahead[at] = waiting[room:]
            else:
                del self._ahead[at]
                heapq.heappop(self._instants)
        if not batch:
            return None
        self._ahead_ids.difference_update(a.entry.schedule_id for a in batch)
        # A plan made ahead holds until the schedule's next occurrence and within its
        # catch-up window; past that the ordinary path settles what was missed.
        batch = [a for a in batch if now < a.holds_until]
        result = BatchResult(full=True)  # the ordinary path looks right after
        if not batch:
            return result
        target = self._jobs.target()
        stamp = self._clock()
        outcome = self._store.fires.commit_encoded(
            lease, [a.entry for a in batch], target, stamp=stamp
        )
        self._resettle(outcome.repeats)
        left_out = outcome.conflicts | outcome.busy | outcome.repeats
        for ahead in batch:
            if ahead.entry.schedule_id not in left_out:
                result.fired.append((ahead.run_id, ahead.due))
                result.lags_s.append((stamp - ahead.due).total_seconds())
        # Busy ones are not conflicts: the ordinary path records their overlap skip next.
        result.conflicts = len(outcome.conflicts)
        return result

    def fire_due(self, lease: Lease) -> BatchResult:
        """Commit one batch of due schedules. LeaseLost when the lease is not ours."""
        keys = self._store.keys
        client = self._store.client
        with translated():
            self._queue.get_redis_server_version()  # RQ reads it lazily: once, up front
            now = self._clock()
            ids = [
                int(text_of(raw))
                for raw in client.zrangebyscore(
                    keys.due, "-inf", to_ms(now), start=0, num=self._batch_size
                )
            ]
            if not ids:
                return BatchResult()
            result = self._commit(lease, ids)
        # A full batch, or schedules that changed under it: look again at once.
        result.full = len(ids) == self._batch_size or result.conflicts > 0
        return result

    def _commit(self, lease: Lease, ids: list[int]) -> BatchResult:
        keys, client = self._store.keys, self._store.client
        records = self._read(ids)
        previous = self._unfinished_load_tests([r for r in records.values() if r.overlap == "skip"])
        projects = self._project_ids([r.load_test_id for r in records.values()])
        now = self._clock()
        plans = {
            sid: self._plan(record, now, record.load_test_id in previous)
            for sid, record in records.items()
            if record.next_at is not None and record.next_at <= now
        }
        runs_needed = sum(len(p.skips) + (p.fire is not None) for p in plans.values())
        next_id = self._store.runs.reserve_ids(runs_needed)
        result = BatchResult()
        advances = []
        for sid, decision in plans.items():
            record = records[sid]
            runs, next_id = self._runs(
                record, decision, projects.get(record.load_test_id, 0), next_id, now
            )
            advances.append(Advance(record, decision.fired_through, decision.next_at, tuple(runs)))
        stale = [sid for sid in ids if sid not in records]
        if stale:
            client.zrem(keys.due, *(str(sid) for sid in stale))  # nothing left to fire
        outcome = self._store.fires.commit(lease, advances, self._jobs.target())
        self._resettle(outcome.repeats)
        conflicts = outcome.conflicts | outcome.repeats
        for advance in advances:
            if advance.record.id in conflicts:
                continue
            for run, job in advance.runs:
                if job is not None:
                    assert run.scheduled_for is not None
                    result.fired.append((run.id, run.scheduled_for))
                    result.lags_s.append((now - run.scheduled_for).total_seconds())
                else:
                    reason = str(run.details["skip_reason"])
                    more = int(run.details.get("more", 0))
                    result.skipped[reason] = result.skipped.get(reason, 0) + 1 + more
        result.conflicts = len(conflicts)
        return result

    def _resettle(self, repeats: frozenset[int]) -> None:
        """Schedules whose plan repeated an occurrence the commit had already settled: the
        commit refused it; move them past it, and say so loudly (something else is wrong)."""
        for sid in sorted(repeats):
            log.error("fire_repeat_refused", extra={"schedule_id": sid})
            self._store.schedules.resettle(sid)

    def _catch_up_of(self, record: ScheduleRecord) -> timedelta:
        if record.catch_up_s is not None:
            return timedelta(seconds=record.catch_up_s)
        return self._catch_up

    def _plan(self, record: ScheduleRecord, now: datetime, unfinished: bool) -> Plan:
        assert record.next_at is not None
        return plan(
            record.schedule,
            due_at=record.next_at,
            now=now,
            catch_up=self._catch_up_of(record),
            overlap=record.overlap,
            previous_unfinished=unfinished,
        )

    def _runs(
        self, record: ScheduleRecord, decision: Plan, project_id: int, next_id: int, now: datetime
    ) -> tuple[list[tuple[RunRecord, FireJob | None]], int]:
        """The run records of a plan (skipped ones first), with the fired run's job."""
        runs: list[tuple[RunRecord, FireJob | None]] = []
        for skip in decision.skips:
            runs.append((self._skipped_run(next_id, record, project_id, skip, now), None))
            next_id += 1
        if decision.fire is not None:
            job_id = fire_job_id(record.id, decision.fire)
            run = RunRecord(
                id=next_id,
                stack=record.stack,
                load_test_id=record.load_test_id,
                project_id=project_id,
                created=now,
                status_history=(StatusEntry("created", now),),
                schedule_id=record.id,
                scheduled_for=decision.fire,
                job_id=job_id,
            )
            runs.append((run, self._jobs.job(run_id=run.id, job_id=job_id)))
            next_id += 1
        return runs, next_id

    @staticmethod
    def _skipped_run(
        run_id: int, record: ScheduleRecord, project_id: int, skip: Skip, now: datetime
    ) -> RunRecord:
        message = f"occurrence skipped: {skip.reason}"
        if skip.more:
            message += f" (and {skip.more} later occurrences, the last at {skip.last_at})"
        return RunRecord(
            id=run_id,
            stack=record.stack,
            load_test_id=record.load_test_id,
            project_id=project_id,
            created=now,
            status="skipped",
            status_history=(StatusEntry("skipped", now, message=message),),
            ended=now,
            schedule_id=record.id,
            scheduled_for=skip.occurrence_at,
            details={"skip_reason": skip.reason, "more": skip.more},
        )

    def _read(self, ids: list[int]) -> dict[int, ScheduleRecord]:
        pipe = self._store.client.pipeline(transaction=False)
        for sid in ids:
            pipe.hgetall(self._store.keys.schedule(sid))
        rows = pipe.execute()
        return {sid: decode_schedule(row) for sid, row in zip(ids, rows, strict=True) if row}

    def _unfinished_load_tests(self, records: list[ScheduleRecord]) -> set[int]:
        """Load tests (of ``skip``-overlap schedules) whose latest run has not finished."""
        if not records:
            return set()
        client, keys = self._store.client, self._store.keys
        latest = client.mget([keys.load_test_last_run(r.load_test_id) for r in records])
        pipe = client.pipeline(transaction=False)
        owners = []
        for record, run_id in zip(records, latest, strict=True):
            if run_id is not None:
                owners.append(record.load_test_id)
                pipe.hget(keys.run(int(text_of(run_id))), "status")
        statuses = pipe.execute()
        return {
            owner
            for owner, status in zip(owners, statuses, strict=True)
            if status is not None and text_of(status) not in FINISHED
        }

    def _project_ids(self, load_test_ids: list[int]) -> dict[int, int]:
        pipe = self._store.client.pipeline(transaction=False)
        for load_test_id in load_test_ids:
            pipe.hget(self._store.keys.load_test(load_test_id), "project_id")
        return {
            lt: int(text_of(raw))
            for lt, raw in zip(load_test_ids, pipe.execute(), strict=True)
            if raw is not None
        }
