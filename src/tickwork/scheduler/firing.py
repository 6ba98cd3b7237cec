"""One fire batch: ask the core what is due, then commit it under the lease.

For a batch of due schedules the leader WATCHes the lease key and every schedule's key,
checks it still holds the lease, reads the schedules, plans each one with the pure core, and
commits in one MULTI/EXEC: the run records, their RQ jobs, skipped-occurrence records and
each schedule's new high-water mark and due-index entry. EXEC is void if the lease changed
or expired, or if any schedule was rewritten, deleted, or fired by another process since the
WATCH: a paused old leader that wakes up cannot commit anything, and no occurrence is
committed twice. A void batch is re-read and re-planned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis
from rq import Queue

from tickwork.core.instants import to_ms
from tickwork.core.policies import Plan, Skip, plan
from tickwork.errors import LeaseLost
from tickwork.store import Lease, RunRecord, ScheduleRecord, Store
from tickwork.store.connection import text_of, translated
from tickwork.store.runs import FINISHED, StatusEntry
from tickwork.store.schedules import decode as decode_schedule
from tickwork.worker.queue import BatchEnqueuer, JobBatch, fire_job_id

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
            self._queue.get_redis_server_version()  # RQ reads it lazily; not inside MULTI
            while True:
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
                if result is not None:
                    result.full = len(ids) == self._batch_size
                    return result
                # Someone changed a schedule of the batch (or renewed the lease) meanwhile.

    def _commit(self, lease: Lease, ids: list[int]) -> BatchResult | None:
        keys, client = self._store.keys, self._store.client
        lease_key = keys.lease(lease.name)
        with client.pipeline() as pipe:
            try:
                pipe.watch(lease_key, *(keys.schedule(i) for i in ids))
                if pipe.get(lease_key) != lease.value.encode():
                    raise LeaseLost(f"lease term {lease.term} is no longer held")
                records = self._read(ids)
                previous = self._unfinished_load_tests(
                    [r for r in records.values() if r.overlap == "skip"]
                )
                projects = self._project_ids([r.load_test_id for r in records.values()])
                now = self._clock()
                plans = {
                    sid: self._plan(record, now, record.load_test_id in previous)
                    for sid, record in records.items()
                    if record.next_at is not None and record.next_at <= now
                }
                runs_needed = sum(len(p.skips) + (p.fire is not None) for p in plans.values())
                first_id = int(client.incrby(keys.ids("run"), runs_needed)) - runs_needed + 1
                pipe.multi()
                jobs = self._jobs.begin(pipe)
                result = BatchResult()
                next_id = first_id
                for sid in ids:
                    record = records.get(sid)
                    if record is None:
                        pipe.zrem(keys.due, str(sid))  # a stale entry: nothing to fire
                        continue
                    if sid not in plans:
                        continue
                    next_id = self._queue_plan(
                        pipe,
                        jobs,
                        record=record,
                        decision=plans[sid],
                        project_id=projects.get(record.load_test_id, 0),
                        next_id=next_id,
                        now=now,
                        result=result,
                    )
                pipe.execute()
            except redis.WatchError:
                return None
        for reason, count in result.skipped.items():
            log.info("occurrences_skipped", extra={"reason": reason, "count": count})
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

    def _queue_plan(
        self,
        pipe: redis.client.Pipeline,
        jobs: JobBatch,
        *,
        record: ScheduleRecord,
        decision: Plan,
        project_id: int,
        next_id: int,
        now: datetime,
        result: BatchResult,
    ) -> int:
        for skip in decision.skips:
            self._store.runs.queue_create(
                pipe, self._skipped_run(next_id, record, project_id, skip, now)
            )
            result.skipped[skip.reason] = result.skipped.get(skip.reason, 0) + 1 + skip.more
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
            self._store.runs.queue_create(pipe, run)
            jobs.add(run_id=run.id, job_id=job_id)
            result.fired.append((run.id, decision.fire))
            result.lags_s.append((now - decision.fire).total_seconds())
            next_id += 1
        self._store.schedules.queue_advance(
            pipe, record, fired_through=decision.fired_through, next_at=decision.next_at
        )
        return next_id

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
