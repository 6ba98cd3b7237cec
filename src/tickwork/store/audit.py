"""The audit trail: who changed what, when, from where — written in the same transaction as
the change it records.

An entry is a small JSON document kept twice, as a member of two sorted sets scored by its
time (µs): the stack's feed of its kind ({p}:stack:{stack}:audit:{kind}) and the resource's
own ({p}:audit:{kind}:{id}). No other key: an entry costs one JSON string twice. The feed of a
deleted resource stays readable, by id and in the stack's feed, until retention removes it.

Kinds: ``schedule`` (k6), ``kragle_job``, ``kragle_schedule``, ``report``, ``load_test``.
The scheduler's own changes (a schedule expired, a pause ended at its resume_at) are written
by its scripts with ``who`` "scheduler". The fire commit writes an expiry in a short form
(``EXPIRY_MARK``) that reads as the same entry, and to the stack's feed alone: the schedule's
own trail shows it from the schedule's record for as long as the record says it expired, and
a change to the record first copies it into the trail (``scripts/keep_expiry.lua``). Each
fire of a one-shot is one write less.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from redis.client import Pipeline

from tickwork.core.instants import format_instant, from_us, to_us
from tickwork.store.connection import text_of, translated
from tickwork.store.keys import Keys

KINDS = ("schedule", "kragle_job", "kragle_schedule", "report", "load_test", "blackout_window")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change (an API token's e-mail, or "scheduler") and from where."""

    who: str
    via: str  # api | cli | console | scheduler | internal


SCHEDULER = Actor("scheduler", "scheduler")
"""The leader's own changes (a pause ended at its resume_at)."""
INTERNAL = Actor("tickwork", "internal")
"""A change made by tickwork's own code outside a request (tests, benchmarks, the standalone's
first example)."""


@dataclass(frozen=True, slots=True)
class Change:
    field: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: str
    at: datetime
    stack: int
    kind: str
    resource_id: str
    action: str
    who: str
    via: str
    changes: tuple[Change, ...] = ()
    note: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": format_instant(self.at),
            "stack": self.stack,
            "kind": self.kind,
            "resource_id": self.resource_id,
            "action": self.action,
            "who": self.who,
            "via": self.via,
            "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in self.changes],
            "note": self.note,
            **({"extra": dict(self.extra)} if self.extra else {}),
        }


