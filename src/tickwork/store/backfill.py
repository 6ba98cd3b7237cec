"""Backfill: runs for a schedule's past occurrences that have none, each created at most once.

    backfill  one transaction WATCHing the schedule's hash and its ledger (and, for overlap
              ``skip``, the load test's waiting line, the run it waits for and its last_run):
              read the schedule and what the ledger holds for each occurrence of the window,
              mark each, then in one MULTI create a run for each that may have one (the run,
              its ledger entry, its job or its place in the line) and the audit entry. The
              ledger entry is what makes the occurrence taken: a second request, concurrent
              or repeated (a client retrying its POST), finds its EXEC void or the entry
              there, reads again, and answers ``already_has_run``. A fire commit or retention
              in between voids it the same way (both write the schedule's hash or ledger).
    feed      the leader's step: for each load test with a line, once the run its head waits
              for has ended (or is gone), pop the head and queue its job, in one MULTI
              WATCHing the line and that run: two feeders never queue one run twice.

Marks, first match wins:

    already_has_run   the ledger has a run of it (fired, backfilled before, or since deleted)
    already_skipped   the ledger records it skipped (missed, overlap, ...), with the reason
    forgotten         at or before what retention removed: a run of it may have gone with it
    pending           after what the scheduler has settled, and the scheduler will settle it:
                      the schedule is active, or its pause ends (resume_at) at or before it
    would_run         anything else (it passed while paused; or, never expected, missed):
                      ``created`` once its run is

Overlap ``allow`` queues every job at once. ``skip`` runs them one at a time: the first job
is queued now only if no line waits and the load test's latest run has ended; the rest wait
in {p}:backfill:{lt} behind {p}:backfill:{lt}:current, the run whose end releases the next.
A waiting run is ``created`` with no job yet and is not in {p}:unclaimed (the strand check
would end it as lost); it enters it when its job is queued. Each new run becomes its load
test's last_run (``Runs.queue_create``), so the schedule's own fires under overlap ``skip``
are recorded skipped (overlap) until the last backfilled run has ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import redis
from redis.client import Pipeline
from rq import Queue

from tickwork.core.instants import format_instant, to_us
from tickwork.core.lifecycle import Status, is_terminal
from tickwork.core.runs import RunRecord
from tickwork.errors import Conflict, NotFound
from tickwork.store.audit import Actor
from tickwork.store.connection import text_of, translated
from tickwork.store.keys import Keys
from tickwork.store.ledger import DELETED, FIRED, SKIPPED, Happened, Ledger
from tickwork.store.queue import backfill_job_id, enqueue_run, queue
from tickwork.store.runs import Runs
from tickwork.store.schedules import ScheduleRecord, Schedules, decode, same_timing
from tickwork.store.transactions import transact

WOULD_RUN, CREATED, ALREADY_HAS_RUN, ALREADY_SKIPPED, PENDING, FORGOTTEN = (
    "would_run",
    "created",
    "already_has_run",
    "already_skipped",
    "pending",
    "forgotten",
)


@dataclass(frozen=True, slots=True)
class Marked:
    """One occurrence of the window and what a backfill does (or did) with it."""

    instant: datetime
    mark: str
    run_id: int | None = None
    reason: str | None = None  # already_skipped: why


@dataclass(frozen=True, slots=True)
class BackfillResult:
    overlap: str  # the overlap its runs follow
    items: tuple[Marked, ...]


@dataclass(frozen=True, slots=True)
class _Line:
    """Where a backfill's runs of a load test go under overlap ``skip``."""

    queue_now: bool  # the first run's job is queued now (nothing runs, nothing waits)
    current: int | None  # the run the line waits for, to record (None: keep the one there)


_DROPPED = -1
"""``_release``: the head was dropped (it ended while waiting); look at the next one."""


