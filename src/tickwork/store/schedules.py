"""Schedule records and the due index, kept consistent in one transaction per write.

A schedule's ``fired_through`` is the instant up to which its occurrences are settled
(fired, skipped, or passed while deactivated or before it was set); ``next`` is the first
occurrence after it, and the due index holds ``next`` for every active schedule that has one.
Every write bumps ``version`` and nudges the scheduler.

``fired_through`` never moves backwards, whoever writes the record:

- every write here WATCHes the schedule's hash, so it is serialised with the fire commit
  (which writes that hash): a write sees the fire, or the fire sees the write's new version;
- a write that changes the timing starts from ``max(fired_through, now - 1 µs)``; one that
  leaves it unchanged keeps ``fired_through`` and ``next`` as they are (it neither fires nor
  drops an occurrence);
- the fire commit keeps its own mark, ``committed_us``, which only it writes and which
  ``decode`` folds into ``fired_through``: the script refuses an occurrence at or before it
  (see ``fires.py``), so even a writer that got all of the above wrong cannot fire twice.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from importlib.resources import files
from typing import Any, ClassVar

import redis
from redis.client import Pipeline

from tickwork.core import Schedule, next_after
from tickwork.core.instants import ONE_MICROSECOND, format_instant, from_us, to_ms, to_us
from tickwork.core.jitter import jitter_offset
from tickwork.core.windows import Timing, Window, timing
from tickwork.errors import Conflict, LeaseLost, NotFound, StoreError
from tickwork.store.audit import (
    INTERNAL,
    SCHEDULE_KINDS,
    SCHEDULER,
    Actor,
    Audit,
    changes_between,
)
from tickwork.store.codec import decode_schedule, encode_schedule
from tickwork.store.connection import text_of, translated
from tickwork.store.keys import Keys
from tickwork.store.leases import Lease
from tickwork.store.paging import read_page
from tickwork.store.quotas import INDEX_OF, check_count
from tickwork.store.transactions import transact
from tickwork.store.windows import (
    MAX_SCHEDULE_WINDOWS,
    WindowRecord,
    decode_windows,
    encode_windows,
    with_new_id,
)


@dataclass(frozen=True, slots=True)
class K6Schedule:
    """The load test's one k6 schedule; ``request_echo`` is its CreateScheduleRequest as
    given, which the k6 dialect echoes back (``starts`` as written)."""

    request_echo: str
    dialect: ClassVar[str] = "k6"


@dataclass(frozen=True, slots=True)
class KragleJob:
    """A Kragle job: the load test fired on the timing of Kragle template ``template_id``."""

    template_id: int
    dialect: ClassVar[str] = "kragle"


@dataclass(frozen=True, slots=True)
class ReportSchedule:
    """The schedule of report ``report_id`` (its internal load test is the one fired)."""

    report_id: str
    dialect: ClassVar[str] = "report"


Owner = K6Schedule | KragleJob | ReportSchedule
"""Whose schedule a record is: it decides which API sees it and how it is rendered."""


@dataclass(frozen=True, slots=True)
class Pause:
    """A span in which the schedule was deactivated: its occurrences then pass without runs
    (the ledger shows them skipped, reason ``paused``) and still count toward count/until."""

    since: datetime
    until: datetime | None = None  # None: still paused
    by: str | None = None
    note: str = ""
    resume_at: datetime | None = None  # the leader re-activates it then

    def covers(self, instant: datetime) -> bool:
        return self.since <= instant and (self.until is None or instant < self.until)


PAUSES_KEPT = 20
"""Pause spans a schedule remembers (the oldest go first): the ledger's memory of pauses."""


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    id: int
    stack: int
    load_test_id: int
    schedule: Schedule
    owner: Owner
    deactivated: bool
    created_by: str | None
    fired_through: datetime
    next_at: datetime | None
    version: int
    overlap: str = "skip"
    catch_up_s: int | None = None  # None: the deployment's default window
    since: datetime | None = None  # when its timing took effect: earlier occurrences are not its
    pauses: tuple[Pause, ...] = ()
    forgotten_through: datetime | None = None  # retention removed the runs up to here
    jitter_s: int = 0  # each occurrence runs up to this much after its instant
    windows: tuple[WindowRecord, ...] = ()  # its own blackout windows (the stack's apart)

    def planned(self, at: datetime) -> datetime:
        """When the occurrence at ``at`` runs, windows aside: its instant plus its jitter."""
        return at + jitter_offset(self.id, at, self.jitter_s) if self.jitter_s else at

    def timing(self, at: datetime, stack_windows: Iterable[Window] = ()) -> Timing:
        """What becomes of the occurrence at ``at``: its jitter, then its own and its
        stack's blackout windows (skipped, or deferred to a window's end)."""
        planned = self.planned(at)
        windows = (*(w.window for w in self.windows), *stack_windows)
        return timing(planned, windows, offset=planned - at) if windows else Timing(planned)

    @property
    def due_ms(self) -> int | None:
        """Its due-index score: the planned instant of its next occurrence (ms)."""
        return None if self.next_at is None else to_ms(self.planned(self.next_at))

    @property
    def pause(self) -> Pause | None:
        """The pause in force, if deactivated."""
        if self.deactivated and self.pauses and self.pauses[-1].until is None:
            return self.pauses[-1]
        return None

    def paused(
        self, *, now: datetime, by: str | None, note: str = "", resume_at: datetime | None = None
    ) -> ScheduleRecord:
        """Deactivated from ``now`` (its pause remembered). An occurrence already due and not
        yet settled (no leader, or one running late) never fires now: the pause covers it."""
        since = now if self.next_at is None else min(now, self.next_at)
        pause = Pause(since=since, by=by, note=note, resume_at=resume_at)
        return replace(
            self,
            deactivated=True,
            pauses=(*self.pauses, pause)[-PAUSES_KEPT:],
            version=self.version + 1,
        )

    @property
    def dialect(self) -> str:
        return self.owner.dialect

    def upcoming(self, *, now: datetime) -> datetime | None:
        """The next occurrence that can still fire: the due entry, or for a deactivated
        schedule the one that would fire if it were activated now."""
        if not self.deactivated:
            return self.next_at
        return next_after(self.schedule, max(self.fired_through, now - ONE_MICROSECOND))

    def expired(self, *, now: datetime) -> bool:
        """No occurrence remains to fire after ``now`` (whether or not the scheduler has
        settled the last one yet): activate answers 409, deactivate does nothing."""
        return next_after(self.schedule, max(self.fired_through, now - ONE_MICROSECOND)) is None


