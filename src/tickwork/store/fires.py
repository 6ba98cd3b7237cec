"""Committing a batch of fires: one Lua script, atomic, owner- and version-checked.

The leader plans a batch with the pure core and hands the outcome here. The script, in one
atomic step: checks that the lease still holds the caller's ``{term}:{token}`` (else it
writes nothing), and for each schedule checks that its ``version`` and ``next_us`` are
still those the plan was made from (else that schedule is left out, to be re-read and
re-planned: it was rewritten, deactivated, deleted or fired by someone else). For each
schedule that passes it writes the run records (fired and skipped), the RQ job of each fired
run, and the schedule's new high-water mark and due-index entry. A paused old leader that
wakes up cannot commit; no occurrence is committed twice; a run never exists without its job.

One command per batch rather than ~10 per fire: per-command client overhead was most of the
leader's time at 100,000 simultaneous fires (bench/fire.py).

The script builds run and index keys from the prefix exactly as ``keys.py`` does; the
firing tests read everything back through the Python store, so a drift fails them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis

from tickwork.core.instants import to_ms, to_us
from tickwork.store.connection import text_of, translated
from tickwork.store.keys import Keys
from tickwork.store.leases import Lease
from tickwork.store.runs import RunRecord
from tickwork.store.runs import encode as encode_run
from tickwork.store.schedules import ScheduleRecord

_COMMIT = """
local lease_key, due_key, queues_key, queue_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('GET', lease_key) ~= ARGV[1] then return -1 end
local prefix, job_prefix = ARGV[2], ARGV[3]
local i = 4
local n_template = tonumber(ARGV[i]); i = i + 1
local template = {}
for t = 1, n_template * 2 do template[t] = ARGV[i]; i = i + 1 end
local n_entries = tonumber(ARGV[i]); i = i + 1
local conflicts = {}
local any_job = false
for e = 1, n_entries do
  local sid, version, expected_next = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local fired_through, next_us, due_ms = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local n_runs = tonumber(ARGV[i + 6]); i = i + 7
  local skey = prefix .. ':schedule:' .. sid
  local current = redis.call('HMGET', skey, 'version', 'next_us')
  local ok = current[1] == version and current[2] == expected_next
  if not ok then conflicts[#conflicts + 1] = sid end
  for r = 1, n_runs do
    local run_id, stack, load_test, status = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    local job_id, job_data, job_description = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
    local n_fields = tonumber(ARGV[i + 7]); i = i + 8
    if ok then
      local run_key = prefix .. ':run:' .. run_id
      redis.call('HSET', run_key, unpack(ARGV, i, i + n_fields * 2 - 1))
      redis.call('ZADD', prefix .. ':stack:' .. stack .. ':runs', run_id, run_id)
      redis.call('ZADD', prefix .. ':load_test:' .. load_test .. ':runs', run_id, run_id)
      if status ~= 'skipped' then
        redis.call('SET', prefix .. ':load_test:' .. load_test .. ':last_run', run_id)
      end
      if job_id ~= '' then
        local job_key = job_prefix .. job_id
        redis.call('HSET', job_key, unpack(template))
        redis.call('HSET', job_key, 'data', job_data, 'description', job_description)
        redis.call('RPUSH', queue_key, job_id)
        any_job = true
      end
    end
    i = i + n_fields * 2
  end
  if ok then
    redis.call('HSET', skey, 'fired_through_us', fired_through, 'next_us', next_us)
    if due_ms ~= '' then
      redis.call('ZADD', due_key, due_ms, sid)
    else
      redis.call('ZREM', due_key, sid)
    end
  end
end
if any_job then redis.call('SADD', queues_key, queue_key) end
return conflicts
"""


@dataclass(frozen=True, slots=True)
class Job:
    """An RQ job of a fired run: its id, serialized call, and description."""

    job_id: str
    data: bytes
    description: str


@dataclass(frozen=True, slots=True)
class Advance:
    """One schedule's part of a batch: the state it was planned from, where it moves, and
    the runs (with their jobs) that record its settled occurrences."""

    record: ScheduleRecord
    fired_through: datetime
    next_at: datetime | None
    runs: Sequence[tuple[RunRecord, Job | None]] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class RqTarget:
    """Where jobs go: RQ's keys and the fields every job of the batch shares."""

    queues_key: str
    queue_key: str
    job_key_prefix: str
    template: Mapping[str, Any]


class LeaseNotHeld(Exception):
    """The lease did not hold the caller's value when the batch was to commit."""


class Fires:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._keys = keys
        self._commit = client.register_script(_COMMIT)

    def commit(self, lease: Lease, advances: Sequence[Advance], rq: RqTarget) -> set[int]:
        """Commit the batch; the ids of schedules left out because they changed since they
        were read. LeaseNotHeld when ``lease`` is no longer held."""
        args: list[Any] = [lease.value, self._keys.prefix, rq.job_key_prefix, len(rq.template)]
        for name, value in rq.template.items():
            args += [name, value]
        args.append(len(advances))
        for advance in advances:
            record = advance.record
            args += [
                record.id,
                record.version,
                "" if record.next_at is None else to_us(record.next_at),
                to_us(advance.fired_through),
                "" if advance.next_at is None else to_us(advance.next_at),
                "" if advance.next_at is None or record.deactivated else to_ms(advance.next_at),
                len(advance.runs),
            ]
            for run, job in advance.runs:
                fields = encode_run(run)
                args += [
                    run.id,
                    run.stack,
                    run.load_test_id,
                    run.status,
                    job.job_id if job else "",
                    job.data if job else "",
                    job.description if job else "",
                    len(fields),
                ]
                for name, value in fields.items():
                    args += [name, value]
        keys = [self._keys.lease(lease.name), self._keys.due, rq.queues_key, rq.queue_key]
        with translated():
            reply = self._commit(keys=keys, args=args)
        if reply == -1:
            raise LeaseNotHeld
        return {int(text_of(sid)) for sid in reply}