class Backfills:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        runs: Runs,
        schedules: Schedules,
        ledger: Ledger,
    ) -> None:
        self._client = client
        self._keys = keys
        self._runs = runs
        self._schedules = schedules
        self._ledger = ledger

    def backfill(
        self,
        validated: ScheduleRecord,
        instants: Sequence[datetime],
        *,
        window: tuple[datetime, datetime],
        overlap: str | None,
        dry_run: bool,
        rq_queue: Queue,
        actor: Actor,
        now: datetime,
    ) -> BackfillResult:
        """Mark each of ``instants`` (the occurrences of ``window`` on ``validated``'s timing)
        and, unless ``dry_run``, create a run for each that may have one; ``overlap`` None:
        the schedule's own. NotFound when the schedule is gone; Conflict when its timing
        changed since ``validated`` was read (its occurrences are no longer these)."""
        keys = self._keys
        schedule_key = keys.schedule(validated.id)
        if not dry_run:
            with translated():
                rq_queue.get_redis_server_version()  # RQ reads it lazily; not inside MULTI

        def attempt(pipe: Pipeline) -> BackfillResult:
            fields = pipe.hgetall(schedule_key)
            record = decode(fields) if fields else None
            if record is None or (record.stack, record.dialect) != (validated.stack, "k6"):
                raise NotFound(f"Schedule {validated.id} not found.")
            if not same_timing(record.schedule, validated.schedule) or (
                record.since != validated.since
            ):
                raise Conflict(
                    f"Schedule {record.id} changed its timing during the backfill; ask again."
                )
            used = overlap or record.overlap
            marks = [
                _mark(record, instant, happened)
                for instant, happened in zip(
                    instants, self._ledger.happened(record, instants), strict=True
                )
                if happened is not None
            ]
            wanted = [m for m in marks if m.mark == WOULD_RUN]
            if dry_run or not wanted:
                return BackfillResult(used, tuple(marks))
            project = pipe.hget(keys.load_test(record.load_test_id), "project_id")
            if project is None:
                raise NotFound(f"Schedule {validated.id} not found.")  # its load test is gone
            line = self._line(pipe, record.load_test_id) if used == "skip" else None
            first_id = self._runs.reserve_ids(len(wanted))
            runs = [
                RunRecord.backfilled(
                    run_id=first_id + n,
                    stack=record.stack,
                    load_test_id=record.load_test_id,
                    project_id=int(text_of(project)),
                    schedule_id=record.id,
                    occurrence_at=m.instant,
                    job_id=backfill_job_id(record.id, m.instant),
                    now=now,
                )
                for n, m in enumerate(wanted)
            ]
            pipe.multi()
            for run, m in zip(runs, wanted, strict=True):
                self._runs.queue_create(pipe, run)
                # the entry that makes the occurrence taken, for every later request
                pipe.zadd(keys.schedule_ledger(record.id), {str(run.id): to_us(m.instant)})
            if line is None:
                for run in runs:
                    self._enqueue(pipe, rq_queue, run)
            else:
                self._queue_line(pipe, record.load_test_id, runs, line, rq_queue)
            start, end = window
            self._schedules.queue_audit(
                pipe,
                record,
                "backfilled",
                actor=actor,
                at=now,
                note=f"{len(runs)} runs for the occurrences from {format_instant(start)} "
                f"to {format_instant(end)} that had none",
                extra={
                    "from": format_instant(start),
                    "to": format_instant(end),
                    "runs": len(runs),
                    "overlap": used,
                },
            )
            by_instant = {m.instant: run.id for run, m in zip(runs, wanted, strict=True)}
            return BackfillResult(
                used,
                tuple(
                    Marked(m.instant, CREATED, run_id=by_instant[m.instant])
                    if m.mark == WOULD_RUN
                    else m
                    for m in marks
                ),
            )

        return transact(self._client, attempt, schedule_key, keys.schedule_ledger(validated.id))

    def _line(self, pipe: Pipeline, load_test_id: int) -> _Line:
        """Whether a ``skip`` backfill's first run may be queued now, and what the line waits
        for; WATCHes what decides it (read in immediate mode, before MULTI)."""
        keys = self._keys
        waiting, current = keys.backfill_waiting(load_test_id), keys.backfill_current(load_test_id)
        last = keys.load_test_last_run(load_test_id)
        pipe.watch(waiting, current, last)
        if int(pipe.llen(waiting)):
            return _Line(queue_now=False, current=None)  # behind those already waiting
        for key in (current, last):
            raw = pipe.get(key)
            if raw is None:
                continue
            status = pipe.hget(keys.run(int(text_of(raw))), "status")
            if status is not None and not is_terminal(text_of(status)):
                return _Line(queue_now=False, current=int(text_of(raw)))
        return _Line(queue_now=True, current=None)

    def _queue_line(
        self,
        pipe: Pipeline,
        load_test_id: int,
        runs: list[RunRecord],
        line: _Line,
        rq_queue: Queue,
    ) -> None:
        keys = self._keys
        waiting = runs
        if line.queue_now:
            self._enqueue(pipe, rq_queue, runs[0])
            pipe.set(keys.backfill_current(load_test_id), runs[0].id)
            waiting = runs[1:]
        elif line.current is not None:
            pipe.set(keys.backfill_current(load_test_id), line.current)
        if waiting:
            # queue_create listed them as unclaimed; they have no job until the feeder's turn
            pipe.zrem(keys.unclaimed, *[str(run.id) for run in waiting])
            pipe.rpush(
                keys.backfill_waiting(load_test_id),
                *[f"{run.id}:{rq_queue.name}" for run in waiting],
            )
        pipe.sadd(keys.backfill_load_tests, load_test_id)  # the feeder clears it when done

    def _enqueue(self, pipe: Pipeline, rq_queue: Queue, run: RunRecord) -> None:
        assert run.job_id is not None
        enqueue_run(pipe, rq_queue, run_id=run.id, prefix=self._keys.prefix, job_id=run.job_id)

    def feed(self, *, now: datetime, limit: int) -> list[int]:
        """Queue the job of the next waiting run of up to ``limit`` load tests whose current
        run has ended; the runs queued. Safe from any number of processes at once."""
        with translated():
            raw = self._client.srandmember(self._keys.backfill_load_tests, limit)
        members: list[bytes | str] = raw if isinstance(raw, list) else []
        released = []
        for member in members:
            load_test_id = int(text_of(member))
            run_id: int | None = _DROPPED
            while run_id == _DROPPED:
                run_id = self._release(load_test_id, now=now)
            if run_id is not None:
                released.append(run_id)
        return released

    def _release(self, load_test_id: int, *, now: datetime) -> int | None:
        """The waiting head's run id once queued; None when the line waits or is done (then
        its keys go); _DROPPED when the head ended while waiting (aborted) and was dropped."""
        keys = self._keys
        waiting, current = keys.backfill_waiting(load_test_id), keys.backfill_current(load_test_id)

        def attempt(pipe: Pipeline) -> int | None:
            running = pipe.get(current)
            if running is not None:
                status = pipe.hget(keys.run(int(text_of(running))), "status")
                if status is not None and not is_terminal(text_of(status)):
                    return None  # the run before it is still going
            head = pipe.lindex(waiting, 0)
            if head is None:
                pipe.multi()
                pipe.delete(current)
                pipe.srem(keys.backfill_load_tests, load_test_id)
                return None
            run_text, queue_name = text_of(head).split(":", 1)
            run_id = int(run_text)
            pipe.watch(keys.run(run_id))
            status, job_id = pipe.hmget(keys.run(run_id), ["status", "job_id"])
            if status is None or text_of(status) != Status.CREATED or not job_id:
                pipe.multi()
                pipe.lpop(waiting)  # aborted (or gone) while it waited: nothing to run
                return _DROPPED
            rq_queue = queue(self._client, queue_name)
            rq_queue.get_redis_server_version()  # RQ reads it lazily; not inside MULTI
            pipe.multi()
            pipe.lpop(waiting)
            enqueue_run(pipe, rq_queue, run_id=run_id, prefix=keys.prefix, job_id=text_of(job_id))
            pipe.zadd(keys.unclaimed, {str(run_id): to_us(now)})
            pipe.set(current, run_id)
            return run_id

        return transact(self._client, attempt, waiting, current)


def _mark(record: ScheduleRecord, instant: datetime, happened: Happened) -> Marked:
    """What a backfill does with one occurrence, given what the ledger says happened."""
    if happened.outcome in (FIRED, DELETED):
        return Marked(instant, ALREADY_HAS_RUN, run_id=happened.run_id)
    if happened.outcome == SKIPPED and happened.run_id is not None:
        return Marked(instant, ALREADY_SKIPPED, run_id=happened.run_id, reason=happened.reason)
    # No record of it: passed while paused, pending, forgotten, or missed.
    if record.forgotten_through is not None and instant <= record.forgotten_through:
        return Marked(instant, FORGOTTEN)
    if instant > record.fired_through:
        pause = record.pause
        if not record.deactivated:
            return Marked(instant, PENDING)  # due: the scheduler fires or skips it
        if pause is not None and pause.resume_at is not None and instant >= pause.resume_at:
            return Marked(instant, PENDING)  # the leader resumes the pause as of resume_at
    return Marked(instant, WOULD_RUN)