ChangeFn = Callable[[ScheduleRecord], ScheduleRecord]


def new_record(
    *,
    schedule_id: int,
    stack: int,
    load_test_id: int,
    schedule: Schedule,
    owner: Owner,
    created_by: str | None,
    now: datetime,
    overlap: str = "skip",
    catch_up_s: int | None = None,
    jitter_s: int = 0,
) -> ScheduleRecord:
    """A schedule set at ``now``: its first occurrence is the first at or after ``now``."""
    fired_through = now - ONE_MICROSECOND
    return ScheduleRecord(
        id=schedule_id,
        stack=stack,
        load_test_id=load_test_id,
        schedule=schedule,
        owner=owner,
        deactivated=False,
        created_by=created_by,
        fired_through=fired_through,
        next_at=next_after(schedule, fired_through),
        version=1,
        overlap=overlap,
        catch_up_s=catch_up_s,
        since=fired_through,
        jitter_s=jitter_s,
    )


def same_timing(a: Schedule, b: Schedule) -> bool:
    """Whether two schedules have the same occurrences (offsets of ``starts`` included: a
    rule's time of day and UTC offset are those of its ``starts``)."""
    return encode_schedule(a) == encode_schedule(b)


def retimed(record: ScheduleRecord, schedule: Schedule, *, now: datetime) -> ScheduleRecord:
    """The record on ``schedule``, set at ``now``. The same timing changes nothing about which
    occurrences run; a new timing starts afresh from ``now``, and occurrences already settled
    never fire again. Its deactivated state and id stay."""
    if same_timing(record.schedule, schedule):
        return replace(record, version=record.version + 1)
    fired_through = max(record.fired_through, now - ONE_MICROSECOND)
    return replace(
        record,
        schedule=schedule,
        fired_through=fired_through,
        next_at=next_after(schedule, fired_through),
        version=record.version + 1,
        since=fired_through,
    )


