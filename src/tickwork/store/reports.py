"""Report schedules, and the internal load test and schedule each one runs as.

A report is fired by the same scheduler as everything else: creating one writes, in one
transaction, the report record, an internal load test (``kind`` "report", runner
``{"type": "report", "report_id": ...}``, in no listing, invisible to the k6 API) and that
load test's one schedule (dialect ``report``, in the due index only). The scheduler fires it
into an ordinary test run of the internal load test; the worker's report runner builds and
sends the digest. Deleting a report deletes all three; its runs stay readable by id.

Each write queues its audit entry (kind ``report``, the report's id) in the same transaction:
created, updated (the attrs that changed, old -> new), deleted. The trail of a deleted report
stays readable by its stack until retention removes it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import redis

from tickwork.core import Schedule
from tickwork.core.instants import from_us, to_us
from tickwork.errors import NotFound, StoreError
from tickwork.store.audit import INTERNAL, SCHEDULE_KINDS, Actor, Change, changes_between
from tickwork.store.connection import text_of, translated
from tickwork.store.keys import Keys
from tickwork.store.load_tests import LoadTestRecord, LoadTests
from tickwork.store.paging import read_text_page
from tickwork.store.quotas import INDEX_OF, Quotas, check_count
from tickwork.store.schedules import (
    ReportSchedule,
    ScheduleRecord,
    Schedules,
    new_record,
    retimed,
)
from tickwork.store.transactions import transact

Pipeline = redis.client.Pipeline
DIALECT = ReportSchedule.dialect
KIND = "report"


@dataclass(frozen=True, slots=True)
class ReportRecord:
    id: str  # a UUID
    stack: int
    attrs: dict[str, Any]  # the report's settings, as its dialect validated them
    scheduled_at: datetime
    scheduled_by: str | None
    load_test_id: int
    schedule_id: int
    first_run_at: datetime | None = None
    last_run_at: datetime | None = None


# Given the current report: the updated one, and its new trigger when the timing changed.
ReportChange = Callable[[ReportRecord], tuple[ReportRecord, Schedule | None]]


def _encode(report: ReportRecord) -> dict[Any, Any]:
    return {
        "id": report.id,
        "stack": str(report.stack),
        "attrs": json.dumps(report.attrs, separators=(",", ":")),
        "scheduled_at_us": str(to_us(report.scheduled_at)),
        "scheduled_by": report.scheduled_by or "",
        "load_test_id": str(report.load_test_id),
        "schedule_id": str(report.schedule_id),
        "first_run_us": "" if report.first_run_at is None else str(to_us(report.first_run_at)),
        "last_run_us": "" if report.last_run_at is None else str(to_us(report.last_run_at)),
    }


def _decode(fields: Mapping[Any, Any]) -> ReportRecord:
    text = {text_of(k): text_of(v) for k, v in fields.items()}
    try:
        return ReportRecord(
            id=text["id"],
            stack=int(text["stack"]),
            attrs=json.loads(text["attrs"]),
            scheduled_at=from_us(int(text["scheduled_at_us"])),
            scheduled_by=text["scheduled_by"] or None,
            load_test_id=int(text["load_test_id"]),
            schedule_id=int(text["schedule_id"]),
            first_run_at=from_us(int(text["first_run_us"])) if text.get("first_run_us") else None,
            last_run_at=from_us(int(text["last_run_us"])) if text.get("last_run_us") else None,
        )
    except (KeyError, ValueError) as exc:
        raise StoreError(f"unreadable report schedule: {exc}") from exc


class Reports:
    def __init__(
        self, client: redis.Redis, keys: Keys, schedules: Schedules, load_tests: LoadTests
    ) -> None:
        self._client = client
        self._keys = keys
        self._schedules = schedules
        self._load_tests = load_tests

    def create(
        self,
        stack: int,
        *,
        attrs: dict[str, Any],
        schedule: Schedule,
        now: datetime,
        scheduled_by: str | None,
        actor: Actor = INTERNAL,
        quotas: Quotas | None = None,
    ) -> ReportRecord:
        """A new report, with its internal load test and schedule; QuotaExceeded when the
        stack holds its ``report_schedules`` quota already (None: not limited)."""
        keys = self._keys
        report_id = str(uuid.uuid4())
        index = keys.stack_index(stack, INDEX_OF["report_schedules"])

        def attempt(pipe: Pipeline) -> ReportRecord:
            if quotas is not None:
                check_count(pipe, index, quota="report_schedules", limit=quotas.report_schedules)
            load_test_id = int(self._client.incr(keys.ids("load_test")))
            schedule_id = int(self._client.incr(keys.ids("schedule")))
            report = ReportRecord(
                id=report_id,
                stack=stack,
                attrs=attrs,
                scheduled_at=now,
                scheduled_by=scheduled_by,
                load_test_id=load_test_id,
                schedule_id=schedule_id,
            )
            record = new_record(
                schedule_id=schedule_id,
                stack=stack,
                load_test_id=load_test_id,
                schedule=schedule,
                owner=ReportSchedule(report_id=report_id),
                created_by=scheduled_by,
                now=now,
            )
            internal = LoadTestRecord(
                id=load_test_id,
                stack=stack,
                project_id=0,
                name=f"report {report_id}",
                created=now,
                updated=now,
                runner={"type": "report", "report_id": report_id},
                kind=KIND,
            )
            pipe.multi()
            pipe.hset(keys.report(report_id), mapping=_encode(report))
            pipe.zadd(index, {report_id: to_us(now)})
            self._load_tests.queue_create_internal(pipe, internal)
            pipe.set(keys.load_test_schedule(load_test_id), schedule_id)
            self._schedules.write(pipe, record)
            self._audit(pipe, report, "created", actor=actor, at=now)
            return report

        return transact(self._client, attempt)

    def get(self, stack: int, report_id: str) -> ReportRecord:
        """The report in ``stack``; NotFound for a missing one or another stack's."""
        report = self.get_any(report_id)
        if report is None or report.stack != stack:
            raise NotFound(f"Report schedule {report_id} not found.")
        return report

    def get_any(self, report_id: str) -> ReportRecord | None:
        with translated():
            fields = self._client.hgetall(self._keys.report(report_id))
        return _decode(fields) if fields else None

    def select(
        self,
        stack: int,
        *,
        ids: list[str] | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> list[ReportRecord]:
        """The stack's reports, oldest first: those named in ``ids``, or all; only those
        scheduled within [since_us, until_us] when given. Reads the stack's index (a range
        of it with bounds), then each record."""
        low = "-inf" if since_us is None else since_us
        high = "+inf" if until_us is None else until_us
        with translated():
            if ids is None:
                raw = self._client.zrangebyscore(
                    self._keys.stack_index(stack, "reports"), low, high
                )
                wanted = [text_of(member) for member in raw]
            else:
                wanted = list(dict.fromkeys(ids))
            pipe = self._client.pipeline(transaction=False)
            for report_id in wanted:
                pipe.hgetall(self._keys.report(report_id))
            rows = pipe.execute()
        found = [_decode(row) for row in rows if row]
        found = [r for r in found if r.stack == stack and _within(r, since_us, until_us)]
        return sorted(found, key=_creation)

    def page(
        self,
        stack: int,
        *,
        skip: int,
        top: int,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> tuple[list[ReportRecord], int]:
        """The stack's reports ``skip`` .. ``skip + top - 1`` in ``select``'s order, among
        those scheduled within [since_us, until_us] when given, and how many there are:
        O(page), whatever the total.

        The index orders reports of one instant by id, ``select`` by creation: when more
        reports share the page's first or last instant than the page holds, the page is cut
        again from every report of its instants."""
        index = self._keys.stack_index(stack, "reports")
        below = None if until_us is None else until_us + 1  # the index's range is half-open
        rows, total = read_text_page(
            self._client, index, self._keys.report, skip=skip, top=top, low=since_us, below=below
        )
        page = sorted((_decode(row) for row in rows), key=_creation)
        if not page:
            return [], total
        first, last = to_us(page[0].scheduled_at), to_us(page[-1].scheduled_at)
        with translated():
            pipe = self._client.pipeline(transaction=False)
            pipe.zcount(index, first, last)
            pipe.zcount(index, "-inf" if since_us is None else since_us, f"({first}")
            span, before = (int(count) for count in pipe.execute())
        if span > min(top, total - skip):  # some of those instants' reports are off the page
            rows, _ = read_text_page(
                self._client, index, self._keys.report, skip=0, top=span, low=first, below=last + 1
            )
            everyone = sorted((_decode(row) for row in rows), key=_creation)
            page = everyone[skip - before : skip - before + top]
        return page, total

    def update(
        self,
        stack: int,
        report_id: str,
        change: ReportChange,
        *,
        now: datetime,
        actor: Actor = INTERNAL,
    ) -> ReportRecord:
        """Apply ``change``; a new trigger moves the report's schedule in the same
        transaction (occurrences before ``now`` never fire)."""
        key = self._keys.report(report_id)

        def attempt(pipe: Pipeline) -> ReportRecord:
            fields = pipe.hgetall(key)
            current = _decode(fields) if fields else None
            if current is None or current.stack != stack:
                raise NotFound(f"Report schedule {report_id} not found.")
            updated, schedule = change(current)
            record = None
            if schedule is not None:
                pipe.watch(self._keys.schedule(current.schedule_id))
                record = self._schedules.get_any(current.schedule_id)
            pipe.multi()
            pipe.hset(key, mapping=_encode(updated))
            if record is not None and schedule is not None:
                self._schedules.write(pipe, retimed(record, schedule, now=now))
            changes = changes_between(current.attrs, updated.attrs)
            self._audit(pipe, updated, "updated", actor=actor, at=now, changes=changes)
            return updated

        return transact(self._client, attempt, key)

    def delete_many(
        self, stack: int, report_ids: list[str], *, now: datetime, actor: Actor = INTERNAL
    ) -> None:
        """Delete every named report, or none: NotFound naming those that are missing."""
        keys = self._keys
        wanted = list(dict.fromkeys(report_ids))

        def attempt(pipe: Pipeline) -> None:
            reports = [self.get_any(report_id) for report_id in wanted]
            missing = [
                report_id
                for report_id, report in zip(wanted, reports, strict=True)
                if report is None or report.stack != stack
            ]
            if missing:
                raise NotFound("Report schedules not found: " + ", ".join(missing) + ".")
            owned = [report for report in reports if report is not None]
            pipe.watch(*(keys.schedule(report.schedule_id) for report in owned))
            schedules = [self._schedules.get_any(r.schedule_id) for r in owned]
            pipe.multi()
            for report, schedule in zip(owned, schedules, strict=True):
                self._queue_delete(pipe, report, schedule)
                self._audit(pipe, report, "deleted", actor=actor, at=now)

        transact(self._client, attempt, *(keys.report(report_id) for report_id in wanted))

    def record_run(self, report_id: str, *, at: datetime) -> None:
        """Note an execution: the first one is kept, the last one replaced. Nothing when the
        report was deleted meanwhile (a partial record must not reappear)."""
        key = self._keys.report(report_id)

        def attempt(pipe: Pipeline) -> None:
            fields = pipe.hgetall(key)
            if not fields:
                return  # nothing queued: nothing written
            report = _decode(fields)
            updated = replace(report, first_run_at=report.first_run_at or at, last_run_at=at)
            pipe.multi()
            pipe.hset(key, mapping=_encode(updated))

        transact(self._client, attempt, key)

    def _audit(
        self,
        pipe: Pipeline,
        report: ReportRecord,
        action: str,
        *,
        actor: Actor,
        at: datetime,
        changes: Sequence[Change] = (),
    ) -> None:
        self._schedules.audit.queue(
            pipe,
            stack=report.stack,
            kind=SCHEDULE_KINDS[DIALECT],
            resource_id=report.id,
            action=action,
            actor=actor,
            at=at,
            changes=changes,
        )

    def _queue_delete(
        self, pipe: Pipeline, report: ReportRecord, schedule: ScheduleRecord | None
    ) -> None:
        keys = self._keys
        pipe.delete(keys.report(report.id))
        pipe.zrem(keys.stack_index(report.stack, "reports"), report.id)
        pipe.delete(
            keys.load_test(report.load_test_id),
            keys.load_test_runs(report.load_test_id),
            keys.load_test_last_run(report.load_test_id),
        )
        if schedule is not None:
            self._schedules.queue_delete(pipe, schedule)  # its record, due entry and pointer
        else:
            pipe.delete(keys.load_test_schedule(report.load_test_id))


def _creation(report: ReportRecord) -> tuple[datetime, int]:
    """Oldest first; reports of one instant in the order they were created."""
    return report.scheduled_at, report.load_test_id


def _within(report: ReportRecord, since_us: int | None, until_us: int | None) -> bool:
    at = to_us(report.scheduled_at)
    return (since_us is None or at >= since_us) and (until_us is None or at <= until_us)
