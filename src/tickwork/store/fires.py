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

A schedule's part can also be encoded ahead of its instant (``encode``) and committed later
as bytes (``commit_encoded``): the fired runs are then stamped with the commit time, and the
script checks overlap itself, since a run of the load test may have started meanwhile. Run
indexes are scored by creation time.

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
from tickwork.errors import LeaseLost
from tickwork.store.connection import text_of, translated
from tickwork.store.keys import Keys
from tickwork.store.leases import Lease
from tickwork.store.runs import FINISHED, RunRecord, creation_fields
from tickwork.store.runs import encode as encode_run
from tickwork.store.schedules import ScheduleRecord

_COMMIT = """
local lease_key, due_key, queues_key, queue_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('GET', lease_key) ~= ARGV[1] then return -1 end
local prefix, job_prefix = ARGV[2], ARGV[3]
local i = 4
local function list_at(at, width)
  local n = tonumber(ARGV[at]) * width
  local out = {}
  for t = 1, n do out[t] = ARGV[at + t] end
  return out, at + n + 1
end
local function concat(first, from, count)
  local out = {unpack(first)}
  for t = 0, count - 1 do out[#first + 1 + t] = ARGV[from + t] end
  return out
end
-- unpack() is bounded by Lua's C stack: variadic commands go in slices.
local function in_slices(command, key, items)
  for s = 1, #items, 1000 do
    redis.call(command, key, unpack(items, s, math.min(s + 999, #items)))
  end
end
local stamp_us = ARGV[i]; i = i + 1
local finished, fired_common, template
finished, i = list_at(i, 1)
fired_common, i = list_at(i, 2)
template, i = list_at(i, 2)
local is_finished = {}
for _, name in ipairs(finished) do is_finished[name] = true end
local n_entries = tonumber(ARGV[i]); i = i + 1
local conflicts, busy, repeats, job_ids, due_add, due_rem, stack_runs = {}, {}, {}, {}, {}, {}, {}
for e = 1, n_entries do
  local sid, version, expected_next = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local fired_through, next_us, due_ms = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local overlap_load_test, first_us, n_runs = ARGV[i + 6], ARGV[i + 7], tonumber(ARGV[i + 8])
  i = i + 9
  local skey = prefix .. ':schedule:' .. sid
  local current = redis.call('HMGET', skey, 'version', 'next_us', 'committed_us')
  local committed = tonumber(current[3] or '') or -1
  local ok = current[1] == version and current[2] == expected_next
  if not ok then
    conflicts[#conflicts + 1] = sid
  elseif first_us ~= '' and tonumber(first_us) <= committed then
    -- An occurrence this script already settled: refused whatever the checks above said.
    ok = false
    repeats[#repeats + 1] = sid
  elseif overlap_load_test ~= '' then
    local last = redis.call('GET', prefix .. ':load_test:' .. overlap_load_test .. ':last_run')
    local status = last and redis.call('HGET', prefix .. ':run:' .. last, 'status')
    if status and not is_finished[status] then
      ok = false
      busy[#busy + 1] = sid
    end
  end
  for r = 1, n_runs do
    local run_id, stack, load_test, status = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    local job_id, job_data, job_description = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
    local created_us, n_fields = ARGV[i + 7], tonumber(ARGV[i + 8]); i = i + 9
    if created_us == '' then created_us = stamp_us end
    if ok then
      local common = status == 'skipped' and {} or fired_common
      redis.call('HSET', prefix .. ':run:' .. run_id, unpack(concat(common, i, n_fields * 2)))
      if status ~= 'skipped' then
        redis.call('SET', prefix .. ':load_test:' .. load_test .. ':last_run', run_id)
      end
      local by_stack = stack_runs[stack] or {}
      stack_runs[stack] = by_stack
      by_stack[#by_stack + 1] = created_us
      by_stack[#by_stack + 1] = run_id
      redis.call('ZADD', prefix .. ':load_test:' .. load_test .. ':runs', created_us, run_id)
      if job_id ~= '' then
        local job = {unpack(template)}
        job[#job + 1] = 'data'
        job[#job + 1] = job_data
        job[#job + 1] = 'description'
        job[#job + 1] = job_description
        redis.call('HSET', job_prefix .. job_id, unpack(job))
        job_ids[#job_ids + 1] = job_id
      end
    end
    i = i + n_fields * 2
  end
  if ok then
    local settled = math.max(committed, tonumber(fired_through))
    redis.call('HSET', skey, 'fired_through_us', fired_through, 'next_us', next_us,
      'committed_us', string.format('%d', settled))
    if due_ms ~= '' then
      due_add[#due_add + 1] = due_ms
      due_add[#due_add + 1] = sid
    else
      due_rem[#due_rem + 1] = sid
    end
  end
end
for stack, items in pairs(stack_runs) do
  in_slices('ZADD', prefix .. ':stack:' .. stack .. ':runs', items)
end
in_slices('ZADD', due_key, due_add)
in_slices('ZREM', due_key, due_rem)
in_slices('RPUSH', queue_key, job_ids)
if #job_ids > 0 then redis.call('SADD', queues_key, queue_key) end
return {conflicts, busy, repeats}
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


@dataclass(frozen=True, slots=True)
class Outcome:
    """Schedules of a batch left out: ``conflicts`` changed since they were read; ``busy``
    (checked at commit for encoded entries) have a run of their load test still going;
    ``repeats`` planned an occurrence the script had already settled (a bug elsewhere, and
    refused here: the caller re-settles the schedule past it)."""

    conflicts: frozenset[int]
    busy: frozenset[int] = frozenset()
    repeats: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Encoded:
    """One schedule's part of a batch, encoded as the script's arguments ahead of its
    instant; ``count`` arguments, as RESP bulk strings."""

    schedule_id: int
    resp: bytes
    count: int


class Fires:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._commit = client.register_script(_COMMIT)

    def commit(self, lease: Lease, advances: Sequence[Advance], rq: RqTarget) -> Outcome:
        """Commit the batch. LeaseLost when ``lease`` is no longer held."""
        args = self._head(lease, rq, stamp=None, entries=len(advances))
        for advance in advances:
            args += _entry_args(advance, overlap_check=False, stamped=False)
        with translated():
            reply = self._commit(keys=self._script_keys(lease, rq), args=args)
        return _outcome(reply, lease)

    def encode(self, advance: Advance, *, overlap_check: bool) -> Encoded:
        """An entry for ``commit_encoded``: every run of ``advance`` must be a fired run;
        their ``created`` and ``status_history`` are stamped at commit. With
        ``overlap_check`` the script leaves the schedule out (``busy``) when its load test's
        latest run has not finished, for the caller to re-plan."""
        args = _entry_args(advance, overlap_check=overlap_check, stamped=True)
        return Encoded(advance.record.id, _resp(args), len(args))

    def commit_encoded(
        self, lease: Lease, entries: Sequence[Encoded], rq: RqTarget, *, stamp: datetime
    ) -> Outcome:
        """Commit entries encoded ahead; ``stamp`` is the fired runs' creation instant.

        The command is sent as bytes built from the entries' own: re-encoding ~50
        arguments per fire was most of the leader's time on the critical path."""
        head = [
            "EVALSHA",
            self._commit.sha,
            4,
            *self._script_keys(lease, rq),
            *self._head(lease, rq, stamp=stamp, entries=len(entries)),
        ]
        count = len(head) + sum(entry.count for entry in entries)
        body = b"".join(entry.resp for entry in entries)
        with translated():
            try:
                reply = self._send(b"*%d\r\n" % count + _resp(head) + body)
            except redis.exceptions.NoScriptError:
                self._client.script_load(self._commit.script)  # Redis restarted meanwhile
                reply = self._send(b"*%d\r\n" % count + _resp(head) + body)
        return _outcome(reply, lease)

    def _send(self, command: bytes) -> Any:
        pool = self._client.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_packed_command([command])
            return self._client.parse_response(connection, "EVALSHA")
        except (redis.ConnectionError, redis.TimeoutError):
            connection.disconnect()
            raise
        finally:
            pool.release(connection)

    def _script_keys(self, lease: Lease, rq: RqTarget) -> list[str]:
        return [self._keys.lease(lease.name), self._keys.due, rq.queues_key, rq.queue_key]

    def _head(
        self, lease: Lease, rq: RqTarget, *, stamp: datetime | None, entries: int
    ) -> list[Any]:
        args: list[Any] = [lease.value, self._keys.prefix, rq.job_key_prefix]
        args.append("" if stamp is None else to_us(stamp))
        args += [len(FINISHED), *sorted(FINISHED)]
        common = _fired_common(stamp) if stamp is not None else {}
        args.append(len(common))
        for name, value in common.items():
            args += [name, value]
        args.append(len(rq.template))
        for name, value in rq.template.items():
            args += [name, value]
        args.append(entries)
        return args