def reactivated(record: ScheduleRecord, *, now: datetime) -> ScheduleRecord:
    """The deactivated ``record`` active again at ``now``: occurrences that passed while it
    was deactivated do not fire."""
    fired_through = max(record.fired_through, now - ONE_MICROSECOND)
    pauses = record.pauses
    if pauses and pauses[-1].until is None:
        pauses = (*pauses[:-1], replace(pauses[-1], until=now))
    return replace(
        record,
        deactivated=False,
        fired_through=fired_through,
        next_at=next_after(record.schedule, fired_through),
        version=record.version + 1,
        pauses=pauses,
    )


def _encode(record: ScheduleRecord) -> dict[Any, Any]:
    return {
        "id": str(record.id),
        "stack": str(record.stack),
        "load_test_id": str(record.load_test_id),
        "trigger": encode_schedule(record.schedule),
        # Stored as two fields, as ever: the dialect, and its echo or its owner's id.
        "request": _owner_text(record.owner),
        "dialect": record.owner.dialect,
        "deactivated": "1" if record.deactivated else "0",
        "created_by": record.created_by or "",
        "fired_through_us": str(to_us(record.fired_through)),
        "next_us": "" if record.next_at is None else str(to_us(record.next_at)),
        "version": str(record.version),
        "overlap": record.overlap,
        "catch_up_s": "" if record.catch_up_s is None else str(record.catch_up_s),
        "since_us": "" if record.since is None else str(to_us(record.since)),
        "jitter_s": str(record.jitter_s),
        "windows": encode_windows(record.windows) if record.windows else "",
        "pauses": json.dumps([_pause_json(pause) for pause in record.pauses]),
    }


def _pause_json(pause: Pause) -> dict[str, Any]:
    return {
        "since_us": to_us(pause.since),
        "until_us": None if pause.until is None else to_us(pause.until),
        "by": pause.by,
        "note": pause.note,
        "resume_at_us": None if pause.resume_at is None else to_us(pause.resume_at),
    }


def _pause(data: dict[str, Any]) -> Pause:
    return Pause(
        since=from_us(data["since_us"]),
        until=None if data["until_us"] is None else from_us(data["until_us"]),
        by=data.get("by"),
        note=data.get("note") or "",
        resume_at=None if data.get("resume_at_us") is None else from_us(data["resume_at_us"]),
    )


def _owner_text(owner: Owner) -> str:
    if isinstance(owner, K6Schedule):
        return owner.request_echo
    if isinstance(owner, KragleJob):
        return json.dumps({"kragle_schedule_id": owner.template_id})
    return json.dumps({"report_id": owner.report_id})


def _owner(dialect: str, text: str) -> Owner:
    if dialect == K6Schedule.dialect:
        return K6Schedule(request_echo=text)
    if dialect == KragleJob.dialect:
        return KragleJob(template_id=int(json.loads(text)["kragle_schedule_id"]))
    if dialect == ReportSchedule.dialect:
        return ReportSchedule(report_id=str(json.loads(text)["report_id"]))
    raise StoreError(f"schedule of unknown dialect {dialect!r}")


