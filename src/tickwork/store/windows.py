"""Blackout windows as stored: a stack's in one hash with a version, a schedule's inside the
schedule's own hash (see schedules.py).

The fire commit decides with the windows the planner read, and refuses when they changed
since: a stack's windows carry ``windows_version`` (INCR on every change, checked by the
commit script per stack), a schedule's are part of the schedule hash whose ``version`` the
commit already checks. So a window created a moment before an occurrence is honoured, or the
occurrence committed before the window existed — never both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import redis
from redis.client import Pipeline

from tickwork.core.instants import format_instant, parse_instant
from tickwork.core.model import Cron
from tickwork.core.windows import Window, WindowPolicy
from tickwork.errors import Conflict, NotFound
from tickwork.store.audit import INTERNAL, Actor, Audit
from tickwork.store.connection import text_of, translated
from tickwork.store.keys import Keys
from tickwork.store.transactions import transact

AUDIT_KIND = "blackout_window"
MAX_STACK_WINDOWS = 100
MAX_SCHEDULE_WINDOWS = 20


@dataclass(frozen=True, slots=True)
class WindowRecord:
    window: Window
    stack: int
    schedule_id: int | None  # None: every schedule of the stack
    note: str
    created: datetime
    created_by: str | None
    cron_given: str | None = None  # the cron expression as written (before alias expansion)

    @property
    def id(self) -> int:
        return self.window.id


def encode_window(record: WindowRecord) -> dict[str, Any]:
    window = record.window
    data: dict[str, Any] = {
        "id": window.id,
        "stack": record.stack,
        "schedule_id": record.schedule_id,
        "policy": window.policy.value,
        "note": record.note,
        "created": format_instant(record.created),
        "created_by": record.created_by,
    }
    if window.starts_at is not None and window.ends_at is not None:
        data |= {"from": format_instant(window.starts_at), "to": format_instant(window.ends_at)}
    else:
        assert window.cron is not None
        assert window.duration is not None
        data |= {
            "expression": window.cron.expression,
            "cron": record.cron_given,
            "time_zone": window.cron.time_zone,
            "duration_s": int(window.duration.total_seconds()),
        }
    return data


def decode_window(data: Mapping[str, Any]) -> WindowRecord:
    if "from" in data:
        window = Window(
            int(data["id"]),
            WindowPolicy(data["policy"]),
            starts_at=parse_instant(data["from"]),
            ends_at=parse_instant(data["to"]),
        )
    else:
        window = Window(
            int(data["id"]),
            WindowPolicy(data["policy"]),
            cron=Cron(data["expression"], data["time_zone"]),
            duration=timedelta(seconds=int(data["duration_s"])),
        )
    return WindowRecord(
        window=window,
        stack=int(data["stack"]),
        schedule_id=data.get("schedule_id"),
        note=str(data.get("note") or ""),
        created=parse_instant(data["created"]),
        created_by=data.get("created_by"),
        cron_given=data.get("cron"),
    )


def encode_windows(records: Iterable[WindowRecord]) -> str:
    return json.dumps([encode_window(r) for r in records], separators=(",", ":"))


def decode_windows(text: str | None) -> tuple[WindowRecord, ...]:
    return tuple(decode_window(item) for item in json.loads(text or "[]"))


@dataclass(frozen=True, slots=True)
class StackWindows:
    version: int  # what the fire commit checks
    records: tuple[WindowRecord, ...]

    @property
    def windows(self) -> tuple[Window, ...]:
        return tuple(r.window for r in self.records)


NONE = StackWindows(0, ())


def with_new_id(client: redis.Redis, keys: Keys, record: WindowRecord) -> WindowRecord:
    """The record under a new window id (a transaction voided by a WATCH leaves a gap)."""
    with translated():
        window_id = int(client.incr(keys.ids("window")))
    return replace(record, window=replace(record.window, id=window_id))


class Windows:
    """A stack's blackout windows (a schedule's own are ``Schedules.add_window``)."""

    def __init__(self, client: redis.Redis, keys: Keys, audit: Audit) -> None:
        self._client = client
        self._keys = keys
        self._audit = audit
        self._cache: dict[int, StackWindows] = {}  # the scheduler reads them every batch

    def add(self, window: WindowRecord, *, actor: Actor = INTERNAL) -> WindowRecord:
        """Store a stack-wide window under a new id, taken once it fits (a refused one
        spends none); the window stored. Conflict past ``MAX_STACK_WINDOWS``."""
        key = self._keys.stack_windows(window.stack)

        def attempt(pipe: Pipeline) -> WindowRecord:
            if int(pipe.hlen(key)) >= MAX_STACK_WINDOWS:
                raise Conflict(
                    f"A stack has at most {MAX_STACK_WINDOWS} blackout windows: delete one first."
                )
            record = with_new_id(self._client, self._keys, window)
            pipe.multi()
            pipe.hset(key, str(record.id), json.dumps(encode_window(record)))
            pipe.incr(self._keys.stack_windows_version(record.stack))
            self._queue_audit(pipe, record, "created", actor=actor, at=record.created)
            return record

        return transact(self._client, attempt, key)

    def list(self, stack: int) -> list[WindowRecord]:
        with translated():
            rows = self._client.hvals(self._keys.stack_windows(stack))
        return sorted((decode_window(json.loads(text_of(r))) for r in rows), key=lambda r: r.id)

    def get(self, stack: int, window_id: int) -> WindowRecord:
        with translated():
            raw = self._client.hget(self._keys.stack_windows(stack), str(window_id))
        if raw is None:
            raise NotFound(f"Blackout window {window_id} not found.")
        return decode_window(json.loads(text_of(raw)))

    def delete(
        self, stack: int, window_id: int, *, now: datetime, actor: Actor = INTERNAL
    ) -> WindowRecord:
        key = self._keys.stack_windows(stack)

        def attempt(pipe: Pipeline) -> WindowRecord:
            raw = pipe.hget(key, str(window_id))
            if raw is None:
                raise NotFound(f"Blackout window {window_id} not found.")
            record = decode_window(json.loads(text_of(raw)))
            pipe.multi()
            pipe.hdel(key, str(window_id))
            pipe.incr(self._keys.stack_windows_version(stack))
            self._queue_audit(pipe, record, "deleted", actor=actor, at=now)
            return record

        return transact(self._client, attempt, key)

    def _queue_audit(
        self, pipe: Pipeline, record: WindowRecord, action: str, *, actor: Actor, at: datetime
    ) -> None:
        self._audit.queue(
            pipe,
            stack=record.stack,
            kind=AUDIT_KIND,
            resource_id=record.id,
            action=action,
            actor=actor,
            at=at,
            note=record.note,
            extra={"window": encode_window(record)},
        )

    def of_stacks(self, stacks: Iterable[int]) -> dict[int, StackWindows]:
        """Each stack's windows and their version: one MGET, and a read of those that
        changed since this process last looked."""
        wanted = sorted(set(stacks))
        if not wanted:
            return {}
        with translated():
            versions = self._client.mget([self._keys.stack_windows_version(s) for s in wanted])
            found: dict[int, StackWindows] = {}
            for stack, raw in zip(wanted, versions, strict=True):
                version = int(text_of(raw)) if raw is not None else 0
                cached = self._cache.get(stack)
                if cached is None or cached.version != version:
                    cached = StackWindows(version, tuple(self.list(stack))) if version else NONE
                    self._cache[stack] = cached
                found[stack] = cached
        return found