def changes_between(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[Change, ...]:
    """Each field whose value differs, old -> new (absent reads as None)."""
    names = sorted(set(old) | set(new))
    return tuple(
        Change(name, old.get(name), new.get(name))
        for name in names
        if old.get(name) != new.get(name)
    )


EXPIRY_MARK = "x:"
"""The start of the short form in which the fire commit records that a schedule expired
(``commit_fires.lua``): ``x:{stack}:{kind}:{id}:{at_us}``, ``at_us`` the schedule's
``committed_us``: its last occurrence settled."""

SCHEDULE_KINDS = {"k6": "schedule", "kragle": "kragle_job", "report": "report"}
"""The audit kind of a schedule of each dialect: the resource whose trail shows its changes
(a report's is the report, by its own id; a report's schedule never expires)."""


def _decode(member: bytes | str, score: float) -> AuditEntry:
    text = member.decode() if isinstance(member, bytes) else member
    if text.startswith(EXPIRY_MARK):
        _, stack, kind, resource_id, fired_through_us = text.split(":")
        return AuditEntry(
            id=f"x{resource_id}-{fired_through_us}",
            at=from_us(int(score)),
            stack=int(stack),
            kind=kind,
            resource_id=resource_id,
            action="expired",
            who=SCHEDULER.who,
            via=SCHEDULER.via,
            note="no occurrence remains",
        )
    data = json.loads(text)
    return AuditEntry(
        id=str(data["id"]),
        at=from_us(int(score)),
        stack=int(data["stack"]),
        kind=data["kind"],
        resource_id=str(data["resource_id"]),
        action=data["action"],
        who=data["who"],
        via=data["via"],
        changes=tuple(
            Change(c["field"], c.get("old"), c.get("new")) for c in data.get("changes") or []
        ),
        note=data.get("note") or "",
        extra=data.get("extra") or {},
    )


class Audit:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    def queue(
        self,
        pipe: Pipeline,
        *,
        stack: int,
        kind: str,
        resource_id: int | str,
        action: str,
        actor: Actor,
        at: datetime,
        changes: Sequence[Change] = (),
        note: str = "",
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Queue an entry on a MULTI pipeline, beside the writes it records. (Its id is taken
        at once, on the client: an attempt voided by a WATCH leaves a gap, nothing else.)"""
        feed, trail, body = self.entry(
            stack=stack,
            kind=kind,
            resource_id=resource_id,
            action=action,
            actor=actor,
            at=at,
            changes=changes,
            note=note,
            extra=extra,
        )
        score = to_us(at)
        pipe.zadd(feed, {body: score})
        pipe.zadd(trail, {body: score})
        pipe.sadd(self._keys.stacks, stack)

    def entry(
        self,
        *,
        stack: int,
        kind: str,
        resource_id: int | str,
        action: str,
        actor: Actor,
        at: datetime,
        changes: Sequence[Change] = (),
        note: str = "",
        extra: Mapping[str, Any] | None = None,
        entry_id: str | None = None,
    ) -> tuple[str, str, str]:
        """An entry's two keys (the stack's feed, the resource's trail) and its body, for a
        writer that commits it some other way (a script). ``entry_id``: a deterministic id
        (a script's write that may be refused must not spend a counter)."""
        if entry_id is None:
            with translated():
                entry_id = str(self._client.incr(self._keys.ids("audit")))
        entry = AuditEntry(
            id=str(entry_id),
            at=at,
            stack=stack,
            kind=kind,
            resource_id=str(resource_id),
            action=action,
            who=actor.who,
            via=actor.via,
            changes=tuple(changes),
            note=note,
            extra=extra or {},
        )
        body = json.dumps({k: v for k, v in entry.as_json().items() if k != "at"}, default=str)
        return self._keys.audit_feed(stack, kind), self._keys.audit_of(kind, str(resource_id)), body

    def of(
        self, kind: str, resource_id: int | str, *, skip: int, top: int
    ) -> tuple[list[AuditEntry], int]:
        """One resource's entries, newest first, and how many there are: its trail, and the
        expiry its schedule's record shows (while the feed holds it and the trail does not)."""
        key = self._keys.audit_of(kind, str(resource_id))
        expiry = self._expiry(kind, str(resource_id))
        with translated():
            pipe = self._client.pipeline(transaction=True)  # one snapshot of the trail
            pipe.zcard(key)
            # One entry more above the page: the expiry, if shown, may take a place in it.
            first, last = max(skip - 1, 0), skip + top - 1
            pipe.zrevrange(key, first, last, withscores=True) if last >= first else pipe.echo("")
            if expiry is not None:
                member, at_us, feed = expiry
                pipe.zscore(feed, member)
                pipe.zscore(key, member)
                pipe.zcount(key, f"({at_us}", "+inf")
            replies = pipe.execute()
        total = int(replies[0])
        rows = [_decode(m, s) for m, s in replies[1] or []]  # the trail's, from ``first`` on
        if expiry is None or replies[2] is None or replies[3] is not None:
            return rows[skip - first :][:top], total
        # The trail with the expiry in its place (after the entries newer than it): place p
        # holds the trail's p before it, the expiry at it, the trail's p - 1 after it.
        place, page = int(replies[4]), []
        for p in range(skip, min(skip + top, total + 1)):
            page.append(
                _decode(expiry[0], expiry[1]) if p == place else rows[p - (p > place) - first]
            )
        return page, total + 1

    def _expiry(self, kind: str, resource_id: str) -> tuple[str, int, str] | None:
        """The expiry entry of the schedule behind a trail, if its record says it expired:
        the entry's member in the stack's feed, its time (µs), and that feed."""
        if kind not in SCHEDULE_KINDS.values() or not resource_id.isdigit():
            return None
        with translated():
            fields = self._client.hmget(
                self._keys.schedule(int(resource_id)),
                ["next_us", "committed_us", "stack", "dialect"],
            )
        next_us, at_us, stack, dialect = (None if v is None else text_of(v) for v in fields)
        if next_us != "" or not at_us or stack is None or SCHEDULE_KINDS.get(dialect or "") != kind:
            return None  # not expired by a fire (the trail holds what else happened)
        member = f"{EXPIRY_MARK}{stack}:{kind}:{resource_id}:{at_us}"
        return member, int(at_us), self._keys.audit_feed(int(stack), kind)

    def feed(
        self, stack: int, *, kinds: Iterable[str] = KINDS, skip: int, top: int
    ) -> tuple[list[AuditEntry], int]:
        """The stack's entries of ``kinds``, newest first (the feeds merged), and how many."""
        keys = [self._keys.audit_feed(stack, kind) for kind in kinds]
        with translated():
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.zcard(key)
                pipe.zrevrange(key, 0, skip + top - 1, withscores=True)
            replies = pipe.execute()
        total = sum(int(count) for count in replies[::2])
        streams = [[(-score, m) for m, score in rows] for rows in replies[1::2]]
        merged = list(heapq.merge(*streams))[skip : skip + top]
        return [_decode(member, -negative) for negative, member in merged], total

    def sweep(self, stacks: Iterable[int], *, before: datetime, limit: int) -> int:
        """Remove up to ``limit`` entries older than ``before`` from the stacks' feeds and
        their resources' own; how many it removed."""
        removed = 0
        for stack in stacks:
            for kind in KINDS:
                if removed >= limit:
                    return removed
                feed = self._keys.audit_feed(stack, kind)
                with translated():
                    old: list[bytes] = self._client.zrangebyscore(
                        feed, "-inf", f"({to_us(before)}", 0, limit - removed
                    )  # type: ignore[assignment]  # redis-py types replies loosely
                    if not old:
                        continue
                    pipe = self._client.pipeline(transaction=True)
                    for member in old:
                        resource = _decode(member, 0).resource_id
                        pipe.zrem(self._keys.audit_of(kind, resource), member)
                    pipe.zrem(feed, *old)
                    pipe.execute()
                removed += len(old)
        return removed