def decode(fields: Mapping[Any, Any]) -> ScheduleRecord:
    text = {text_of(k): text_of(v) for k, v in fields.items()}
    # What the fire commit settled is settled, whatever a writer left in fired_through_us.
    fired_through_us = max(int(text["fired_through_us"]), int(text.get("committed_us") or 0))
    return ScheduleRecord(
        id=int(text["id"]),
        stack=int(text["stack"]),
        load_test_id=int(text["load_test_id"]),
        schedule=decode_schedule(text["trigger"]),
        owner=_owner(text["dialect"], text["request"]),
        deactivated=text["deactivated"] == "1",
        created_by=text["created_by"] or None,
        fired_through=from_us(fired_through_us),
        next_at=from_us(int(text["next_us"])) if text["next_us"] else None,
        version=int(text["version"]),
        overlap=text.get("overlap") or "skip",
        catch_up_s=int(text["catch_up_s"]) if text.get("catch_up_s") else None,
        since=from_us(int(text["since_us"])) if text.get("since_us") else None,
        pauses=tuple(_pause(item) for item in json.loads(text.get("pauses") or "[]")),
        forgotten_through=from_us(int(text["forgotten_us"])) if text.get("forgotten_us") else None,
        jitter_s=int(text.get("jitter_s") or 0),
        windows=decode_windows(text.get("windows")) if text.get("windows") else (),
    )


RESUME_SCRIPT = files("tickwork.store").joinpath("scripts/resume_schedule.lua").read_text()
KEEP_EXPIRY_SCRIPT = files("tickwork.store").joinpath("scripts/keep_expiry.lua").read_text()


def _audited(record: ScheduleRecord) -> dict[str, Any]:
    """What the audit trail compares between two versions of a schedule: its wire document
    as given (for a k6 schedule), or its timing, and its state."""
    fields: dict[str, Any] = {"deactivated": record.deactivated}
    if isinstance(record.owner, K6Schedule):
        fields |= json.loads(record.owner.request_echo or "{}")
    else:
        fields["timing"] = encode_schedule(record.schedule)
    return fields


