"""Committing a batch of fires: one Lua script, atomic, lease-, version- and once-checked.

The leader plans a batch with the pure core and hands each schedule's part here as an
``Advance``: the state it was planned from, where it moves, and the runs (with their jobs)
that record its settled occurrences. ``encode`` turns an advance into the script's
arguments; ``commit`` sends a batch of them. The protocol (every KEYS and ARGV position,
what the script checks, what it returns) is the header of ``scripts/commit_fires.lua``;
``HEAD``, ``ENTRY`` and ``RUN`` below name the same positions, and a test holds the two
together.

One entry point serves both paths. The ordinary path encodes its advances at once and
commits them; the look-ahead path (``scheduler/lookahead.py``) encodes advances ahead of
their instant and commits them later, stamped with the commit time (``stamp``). Encoding
to RESP bytes up front is what keeps the look-ahead fast: at the instant only the bytes
are sent, where re-encoding ~50 arguments per fire was most of the leader's time.

One command per batch rather than ~10 per fire: per-command client overhead was most of
the leader's time at 100,000 simultaneous fires (bench/fire.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib.resources import files
from typing import Any

import redis

from tickwork.core.instants import to_ms, to_us
from tickwork.core.lifecycle import TERMINAL, Status
from tickwork.core.runs import RunRecord
from tickwork.errors import LeaseLost
from tickwork.store.connection import text_of, translated
from tickwork.store.keys import Keys
from tickwork.store.leases import Lease
from tickwork.store.queue import JobTemplate, QueuedJob
from tickwork.store.runs import creation_fields
from tickwork.store.runs import encode as encode_run
from tickwork.store.schedules import ScheduleRecord

SCRIPT = files("tickwork.store").joinpath("scripts/commit_fires.lua").read_text()

# The script's argument layout, position by position (see the script's header).
HEAD = ("lease_value", "prefix", "job_prefix", "stamp_us")
ENTRY = (
    "schedule_id",
    "version",
    "expected_next_us",
    "fired_through_us",
    "next_us",
    "due_ms",
    "overlap_load_test",
    "first_occurrence_us",
    "n_runs",
    "windows_version",
)
RUN = (
    "run_id",
    "job_id",
    "job_data",
    "job_description",
    "created_us",
    "occurrence_us",
    "n_fields",
)


@dataclass(frozen=True, slots=True)
class Advance:
    """One schedule's part of a batch: the state it was planned from, where it moves, and
    the runs (with their jobs) that record its settled occurrences."""

    record: ScheduleRecord
    fired_through: datetime
    next_at: datetime | None
    runs: Sequence[tuple[RunRecord, QueuedJob | None]] = field(default_factory=tuple)
    due: datetime | None = None  # when to look at next_at (default: its planned instant)
    windows_version: int | None = None  # of the stack's windows the plan saw (None: no check)


@dataclass(frozen=True, slots=True)
class FireEntry:
    """An advance as the script's arguments: ``count`` RESP bulk strings."""

    schedule_id: int
    resp: bytes
    count: int


@dataclass(frozen=True, slots=True)
class CommitOutcome:
    """Schedules of a batch left out: ``conflicts`` changed since they were read; ``busy``
    (checked at commit for entries encoded ahead) have a run of their load test still
    going; ``repeats`` planned an occurrence the script had already settled (a bug
    elsewhere, refused here: the caller moves the schedule past it)."""

    conflicts: frozenset[int]
    busy: frozenset[int] = frozenset()
    repeats: frozenset[int] = frozenset()


