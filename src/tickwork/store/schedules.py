"""Schedule records and the due index, kept consistent in one transaction per write.

A schedule's ``fired_through`` is the instant up to which its occurrences are settled
(fired, skipped, or passed while deactivated or before it was set); ``next`` is the first
occurrence after it, and the due index holds ``next`` for every active schedule that has one.
Every write bumps ``version`` and nudges the scheduler.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import redis

from tickwork.core import Schedule, next_after
from tickwork.core.instants import ONE_MICROSECOND, from_us, to_ms, to_us
from tickwork.errors import Conflict, NotFound
from tickwork.store.codec import decode_schedule, encode_schedule
from tickwork.store.connection import text_of, translated
from tickwork.store.keys import Keys
from tickwork.store.paging import read_page

OVERLAP_POLICIES = ("skip", "allow")


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    id: int
    stack: int
    load_test_id: int
    schedule: Schedule
    request: str  # the wire document as given, echoed back by its dialect
    dialect: str
    deactivated: bool
    created_by: str | None
    fired_through: datetime
    next_at: datetime | None
    version: int
    overlap: str = "skip"
    catch_up_s: int | None = None  # None: the deployment's default window

    def upcoming(self, *, now: datetime) -> datetime | None:
        """The next occurrence that can still fire: the due entry, or for a deactivated
        schedule the one that would fire if it were activated now."""
        if not self.deactivated:
            return self.next_at
        return next_after(self.schedule, max(self.fired_through, now - ONE_MICROSECOND))


ChangeFn = Callable[[ScheduleRecord], ScheduleRecord]


def retimed(record: ScheduleRecord, schedule: Schedule, *, now: datetime) -> ScheduleRecord:
    """The record on a new trigger, as ``put`` sets one: occurrences before ``now``, and any
    already settled, never fire. Its deactivated state and id stay."""
    fired_through = max(record.fired_through, now - ONE_MICROSECOND)
    return replace(
        record,
        schedule=schedule,
        fired_through=fired_through,
        next_at=next_after(schedule, fired_through),
        version=record.version + 1,
    )


def _encode(record: ScheduleRecord) -> dict[Any, Any]:
    return {
        "id": str(record.id),
        "stack": str(record.stack),
        "load_test_id": str(record.load_test_id),
        "trigger": encode_schedule(record.schedule),
        "request": record.request,
        "dialect": record.dialect,
        "deactivated": "1" if record.deactivated else "0",
        "created_by": record.created_by or "",
        "fired_through_us": str(to_us(record.fired_through)),
        "next_us": "" if record.next_at is None else str(to_us(record.next_at)),
        "version": str(record.version),
        "overlap": record.overlap,
        "catch_up_s": "" if record.catch_up_s is None else str(record.catch_up_s),
    }


def decode(fields: Mapping[Any, Any]) -> ScheduleRecord:
    text = {text_of(k): text_of(v) for k, v in fields.items()}
    return ScheduleRecord(
        id=int(text["id"]),
        stack=int(text["stack"]),
        load_test_id=int(text["load_test_id"]),
        schedule=decode_schedule(text["trigger"]),
        request=text["request"],
        dialect=text["dialect"],
        deactivated=text["deactivated"] == "1",
        created_by=text["created_by"] or None,
        fired_through=from_us(int(text["fired_through_us"])),
        next_at=from_us(int(text["next_us"])) if text["next_us"] else None,
        version=int(text["version"]),
        overlap=text.get("overlap") or "skip",
        catch_up_s=int(text["catch_up_s"]) if text.get("catch_up_s") else None,
    )


class Schedules:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    def get(self, stack: int, schedule_id: int, *, dialect: str = "k6") -> ScheduleRecord:
        """The schedule in ``stack``; NotFound for a missing one, another stack's, or one of
        another dialect: Kragle jobs and report schedules share the id space and the due
        index with k6 schedules, but each API sees only its own."""
        with translated():
            fields = self._client.hgetall(self._keys.schedule(schedule_id))
        if not fields:
            raise NotFound(f"Schedule {schedule_id} not found.")
        record = decode(fields)
        if record.stack != stack or record.dialect != dialect:
            raise NotFound(f"Schedule {schedule_id} not found.")
        return record

    def get_any(self, schedule_id: int) -> ScheduleRecord | None:
        """The schedule whatever its stack (for the scheduler); None when missing."""
        with translated():
            fields = self._client.hgetall(self._keys.schedule(schedule_id))
        return decode(fields) if fields else None

    def for_load_test(self, stack: int, load_test_id: int) -> ScheduleRecord:
        with translated():
            raw = self._client.get(self._keys.load_test_schedule(load_test_id))
        if raw is None:
            raise NotFound(f"Load test {load_test_id} has no schedule.")
        return self.get(stack, int(text_of(raw)))

    def page(self, stack: int, *, skip: int, top: int) -> tuple[list[ScheduleRecord], int]:
        """One page of the stack's schedules by id, and how many there are in all."""
        index = self._keys.stack_index(stack, "schedules")
        rows, total = read_page(self._client, index, self._keys.schedule, skip=skip, top=top)
        return [decode(row) for row in rows], total

    def put(
        self,
        *,
        stack: int,
        load_test_id: int,
        schedule: Schedule,
        request: str,
        dialect: str,
        created_by: str | None,
        now: datetime,
        overlap: str = "skip",
        catch_up_s: int | None = None,
    ) -> ScheduleRecord:
        """Set the load test's schedule, keeping the id (and the deactivated state) of the
        one it replaces. Occurrences before ``now`` never fire."""
        pointer = self._keys.load_test_schedule(load_test_id)
        with translated(), self._client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(pointer)
                    existing_id = pipe.get(pointer)
                    previous = self.get_any(int(text_of(existing_id))) if existing_id else None
                    schedule_id = (
                        previous.id
                        if previous
                        else int(self._client.incr(self._keys.ids("schedule")))
                    )
                    fired_through = now - ONE_MICROSECOND
                    record = ScheduleRecord(
                        id=schedule_id,
                        stack=stack,
                        load_test_id=load_test_id,
                        schedule=schedule,
                        request=request,
                        dialect=dialect,
                        deactivated=previous.deactivated if previous else False,
                        created_by=created_by if previous is None else previous.created_by,
                        fired_through=fired_through,
                        next_at=next_after(schedule, fired_through),
                        version=(previous.version + 1) if previous else 1,
                        overlap=overlap,
                        catch_up_s=catch_up_s,
                    )
                    pipe.multi()
                    pipe.set(pointer, schedule_id)
                    pipe.zadd(
                        self._keys.stack_index(stack, "schedules"), {str(schedule_id): schedule_id}
                    )
                    self.write(pipe, record)
                    pipe.execute()
                    return record
                except redis.WatchError:
                    continue

    def write(self, pipe: redis.client.Pipeline, record: ScheduleRecord) -> None:
        """Queue the record and its due-index entry on a MULTI pipeline, and nudge."""
        key = self._keys.schedule(record.id)
        pipe.delete(key)
        pipe.hset(key, mapping=_encode(record))
        if record.next_at is not None and not record.deactivated:
            pipe.zadd(self._keys.due, {str(record.id): to_ms(record.next_at)})
        else:
            pipe.zrem(self._keys.due, str(record.id))
        self.nudge(pipe)

    def queue_advance(
        self,
        pipe: redis.client.Pipeline,
        record: ScheduleRecord,
        *,
        fired_through: datetime,
        next_at: datetime | None,
    ) -> None:
        """Queue a fired schedule's move: its high-water mark and due-index entry only.

        The fire path WATCHes the schedule, so nothing else in the record changed; and the
        leader doing the firing needs no nudge."""
        pipe.hset(
            self._keys.schedule(record.id),
            mapping={
                "fired_through_us": str(to_us(fired_through)),
                "next_us": "" if next_at is None else str(to_us(next_at)),
            },
        )
        if next_at is not None and not record.deactivated:
            pipe.zadd(self._keys.due, {str(record.id): to_ms(next_at)})
        else:
            pipe.zrem(self._keys.due, str(record.id))

    def nudge(self, pipe: redis.client.Pipeline) -> None:
        pipe.lpush(self._keys.nudge, "1")
        pipe.ltrim(self._keys.nudge, 0, 0)

    def _update(self, stack: int, schedule_id: int, change: ChangeFn) -> ScheduleRecord:
        key = self._keys.schedule(schedule_id)
        with translated(), self._client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    current = self.get(stack, schedule_id)
                    updated = change(current)
                    if updated is current:
                        pipe.unwatch()
                        return current
                    pipe.multi()
                    self.write(pipe, updated)
                    pipe.execute()
                    return updated
                except redis.WatchError:
                    continue

    def activate(self, stack: int, schedule_id: int, *, now: datetime) -> ScheduleRecord:
        """Activate; Conflict when no occurrence remains. Passed occurrences never fire."""

        def change(record: ScheduleRecord) -> ScheduleRecord:
            fired_through = max(record.fired_through, now - ONE_MICROSECOND)
            upcoming = next_after(record.schedule, fired_through)
            if upcoming is None:
                raise Conflict(f"Schedule {schedule_id} has expired: no occurrence remains.")
            if not record.deactivated:
                return record
            return replace(
                record,
                deactivated=False,
                fired_through=fired_through,
                next_at=upcoming,
                version=record.version + 1,
            )

        return self._update(stack, schedule_id, change)

    def deactivate(self, stack: int, schedule_id: int) -> ScheduleRecord:
        def change(record: ScheduleRecord) -> ScheduleRecord:
            if record.deactivated or record.next_at is None:
                return record  # already inactive, or expired: no effect
            return replace(record, deactivated=True, version=record.version + 1)

        return self._update(stack, schedule_id, change)

    def delete(self, stack: int, schedule_id: int) -> None:
        key = self._keys.schedule(schedule_id)
        with translated(), self._client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    record = self.get(stack, schedule_id)
                    pipe.multi()
                    self.queue_delete(pipe, record)
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue

    def queue_unschedule(self, pipe: redis.client.Pipeline, record: ScheduleRecord) -> None:
        """Queue the removal of a schedule that is not its load test's one schedule (a Kragle
        job): its record and due entry go, the load test's pointer stays (MULTI pipeline)."""
        pipe.delete(self._keys.schedule(record.id))
        pipe.zrem(self._keys.due, str(record.id))
        self.nudge(pipe)

    def queue_delete(self, pipe: redis.client.Pipeline, record: ScheduleRecord) -> None:
        """Queue the removal of a schedule everywhere it is indexed (MULTI pipeline)."""
        pipe.delete(self._keys.schedule(record.id))
        pipe.zrem(self._keys.due, str(record.id))
        pipe.zrem(self._keys.stack_index(record.stack, "schedules"), str(record.id))
        pipe.delete(self._keys.load_test_schedule(record.load_test_id))
        self.nudge(pipe)