class Schedules:
    def __init__(self, client: redis.Redis, keys: Keys, audit: Audit) -> None:
        self._client = client
        self._keys = keys
        self.audit = audit
        self._resume = client.register_script(RESUME_SCRIPT)

    def queue_audit(
        self,
        pipe: Pipeline,
        record: ScheduleRecord,
        action: str,
        *,
        actor: Actor,
        at: datetime,
        before: ScheduleRecord | None = None,
        note: str = "",
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Queue the audit entry of a change to ``record`` (from ``before``) on a MULTI."""
        resource: int | str = record.id
        if isinstance(record.owner, ReportSchedule):
            resource = record.owner.report_id
        self.audit.queue(
            pipe,
            stack=record.stack,
            kind=SCHEDULE_KINDS[record.dialect],
            resource_id=resource,
            action=action,
            actor=actor,
            at=at,
            changes=changes_between(_audited(before), _audited(record)) if before else (),
            note=note,
            extra=extra,
        )

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

    def read_many(self, schedule_ids: Sequence[int]) -> dict[int, ScheduleRecord]:
        """The existing ones among ``schedule_ids``, whatever their stack, in one round trip."""
        with translated():
            pipe = self._client.pipeline(transaction=False)
            for schedule_id in schedule_ids:
                pipe.hgetall(self._keys.schedule(schedule_id))
            rows = pipe.execute()
        return {sid: decode(row) for sid, row in zip(schedule_ids, rows, strict=True) if row}

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
        created_by: str | None,
        now: datetime,
        overlap: str = "skip",
        catch_up_s: int | None = None,
        jitter_s: int = 0,
        actor: Actor = INTERNAL,
        quota: int = 0,
    ) -> ScheduleRecord:
        """Set the load test's k6 schedule (``request``: its CreateScheduleRequest as given),
        keeping the id of the one it replaces and activating it (the k6 API's re-POST
        re-activates). Occurrences before ``now`` never fire; an overwrite with the same timing
        neither fires nor drops one (see ``retimed``). A new schedule is refused
        (QuotaExceeded) when the stack holds ``quota`` schedules already (0: unlimited); an
        overwrite keeps its id and is never counted."""
        pointer = self._keys.load_test_schedule(load_test_id)

        def attempt(pipe: Pipeline) -> ScheduleRecord:
            existing_id = pipe.get(pointer)
            previous = before = None
            if existing_id is not None:
                # Serialised with the fire commit, which writes this hash.
                pipe.watch(self._keys.schedule(int(text_of(existing_id))))
                previous = before = self.get_any(int(text_of(existing_id)))
            if previous is None:
                index = self._keys.stack_index(stack, INDEX_OF["schedules"])
                check_count(pipe, index, quota="schedules", limit=quota)
                record = new_record(
                    schedule_id=int(self._client.incr(self._keys.ids("schedule"))),
                    stack=stack,
                    load_test_id=load_test_id,
                    schedule=schedule,
                    owner=K6Schedule(request_echo=request),
                    created_by=created_by,
                    now=now,
                    overlap=overlap,
                    catch_up_s=catch_up_s,
                    jitter_s=jitter_s,
                )
            else:
                if previous.deactivated:
                    previous = reactivated(previous, now=now)
                record = replace(
                    retimed(previous, schedule, now=now),
                    owner=K6Schedule(request_echo=request),
                    overlap=overlap,
                    catch_up_s=catch_up_s,
                    jitter_s=jitter_s,
                )
            pipe.multi()
            pipe.set(pointer, record.id)
            pipe.zadd(self._keys.stack_index(stack, "schedules"), {str(record.id): record.id})
            self.write(pipe, record)
            action = "created" if previous is None else "overwritten"
            self.queue_audit(pipe, record, action, actor=actor, at=now, before=before)
            return record

        return transact(self._client, attempt, pointer)

    def write(self, pipe: redis.client.Pipeline, record: ScheduleRecord) -> None:
        """Queue the record and its due-index entry on a MULTI pipeline, and nudge. Fields
        of the hash that the record does not hold (the fire commit's ``committed_us``) stay."""
        key = self._keys.schedule(record.id)
        self._keep_expiry(pipe, record.id)
        pipe.hset(key, mapping=_encode(record))
        due_ms = record.due_ms
        if due_ms is not None and not record.deactivated:
            pipe.zadd(self._keys.due, {str(record.id): due_ms})
        else:
            pipe.zrem(self._keys.due, str(record.id))
        pause = record.pause
        if pause is not None and pause.resume_at is not None:
            pipe.zadd(self._keys.resume, {str(record.id): to_ms(pause.resume_at)})
        else:
            pipe.zrem(self._keys.resume, str(record.id))
        self.nudge(pipe)

    def _keep_expiry(self, pipe: redis.client.Pipeline, schedule_id: int) -> None:
        """Queue, before a change to the schedule's record, the copy of its expiry's audit
        entry into its own trail (``scripts/keep_expiry.lua``): the fire commit leaves it to
        the record to show it there."""
        pipe.eval(KEEP_EXPIRY_SCRIPT, 1, self._keys.schedule(schedule_id), self._keys.prefix)

    def nudge(self, pipe: redis.client.Pipeline) -> None:
        pipe.lpush(self._keys.nudge, "1")
        pipe.ltrim(self._keys.nudge, 0, 0)

    def resumes_due(self, *, now: datetime, limit: int) -> list[int]:
        """Paused schedules whose resume_at has come, earliest first."""
        with translated():
            raw = self._client.zrangebyscore(self._keys.resume, "-inf", to_ms(now), 0, limit)
        return [int(text_of(member)) for member in raw]

    def forget_resume(self, schedule_id: int) -> None:
        """Drop a resume entry that names nothing to resume (the schedule is gone, or was
        resumed or re-paused by hand meanwhile)."""
        with translated():
            self._client.zrem(self._keys.resume, str(schedule_id))

    def earliest_resume(self) -> int | None:
        """The earliest resume_at (ms) of a paused schedule, or None."""
        with translated():
            first = self._client.zrange(self._keys.resume, 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    def resume(self, lease: Lease, record: ScheduleRecord) -> bool | None:
        """Re-activate the paused ``record`` as of its resume_at, under ``lease``: True when
        done, None when the record changed since it was read (re-read it), False when it
        has no resume_at to act on. LeaseLost when the lease is not ours: a leader that lost
        it never resumes anything, so a resume happens once, whoever leads."""
        pause = record.pause
        if pause is None or pause.resume_at is None:
            return False
        resumed = reactivated(record, now=pause.resume_at)
        feed, trail, entry = self.audit.entry(
            stack=record.stack,
            kind=SCHEDULE_KINDS[record.dialect],
            resource_id=record.id,
            action="resumed",
            actor=SCHEDULER,
            at=pause.resume_at,
            changes=changes_between(_audited(record), _audited(resumed)),
            note=f"resume_at of the pause from {format_instant(pause.since)}",
            entry_id=f"r{record.id}-{to_us(pause.resume_at)}",
        )
        fields = [item for pair in _encode(resumed).items() for item in pair]
        due = "" if resumed.due_ms is None else resumed.due_ms
        keys = [
            self._keys.lease(lease.name),
            self._keys.schedule(record.id),
            self._keys.due,
            self._keys.resume,
            feed,
            trail,
        ]
        args = [lease.value, record.id, record.version, due, entry, to_us(pause.resume_at), *fields]
        with translated():
            answer = self._resume(keys=keys, args=args)
        if answer == -1:
            raise LeaseLost(f"lease {lease.name!r} term {lease.term} is no longer held")
        return True if answer == 1 else None

    def resettle(self, schedule_id: int) -> None:
        """Move a schedule whose due entry lies at or before what the fire commit already
        settled (possible only through a bug elsewhere) to its next occurrence after that."""

        def change(record: ScheduleRecord) -> ScheduleRecord:
            if record.next_at is None or record.next_at > record.fired_through:
                return record
            return replace(
                record,
                next_at=next_after(record.schedule, record.fired_through),
                version=record.version + 1,
            )

        with contextlib.suppress(NotFound):
            record = self.get_any(schedule_id)
            if record is not None:
                self._update(record.stack, schedule_id, change, dialect=record.dialect)

    def _update(
        self,
        stack: int,
        schedule_id: int,
        change: ChangeFn,
        *,
        dialect: str = "k6",
        audit: Callable[[Pipeline, ScheduleRecord, ScheduleRecord], None] | None = None,
    ) -> ScheduleRecord:
        def attempt(pipe: Pipeline) -> ScheduleRecord:
            current = self.get(stack, schedule_id, dialect=dialect)
            updated = change(current)
            if updated is not current:
                pipe.multi()
                self.write(pipe, updated)
                if audit is not None:
                    audit(pipe, current, updated)
            return updated

        return transact(self._client, attempt, self._keys.schedule(schedule_id))

    def activate(
        self, stack: int, schedule_id: int, *, now: datetime, actor: Actor = INTERNAL
    ) -> ScheduleRecord:
        """Activate; Conflict when no occurrence remains. Passed occurrences never fire."""

        def change(record: ScheduleRecord) -> ScheduleRecord:
            if record.expired(now=now):
                raise Conflict(f"Schedule {schedule_id} has expired: no occurrence remains.")
            if not record.deactivated:
                return record
            return reactivated(record, now=now)

        def audit(pipe: Pipeline, before: ScheduleRecord, after: ScheduleRecord) -> None:
            self.queue_audit(pipe, after, "activated", actor=actor, at=now, before=before)

        return self._update(stack, schedule_id, change, audit=audit)

    def deactivate(
        self,
        stack: int,
        schedule_id: int,
        *,
        now: datetime,
        by: str | None = None,
        note: str = "",
        resume_at: datetime | None = None,
        actor: Actor = INTERNAL,
    ) -> ScheduleRecord:
        """Deactivate; no effect on an expired schedule (the k6 documentation's words), even
        when the scheduler has not yet settled its last occurrence."""

        def change(record: ScheduleRecord) -> ScheduleRecord:
            if record.deactivated or record.expired(now=now):
                return record
            return record.paused(now=now, by=by, note=note, resume_at=resume_at)

        def audit(pipe: Pipeline, before: ScheduleRecord, after: ScheduleRecord) -> None:
            extra = {"resume_at": format_instant(resume_at)} if resume_at else None
            self.queue_audit(
                pipe,
                after,
                "deactivated",
                actor=actor,
                at=now,
                before=before,
                note=note,
                extra=extra,
            )

        return self._update(stack, schedule_id, change, audit=audit)

    def add_window(
        self, stack: int, schedule_id: int, window: WindowRecord, *, actor: Actor = INTERNAL
    ) -> ScheduleRecord:
        """Give the schedule a blackout window of its own, under a new id taken once it fits
        (a refused one spends none: the window is the last of the answer's ``windows``);
        Conflict past ``MAX_SCHEDULE_WINDOWS``. Its version moves, so a plan made before is
        refused."""

        def change(record: ScheduleRecord) -> ScheduleRecord:
            if len(record.windows) >= MAX_SCHEDULE_WINDOWS:
                raise Conflict(
                    f"A schedule has at most {MAX_SCHEDULE_WINDOWS} blackout windows: "
                    "delete one first."
                )
            added = with_new_id(self._client, self._keys, window)
            return replace(record, windows=(*record.windows, added), version=record.version + 1)

        def audit(pipe: Pipeline, before: ScheduleRecord, after: ScheduleRecord) -> None:
            self.queue_audit(
                pipe,
                after,
                "window_added",
                actor=actor,
                at=window.created,
                extra={"window_id": after.windows[-1].id},
            )

        return self._update(stack, schedule_id, change, audit=audit)

    def remove_window(
        self,
        stack: int,
        schedule_id: int,
        window_id: int,
        *,
        now: datetime,
        actor: Actor = INTERNAL,
    ) -> WindowRecord:
        """Remove one of the schedule's own windows; NotFound when it has none by that id."""
        removed: list[WindowRecord] = []

        def change(record: ScheduleRecord) -> ScheduleRecord:
            kept = tuple(w for w in record.windows if w.id != window_id)
            if len(kept) == len(record.windows):
                raise NotFound(f"Blackout window {window_id} not found.")
            removed[:] = [w for w in record.windows if w.id == window_id]
            return replace(record, windows=kept, version=record.version + 1)

        def audit(pipe: Pipeline, before: ScheduleRecord, after: ScheduleRecord) -> None:
            self.queue_audit(
                pipe, after, "window_removed", actor=actor, at=now, extra={"window_id": window_id}
            )

        self._update(stack, schedule_id, change, audit=audit)
        return removed[0]

    def delete(
        self, stack: int, schedule_id: int, *, now: datetime, actor: Actor = INTERNAL
    ) -> None:
        def attempt(pipe: Pipeline) -> None:
            record = self.get(stack, schedule_id)
            pipe.multi()
            self.queue_delete(pipe, record)
            self.queue_audit(pipe, record, "deleted", actor=actor, at=now)

        transact(self._client, attempt, self._keys.schedule(schedule_id))

    def queue_unschedule(self, pipe: redis.client.Pipeline, record: ScheduleRecord) -> None:
        """Queue the removal of a schedule that is not its load test's one schedule (a Kragle
        job): its record and due entry go, the load test's pointer stays (MULTI pipeline)."""
        self._keep_expiry(pipe, record.id)
        pipe.delete(self._keys.schedule(record.id), self._keys.schedule_ledger(record.id))
        pipe.zrem(self._keys.due, str(record.id))
        pipe.zrem(self._keys.resume, str(record.id))
        self.nudge(pipe)

    def queue_delete(self, pipe: redis.client.Pipeline, record: ScheduleRecord) -> None:
        """Queue the removal of a schedule everywhere it is indexed (MULTI pipeline); its runs
        stay readable by id."""
        self._keep_expiry(pipe, record.id)
        pipe.delete(self._keys.schedule(record.id), self._keys.schedule_ledger(record.id))
        pipe.zrem(self._keys.due, str(record.id))
        pipe.zrem(self._keys.resume, str(record.id))
        pipe.zrem(self._keys.stack_index(record.stack, "schedules"), str(record.id))
        pipe.delete(self._keys.load_test_schedule(record.load_test_id))
        self.nudge(pipe)