class Fires:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._script = client.register_script(SCRIPT)

    def encode(self, advance: Advance, *, ahead: bool, overlap_check: bool = False) -> FireEntry:
        """The advance as a commit entry. ``ahead``: every run must be a fired run, stamped
        at commit (``created``, the first status entry). ``overlap_check``: the script
        leaves the schedule out (``busy``) when its load test's latest run has not finished."""
        args = _entry_args(advance, overlap_check=overlap_check, stamped=ahead)
        return FireEntry(advance.record.id, _resp(args), len(args))

    def commit(
        self,
        lease: Lease,
        entries: Sequence[FireEntry],
        jobs: JobTemplate,
        *,
        stamp: datetime | None = None,
    ) -> CommitOutcome:
        """Commit the batch; ``stamp`` is the creation instant of runs encoded ahead.
        LeaseLost when ``lease`` is no longer held (then nothing was written)."""
        head = [
            "EVALSHA",
            self._script.sha,
            4,
            self._keys.lease(lease.name),
            self._keys.due,
            jobs.queues_key,
            jobs.queue_key,
            *self._head(lease, jobs, stamp=stamp, entries=len(entries)),
        ]
        count = len(head) + sum(entry.count for entry in entries)
        command = b"*%d\r\n" % count + _resp(head) + b"".join(entry.resp for entry in entries)
        with translated():
            try:
                reply = self._send(command)
            except redis.exceptions.NoScriptError:
                self._client.script_load(SCRIPT)  # Redis restarted (or flushed) meanwhile
                reply = self._send(command)
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

    def _head(
        self, lease: Lease, jobs: JobTemplate, *, stamp: datetime | None, entries: int
    ) -> list[Any]:
        head = {
            "lease_value": lease.value,
            "prefix": self._keys.prefix,
            "job_prefix": jobs.job_key_prefix,
            "stamp_us": "" if stamp is None else to_us(stamp),
        }
        args: list[Any] = [head[name] for name in HEAD]
        args += [len(TERMINAL), *sorted(TERMINAL)]
        common = _fired_common(stamp) if stamp is not None else {}
        args.append(len(common))
        for name, value in common.items():
            args += [name, value]
        args.append(len(jobs.fields))
        for name, value in jobs.fields.items():
            args += [name, value]
        args.append(entries)
        return args


def _entry_args(advance: Advance, *, overlap_check: bool, stamped: bool) -> list[Any]:
    record = advance.record
    due = advance.due
    if due is None and advance.next_at is not None:
        due = record.planned(advance.next_at)
    occurrences = [run.scheduled_for for run, _ in advance.runs if run.scheduled_for is not None]
    entry = {
        "schedule_id": record.id,
        "version": record.version,
        "expected_next_us": "" if record.next_at is None else to_us(record.next_at),
        "fired_through_us": to_us(advance.fired_through),
        "next_us": "" if advance.next_at is None else to_us(advance.next_at),
        "due_ms": "" if due is None or record.deactivated else to_ms(due),
        "overlap_load_test": record.load_test_id if overlap_check else "",
        "first_occurrence_us": min((to_us(at) for at in occurrences), default=""),
        "n_runs": len(advance.runs),
        "windows_version": "" if advance.windows_version is None else advance.windows_version,
    }
    args: list[Any] = [entry[name] for name in ENTRY]
    for run, job in advance.runs:
        if (run.schedule_id, run.stack, run.load_test_id) != (
            record.id,
            record.stack,
            record.load_test_id,
        ) or (job is None) != (run.status == Status.SKIPPED):
            # The script writes these from the schedule, and tells fired from skipped by the job.
            raise ValueError(f"run {run.id} is not a run the fire of schedule {record.id} writes")
        fields = encode_run(run)
        for name in _WRITTEN_BY_SCRIPT:  # from the run's head, its entry and its schedule
            del fields[name]
        if stamped:
            if job is None:
                raise ValueError("only fired runs can be stamped at commit")
            common = _fired_common(run.created)
            # Left out: what the batch sends once, and what decode reads when absent (empty
            # fields, details "{}"): each field a fire writes costs Redis ~4,000 instructions.
            fields = {
                name: value
                for name, value in fields.items()
                if common.get(name, "") != value and not (name == "details" and value == "{}")
            }
        head = {
            "run_id": run.id,
            "job_id": job.job_id if job else "",
            "job_data": job.data if job else "",
            "job_description": job.description if job else "",
            "created_us": "" if stamped else to_us(run.created),  # the run indexes' score
            "occurrence_us": to_us(run.scheduled_for or run.created),
            "n_fields": len(fields),
        }
        args += [head[name] for name in RUN]
        for name, value in fields.items():
            args += [name, value]
    return args


_WRITTEN_BY_SCRIPT = ("id", "stack", "load_test_id", "schedule_id", "job_id")


def _fired_common(stamp: datetime) -> dict[str, str]:
    """The fields every new fired run shares: sent once per batch of entries encoded ahead,
    which leave them out, and what ``decode`` reads when absent (empty fields, details "{}"),
    which they leave out too."""
    return {**creation_fields(stamp), "status": Status.CREATED.value}


def _resp(args: Sequence[Any]) -> bytes:
    """Arguments as RESP bulk strings, as redis-py would send them."""
    out = []
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _outcome(reply: Any, lease: Lease) -> CommitOutcome:
    if reply == -1:
        raise LeaseLost(f"lease {lease.name!r} term {lease.term} is no longer held")
    conflicts, busy, repeats = reply
    return CommitOutcome(
        frozenset(int(text_of(sid)) for sid in conflicts),
        frozenset(int(text_of(sid)) for sid in busy),
        frozenset(int(text_of(sid)) for sid in repeats),
    )
