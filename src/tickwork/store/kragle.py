"""Kragle-style timing templates and the jobs that bind them to load tests.

A template is timing only (a period, or a one-time instant) and fires nothing by itself. A job
binds a template to a load test: it is an ordinary schedule record (dialect ``kragle``; the
job's id is the record's id) carrying the template's core trigger, so the scheduler fires it
from the due index like any other. It is not the load test's one k6 schedule: a load test can
have a k6 schedule and Kragle jobs side by side, and the k6 API does not see the jobs.

Every write that changes what fires is one transaction: changing a template's timing rewrites
every job's trigger and due entry with it; deleting a template deletes its jobs; deleting a
load test deletes its jobs (``prepare_load_test_delete`` is one of its dependents). Each WATCHes
the template, the index of its jobs and every job record it rewrites, so a job bound, changed
or removed meanwhile voids the transaction, which then re-reads and tries again.

Each write queues its audit entries in the same transaction (kinds ``kragle_schedule`` for a
template, ``kragle_job`` for a job): a template created, updated (the wire fields that
changed, old -> new) or deleted; a job created, moved with its template's timing, or deleted
(by itself, with its template, or with its load test).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from tickwork.core import Schedule
from tickwork.core.instants import from_us, to_us
from tickwork.errors import Conflict, NotFound, StoreError
from tickwork.store.audit import INTERNAL, SCHEDULE_KINDS, Actor, Change, changes_between
from tickwork.store.codec import decode_schedule, encode_schedule
from tickwork.store.connection import text_of, translated
from tickwork.store.keys import Keys
from tickwork.store.load_tests import QueuedWrite
from tickwork.store.load_tests import decode as decode_load_test
from tickwork.store.paging import read_page
from tickwork.store.quotas import INDEX_OF, Quotas, check_count
from tickwork.store.schedules import (
    KragleJob,
    ScheduleRecord,
    Schedules,
    new_record,
    retimed,
)
from tickwork.store.schedules import decode as decode_schedule_record
from tickwork.store.transactions import transact

Pipeline = redis.client.Pipeline
DIALECT = KragleJob.dialect
TEMPLATE_KIND = "kragle_schedule"
"""The audit trail's kind of a template; a job's is ``SCHEDULE_KINDS[DIALECT]`` (kragle_job)."""
_TIMING_FIELDS = ("once", "config")


@dataclass(frozen=True, slots=True)
class TemplateRecord:
    id: int
    stack: int
    name: str | None
    once: bool
    config: dict[str, int]  # as given: ``period`` and/or ``timestamp``
    anchor: datetime  # when its timing was last set: a period counts from here
    schedule: Schedule  # the core trigger its jobs fire on
    created_by: str | None
    version: int


TemplateChange = Callable[[TemplateRecord], TemplateRecord]


def _encode(template: TemplateRecord) -> dict[Any, Any]:
    return {
        "id": str(template.id),
        "stack": str(template.stack),
        "name": json.dumps(template.name),
        "once": "1" if template.once else "0",
        "config": json.dumps(template.config, separators=(",", ":")),
        "anchor_us": str(to_us(template.anchor)),
        "trigger": encode_schedule(template.schedule),
        "created_by": template.created_by or "",
        "version": str(template.version),
    }


def _decode(fields: Mapping[Any, Any]) -> TemplateRecord:
    text = {text_of(k): text_of(v) for k, v in fields.items()}
    try:
        return TemplateRecord(
            id=int(text["id"]),
            stack=int(text["stack"]),
            name=json.loads(text["name"]),
            once=text["once"] == "1",
            config=json.loads(text["config"]),
            anchor=from_us(int(text["anchor_us"])),
            schedule=decode_schedule(text["trigger"]),
            created_by=text["created_by"] or None,
            version=int(text["version"]),
        )
    except (KeyError, ValueError) as exc:
        raise StoreError(f"unreadable Kragle schedule: {exc}") from exc


def _audited(template: TemplateRecord) -> dict[str, Any]:
    """What the audit trail compares between two versions of a template: its wire fields."""
    return {"name": template.name, "once": template.once, "config": template.config}


def template_of(job: ScheduleRecord) -> int:
    """The id of the template a job fires on."""
    assert isinstance(job.owner, KragleJob), job.owner
    return job.owner.template_id


class KragleSchedules:
    def __init__(self, client: redis.Redis, keys: Keys, schedules: Schedules) -> None:
        self._client = client
        self._keys = keys
        self._schedules = schedules

    # Templates

    def create(
        self,
        stack: int,
        *,
        name: str | None,
        once: bool,
        config: dict[str, int],
        schedule: Schedule,
        anchor: datetime,
        now: datetime,
        created_by: str | None,
        actor: Actor = INTERNAL,
        quotas: Quotas | None = None,
    ) -> TemplateRecord:
        """A new template whose timing counts from ``anchor``, created at ``now``;
        QuotaExceeded when the stack holds its ``kragle_templates`` quota already (None: not
        limited)."""
        index = self._keys.stack_index(stack, INDEX_OF["kragle_templates"])

        def attempt(pipe: Pipeline) -> TemplateRecord:
            if quotas is not None:
                check_count(pipe, index, quota="kragle_templates", limit=quotas.kragle_templates)
            template_id = int(self._client.incr(self._keys.ids("kragle_schedule")))
            template = TemplateRecord(
                id=template_id,
                stack=stack,
                name=name,
                once=once,
                config=config,
                anchor=anchor,
                schedule=schedule,
                created_by=created_by,
                version=1,
            )
            pipe.multi()
            pipe.hset(self._keys.kragle_schedule(template_id), mapping=_encode(template))
            pipe.zadd(index, {str(template_id): template_id})
            self._audit_template(pipe, template, "created", actor=actor, at=now)
            return template

        return transact(self._client, attempt)

    def get(self, stack: int, template_id: int) -> TemplateRecord:
        """The template in ``stack``; NotFound for a missing one or another stack's."""
        with translated():
            fields = self._client.hgetall(self._keys.kragle_schedule(template_id))
        return self._own(stack, template_id, fields)

    def page(self, stack: int, *, skip: int, top: int) -> tuple[list[TemplateRecord], int]:
        """One page of the stack's templates by id, and how many there are in all."""
        rows, total = read_page(
            self._client,
            self._keys.stack_index(stack, "kragle_schedules"),
            self._keys.kragle_schedule,
            skip=skip,
            top=top,
        )
        return [_decode(row) for row in rows], total

    def update(
        self,
        stack: int,
        template_id: int,
        change: TemplateChange,
        *,
        now: datetime,
        actor: Actor = INTERNAL,
    ) -> TemplateRecord:
        """Apply ``change``; when the trigger changes, every job moves to it in the same
        transaction (occurrences before ``now`` never fire), each with its audit entry."""
        key = self._keys.kragle_schedule(template_id)

        def attempt(pipe: Pipeline) -> TemplateRecord:
            current = self._own(stack, template_id, pipe.hgetall(key))
            jobs = self._watch_jobs(pipe, template_id)
            updated = change(current)
            moved = encode_schedule(updated.schedule) != encode_schedule(current.schedule)
            changes = changes_between(_audited(current), _audited(updated))
            pipe.multi()
            pipe.hset(key, mapping=_encode(updated))
            self._audit_template(pipe, updated, "updated", actor=actor, at=now, changes=changes)
            if moved:
                timing = [c for c in changes if c.field in _TIMING_FIELDS]
                for job in jobs:
                    self._schedules.write(pipe, retimed(job, updated.schedule, now=now))
                    self._audit_job(
                        pipe,
                        job,
                        "updated",
                        actor=actor,
                        at=now,
                        changes=timing,
                        note="with its schedule",
                    )
            return updated

        return transact(self._client, attempt, key, self._keys.kragle_schedule_jobs(template_id))

    def delete(
        self, stack: int, template_id: int, *, now: datetime, actor: Actor = INTERNAL
    ) -> None:
        """Delete the template and its jobs in one transaction; their runs stay readable,
        and so do their audit trails."""
        key = self._keys.kragle_schedule(template_id)
        jobs_key = self._keys.kragle_schedule_jobs(template_id)

        def attempt(pipe: Pipeline) -> None:
            template = self._own(stack, template_id, pipe.hgetall(key))
            jobs = self._watch_jobs(pipe, template_id)
            pipe.multi()
            pipe.delete(key, jobs_key)
            pipe.zrem(self._keys.stack_index(stack, "kragle_schedules"), str(template_id))
            self._audit_template(pipe, template, "deleted", actor=actor, at=now)
            for job in jobs:
                self._queue_unbind(pipe, job, template_id, keep_template_index=True)
                self._audit_job(pipe, job, "deleted", actor=actor, at=now, note="with its schedule")

        transact(self._client, attempt, key, jobs_key)

    # Jobs

    def bind(
        self,
        stack: int,
        *,
        template_id: int,
        load_test_id: int,
        now: datetime,
        created_by: str | None,
        actor: Actor = INTERNAL,
        quotas: Quotas | None = None,
    ) -> ScheduleRecord:
        """A job firing the load test on the template's timing; Conflict when the load test
        already has a job on this template (two would fire it twice), QuotaExceeded when the
        stack holds its ``kragle_jobs`` quota already (None: not limited)."""
        keys = self._keys
        template_key, jobs_key = (
            keys.kragle_schedule(template_id),
            keys.kragle_schedule_jobs(template_id),
        )
        test_key = keys.load_test(load_test_id)

        def attempt(pipe: Pipeline) -> ScheduleRecord:
            template = self._own(stack, template_id, pipe.hgetall(template_key))
            fields = pipe.hgetall(test_key)
            test = decode_load_test(fields) if fields else None
            if test is None or test.stack != stack or test.kind:
                raise NotFound(f"Load test {load_test_id} not found.")
            existing = pipe.hget(jobs_key, str(load_test_id))
            if existing is not None:
                raise Conflict(
                    f"Load test {load_test_id} already has job {text_of(existing)} on "
                    f"schedule {template_id}."
                )
            if quotas is not None:
                index = keys.stack_index(stack, INDEX_OF["kragle_jobs"])
                check_count(pipe, index, quota="kragle_jobs", limit=quotas.kragle_jobs)
            job_id = int(self._client.incr(keys.ids("schedule")))
            job = new_record(
                schedule_id=job_id,
                stack=stack,
                load_test_id=load_test_id,
                schedule=template.schedule,
                owner=KragleJob(template_id=template_id),
                created_by=created_by,
                now=now,
            )
            pipe.multi()
            self._schedules.write(pipe, job)
            pipe.hset(jobs_key, str(load_test_id), job_id)
            pipe.zadd(keys.stack_index(stack, "kragle_jobs"), {str(job_id): job_id})
            pipe.hset(keys.load_test_kragle_jobs(load_test_id), str(job_id), template_id)
            self._audit_job(
                pipe,
                job,
                "created",
                actor=actor,
                at=now,
                extra={"schedule_id": template_id, "load_test_id": load_test_id},
            )
            return job

        return transact(
            self._client,
            attempt,
            template_key,
            jobs_key,
            test_key,
            keys.load_test_kragle_jobs(load_test_id),
        )

    def job(self, stack: int, job_id: int) -> ScheduleRecord:
        """The job in ``stack``; NotFound for a missing one, another stack's, or a schedule
        that is not a Kragle job."""
        try:
            return self._schedules.get(stack, job_id, dialect=DIALECT)
        except NotFound:
            raise NotFound(f"Job {job_id} not found.") from None

    def jobs_page(self, stack: int, *, skip: int, top: int) -> tuple[list[ScheduleRecord], int]:
        rows, total = read_page(
            self._client,
            self._keys.stack_index(stack, "kragle_jobs"),
            self._keys.schedule,
            skip=skip,
            top=top,
        )
        return [decode_schedule_record(row) for row in rows], total

    def unbind(self, stack: int, job_id: int, *, now: datetime, actor: Actor = INTERNAL) -> None:
        """Delete the job: its load test no longer fires on the template."""

        def attempt(pipe: Pipeline) -> None:
            job = self.job(stack, job_id)
            pipe.multi()
            self._queue_unbind(pipe, job, template_of(job))
            self._audit_job(pipe, job, "deleted", actor=actor, at=now)

        transact(self._client, attempt, self._keys.schedule(job_id))

    def prepare_load_test_delete(
        self,
        pipe: Pipeline,
        load_test_id: int,
        *,
        now: datetime | None = None,
        actor: Actor = INTERNAL,
    ) -> QueuedWrite:
        """WATCH the load test's jobs (a job bound meanwhile voids the deletion) and return
        the queued removal of every one of them, each with its audit entry ("deleted", with
        its load test) by ``actor`` at ``now`` (None: the Redis server's clock)."""
        index = self._keys.load_test_kragle_jobs(load_test_id)
        pipe.watch(index)
        entries = {int(text_of(k)): int(text_of(v)) for k, v in pipe.hgetall(index).items()}
        jobs: list[tuple[ScheduleRecord, int]] = []
        for job_id, template_id in sorted(entries.items()):
            pipe.watch(self._keys.schedule(job_id))
            job = self._schedules.get_any(job_id)
            if job is not None and job.dialect == DIALECT:
                jobs.append((job, template_id))
        at = now if now is not None or not jobs else self._server_now()

        def queue(multi: Pipeline) -> None:
            for job, template_id in jobs:
                self._queue_unbind(multi, job, template_id)
                assert at is not None  # there are jobs
                self._audit_job(
                    multi, job, "deleted", actor=actor, at=at, note="with its load test"
                )
            multi.delete(index)

        return queue

    # Shared

    def _audit_template(
        self,
        pipe: Pipeline,
        template: TemplateRecord,
        action: str,
        *,
        actor: Actor,
        at: datetime,
        changes: Sequence[Change] = (),
    ) -> None:
        self._schedules.audit.queue(
            pipe,
            stack=template.stack,
            kind=TEMPLATE_KIND,
            resource_id=template.id,
            action=action,
            actor=actor,
            at=at,
            changes=changes,
        )

    def _audit_job(
        self,
        pipe: Pipeline,
        job: ScheduleRecord,
        action: str,
        *,
        actor: Actor,
        at: datetime,
        changes: Sequence[Change] = (),
        note: str = "",
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self._schedules.audit.queue(
            pipe,
            stack=job.stack,
            kind=SCHEDULE_KINDS[DIALECT],
            resource_id=job.id,
            action=action,
            actor=actor,
            at=at,
            changes=changes,
            note=note,
            extra=extra,
        )

    def _server_now(self) -> datetime:
        """The Redis server's clock (for a caller that passed no instant)."""
        with translated():
            seconds, micros = self._client.time()
        return from_us(int(seconds) * 1_000_000 + int(micros))

    def _own(self, stack: int, template_id: int, fields: Mapping[Any, Any]) -> TemplateRecord:
        template = _decode(fields) if fields else None
        if template is None or template.stack != stack:
            raise NotFound(f"Kragle schedule {template_id} not found.")
        return template

    def _watch_jobs(self, pipe: Pipeline, template_id: int) -> list[ScheduleRecord]:
        """The template's jobs, each WATCHed (the index itself is WATCHed by the caller)."""
        raw = pipe.hgetall(self._keys.kragle_schedule_jobs(template_id))
        job_ids = sorted(int(text_of(value)) for value in raw.values())
        if job_ids:
            pipe.watch(*(self._keys.schedule(job_id) for job_id in job_ids))
        found = [self._schedules.get_any(job_id) for job_id in job_ids]
        return [job for job in found if job is not None and job.dialect == DIALECT]

    def _queue_unbind(
        self,
        pipe: Pipeline,
        job: ScheduleRecord,
        template_id: int,
        *,
        keep_template_index: bool = False,
    ) -> None:
        self._schedules.queue_unschedule(pipe, job)
        if not keep_template_index:  # the caller deletes the whole index
            pipe.hdel(self._keys.kragle_schedule_jobs(template_id), str(job.load_test_id))
        pipe.zrem(self._keys.stack_index(job.stack, "kragle_jobs"), str(job.id))
        pipe.hdel(self._keys.load_test_kragle_jobs(job.load_test_id), str(job.id))