def _entry_args(advance: Advance, *, overlap_check: bool, stamped: bool) -> list[Any]:
    record = advance.record
    occurrences = [run.scheduled_for for run, _ in advance.runs if run.scheduled_for is not None]
    args: list[Any] = [
        record.id,
        record.version,
        "" if record.next_at is None else to_us(record.next_at),
        to_us(advance.fired_through),
        "" if advance.next_at is None else to_us(advance.next_at),
        "" if advance.next_at is None or record.deactivated else to_ms(advance.next_at),
        record.load_test_id if overlap_check else "",
        min((to_us(at) for at in occurrences), default=""),
        len(advance.runs),
    ]
    for run, job in advance.runs:
        fields = encode_run(run)
        if stamped:
            if job is None:
                raise ValueError("only fired runs can be stamped at commit")
            common = _fired_common(run.created)
            # Left out: what the batch sends once, and empty fields (read back as empty).
            fields = {
                name: value for name, value in fields.items() if common.get(name, "") != value
            }
        args += [
            run.id,
            run.stack,
            run.load_test_id,
            run.status,
            job.job_id if job else "",
            job.data if job else "",
            job.description if job else "",
            "" if stamped else to_us(run.created),  # the run indexes' score
            len(fields),
        ]
        for name, value in fields.items():
            args += [name, value]
    return args


def _fired_common(stamp: datetime) -> dict[str, str]:
    """The fields every new fired run shares: sent once per batch of entries encoded ahead,
    which leave them (and empty fields, which ``decode`` reads as empty) out."""
    return {**creation_fields(stamp), "status": "created", "details": "{}"}


def _resp(args: Sequence[Any]) -> bytes:
    """Arguments as RESP bulk strings, as redis-py would send them."""
    out = []
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _outcome(reply: Any, lease: Lease) -> Outcome:
    if reply == -1:
        raise LeaseLost(f"lease {lease.name!r} term {lease.term} is no longer held")
    conflicts, busy, repeats = reply
    return Outcome(
        frozenset(int(text_of(sid)) for sid in conflicts),
        frozenset(int(text_of(sid)) for sid in busy),
        frozenset(int(text_of(sid)) for sid in repeats),
    )
