"""One fire batch: ask the core what is due, then commit it under the lease.

For a batch of due schedules the leader reads the schedules, plans each one with the pure
core (what fires, what is skipped and why, where the schedule moves), and hands the plan to
the store's fire script, which commits it atomically: only if the lease is still this
leader's, and for each schedule only if it is still the version the plan was made from
(see ``store/fires.py``). A paused old leader that wakes up commits nothing; a schedule
rewritten, deleted or fired meanwhile is left out of the batch and re-read on the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rq import Queue

from tickwork.core.instants import to_ms
from tickwork.core.policies import Plan, Skip, plan
from tickwork.errors import LeaseLost
from tickwork.store import Lease, RunRecord, ScheduleRecord, Store
from tickwork.store.connection import text_of, translated
from tickwork.store.fires import Advance, LeaseNotHeld
from tickwork.store.fires import Job as FireJob
from tickwork.store.runs import FINISHED, StatusEntry
from tickwork.store.schedules import decode as decode_schedule
from tickwork.worker.queue import BatchEnqueuer, fire_job_id

log = logging.getLogger("tickwork.scheduler")

Clock = Callable[[], datetime]


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
    ) -> None:
        self._store = store
        self._queue = rq_queue
        self._jobs = BatchEnqueuer(rq_queue, prefix=store.keys.prefix)
        self._clock = clock
        self._catch_up = catch_up
        self._batch_size = batch_size

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
        next_id = int(client.incrby(keys.ids("run"), runs_needed)) - runs_needed + 1
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
        try:
            conflicts = self._store.fires.commit(lease, advances, self._jobs.target())
        except LeaseNotHeld as exc:
            raise LeaseLost(f"lease term {lease.term} is no longer held") from exc
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

    def _plan(self, record: ScheduleRecord, now: datetime, unfinished: bool) -> Plan:
        assert record.next_at is not None
        catch_up = (
            timedelta(seconds=record.catch_up_s)
            if record.catch_up_s is not None
            else self._catch_up
        )
        return plan(
            record.schedule,
            due_at=record.next_at,
            now=now,
            catch_up=catch_up,
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
