"""Retention: finished runs older than the retention period, or beyond a load test's count,
are removed with everything that names them. The leader calls this in small steps between
fires; no step scans:

    sweep   for each stack with runs ({p}:stacks), the oldest entries of its run index
            created before the cutoff: finished ones go (runs that have not finished are
            left to the leader's stranded-run check, which ends them)
    trim    for load tests in {p}:retention:load_tests: the oldest finished runs beyond the
            count go; a load test with more to trim stays in the set

Removing a run deletes, in one MULTI, its hash, its ``executed`` and ``abort`` flags, its
entries in the stack's and the load test's run indexes, its schedule's ledger and
{p}:unclaimed, and its RQ job hash. An API request changing the run meanwhile WATCHes it,
so the removal voids that write rather than the write recreating part of a removed run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import redis

from tickwork.core.instants import parse_instant, to_us
from tickwork.core.lifecycle import is_terminal
from tickwork.store.connection import text_of, translated
from tickwork.store.keys import Keys
from tickwork.store.queue import JOB_KEY_PREFIX, job_results_key

_FIELDS = ("created", "status", "stack", "load_test_id", "job_id", "schedule_id", "scheduled_for")

# KEYS[1] schedule hash, KEYS[2] its ledger; ARGV[1] an occurrence (µs) retention removed.
# Raises the schedule's forgotten_us to it and drops ledger entries up to it; nothing for a
# schedule that is gone (its hash must not be recreated).
_FORGET = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local current = tonumber(redis.call('HGET', KEYS[1], 'forgotten_us') or '-1')
if tonumber(ARGV[1]) > current then redis.call('HSET', KEYS[1], 'forgotten_us', ARGV[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
return 1
"""


@dataclass(frozen=True, slots=True)
class _Stored:
    run_id: int
    created: datetime
    finished: bool
    stack: int
    load_test_id: int
    job_id: str | None
    schedule_id: int | None
    occurrence: datetime | None


class Retention:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._forget = client.register_script(_FORGET)

    def mark(self, load_test_ids: Iterable[int]) -> None:
        """Load tests that got runs: ``trim`` looks at them."""
        members = sorted(set(load_test_ids))
        if members:
            with translated():
                self._client.sadd(self._keys.retention_load_tests, *members)

    def stacks(self) -> list[int]:
        """The stacks with runs or audit entries: what the sweeps walk."""
        with translated():
            return sorted(int(text_of(raw)) for raw in self._client.smembers(self._keys.stacks))

    def sweep(self, *, before: datetime, limit: int) -> int:
        """Remove up to ``limit`` finished runs created before ``before``; how many it
        removed (``limit``: there may be more to do)."""
        removed = 0
        for stack in self.stacks():
            index, kept = self._keys.stack_index(stack, "runs"), 0
            while removed < limit:
                wanted = limit - removed
                with translated():
                    raw = self._client.zrangebyscore(
                        index, "-inf", f"({to_us(before)}", kept, wanted
                    )
                ids = [int(text_of(member)) for member in raw]
                for run_id, stored in zip(ids, self._read(ids), strict=True):
                    if stored is None:
                        with translated():  # an index entry whose run is gone
                            self._client.zrem(index, run_id)
                    elif stored.finished:
                        self._remove(stored)
                        removed += 1
                    else:
                        kept += 1  # not finished: stays (the stranded-run check ends it)
                if len(ids) < wanted:
                    break
        return removed

    def trim(self, *, keep: int, load_tests: int, limit: int) -> int:
        """For up to ``load_tests`` marked load tests, remove the oldest finished runs beyond
        the newest ``keep``, at most ``limit`` runs in all; how many it removed."""
        removed = 0
        with translated():
            popped = self._client.spop(self._keys.retention_load_tests, load_tests)
        marked: list[bytes] = popped if isinstance(popped, list) else []
        for raw in marked:
            load_test_id = int(text_of(raw))
            index = self._keys.load_test_runs(load_test_id)
            with translated():
                excess = int(self._client.zcard(index)) - keep
                if excess <= 0:
                    continue
                room = max(0, limit - removed)
                ids = [
                    int(text_of(member))
                    for member in self._client.zrange(index, 0, min(excess, room) - 1)
                ]
            for stored in self._read(ids):
                if stored is not None and stored.finished:
                    self._remove(stored)
                    removed += 1
            if excess > len(ids) or removed >= limit:
                self.mark([load_test_id])  # more to do on a later step
        return removed

    def _read(self, run_ids: list[int]) -> list[_Stored | None]:
        with translated():
            pipe = self._client.pipeline(transaction=False)
            for run_id in run_ids:
                pipe.hmget(self._keys.run(run_id), list(_FIELDS))
            rows = pipe.execute()
        out: list[_Stored | None] = []
        for run_id, row in zip(run_ids, rows, strict=True):
            created, status, stack, load_test_id, job_id, schedule_id, occurrence = row
            if created is None or status is None or stack is None or load_test_id is None:
                out.append(None)
                continue
            out.append(
                _Stored(
                    run_id=run_id,
                    created=parse_instant(text_of(created)),
                    finished=is_terminal(text_of(status)),
                    stack=int(text_of(stack)),
                    load_test_id=int(text_of(load_test_id)),
                    job_id=text_of(job_id) or None if job_id is not None else None,
                    schedule_id=int(text_of(schedule_id)) if schedule_id else None,
                    occurrence=parse_instant(text_of(occurrence)) if occurrence else None,
                )
            )
        return out

    def _remove(self, stored: _Stored) -> None:
        keys, run_id = self._keys, stored.run_id
        with translated(), self._client.pipeline() as pipe:
            pipe.delete(keys.run(run_id), keys.run_executed(run_id), keys.run_abort(run_id))
            pipe.zrem(keys.stack_index(stored.stack, "runs"), run_id)
            pipe.zrem(keys.load_test_runs(stored.load_test_id), run_id)
            pipe.zrem(keys.unclaimed, run_id)
            if stored.job_id is not None:
                pipe.delete(JOB_KEY_PREFIX + stored.job_id, job_results_key(stored.job_id))
            pipe.execute()
        if stored.schedule_id is not None and stored.occurrence is not None:
            # The schedule's ledger forgets this occurrence and every earlier one (entries of
            # runs deleted by hand included), and remembers how far it has forgotten.
            ledger, schedule = (
                keys.schedule_ledger(stored.schedule_id),
                keys.schedule(stored.schedule_id),
            )
            with translated():
                self._forget(keys=[schedule, ledger], args=[to_us(stored.occurrence)])
