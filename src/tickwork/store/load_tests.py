"""Load test records, their scripts, and the indexes their listings page through.

The scheduler relies on two fields of the record hash: ``stack`` and ``project_id``; the
worker reads ``runner`` (JSON, ``{"type": "k6"}`` when the user gave none) and the script.
Deleting a load test deletes its schedule, and whatever else names it (its ``dependents``:
Kragle jobs), in the same transaction, so the scheduler never fires for a load test that is
gone. An internal load test (``kind`` set: the one a report schedule runs as) is in no
listing and answers NotFound here; its owner writes and deletes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import redis

from tickwork.core.instants import format_instant, parse_instant
from tickwork.core.lifecycle import is_terminal
from tickwork.errors import Conflict, NotFound
from tickwork.store.audit import INTERNAL, Actor, Change, changes_between
from tickwork.store.connection import text_of, translated
from tickwork.store.keys import Keys
from tickwork.store.paging import read_page
from tickwork.store.quotas import INDEX_OF, Quotas, check_count, check_script
from tickwork.store.schedules import Schedules
from tickwork.store.transactions import transact

DEFAULT_RUNNER: dict[str, Any] = {"type": "k6"}

Pipeline = redis.client.Pipeline
QueuedWrite = Callable[[Pipeline], None]


class Dependent(Protocol):
    """Something else that names a load test and goes with it: WATCHes what it reads and
    returns its queued removal, audited as ``actor``'s at ``now``."""

    def __call__(
        self, pipe: Pipeline, load_test_id: int, *, now: datetime, actor: Actor
    ) -> QueuedWrite: ...


@dataclass(frozen=True, slots=True)
class Runnable:
    """What a worker reads to execute a run of a load test: its stack (to check the run
    still belongs to it), its runner settings as stored (JSON) and its script."""

    stack: int
    runner: str | None
    script: bytes | None


@dataclass(frozen=True, slots=True)
class LoadTestRecord:
    id: int
    stack: int
    project_id: int
    name: str
    created: datetime
    updated: datetime
    baseline_test_run_id: int | None = None
    k6_version: int | None = None
    runner: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_RUNNER))
    kind: str = ""  # "" for a user's load test; "report" for a report schedule's own


def _audited(test: LoadTestRecord) -> dict[str, Any]:
    """What the audit trail compares between two versions of a load test."""
    return {
        "name": test.name,
        "runner": test.runner,
        "baseline_test_run_id": test.baseline_test_run_id,
        "k6_version": test.k6_version,
    }


def _script_facts(script: bytes | None) -> dict[str, Any]:
    """A script as the audit trail records it: its size and digest, never its text."""
    if script is None:
        return {}
    return {"bytes": len(script), "sha256": hashlib.sha256(script).hexdigest()}


def _optional_int(text: str) -> int | None:
    return int(text) if text else None


def _encode(test: LoadTestRecord) -> dict[Any, Any]:
    kind = {"kind": test.kind} if test.kind else {}
    return kind | {
        "id": str(test.id),
        "stack": str(test.stack),
        "project_id": str(test.project_id),
        "name": test.name,
        "created": format_instant(test.created),
        "updated": format_instant(test.updated),
        "baseline_test_run_id": ""
        if test.baseline_test_run_id is None
        else str(test.baseline_test_run_id),
        "k6_version": "" if test.k6_version is None else str(test.k6_version),
        "runner": json.dumps(test.runner, separators=(",", ":")),
    }


def decode(fields: Mapping[Any, Any]) -> LoadTestRecord:
    text = {text_of(k): text_of(v) for k, v in fields.items()}
    return LoadTestRecord(
        id=int(text["id"]),
        stack=int(text["stack"]),
        project_id=int(text["project_id"]),
        name=text["name"],
        created=parse_instant(text["created"]),
        updated=parse_instant(text["updated"]),
        baseline_test_run_id=_optional_int(text.get("baseline_test_run_id", "")),
        k6_version=_optional_int(text.get("k6_version", "")),
        runner=json.loads(text.get("runner") or "null") or dict(DEFAULT_RUNNER),
        kind=text.get("kind", ""),
    )


class LoadTests:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        schedules: Schedules,
        dependents: Sequence[Dependent] = (),
    ) -> None:
        self._client = client
        self._keys = keys
        self._schedules = schedules
        self._dependents = tuple(dependents)

    def get(self, stack: int, load_test_id: int) -> LoadTestRecord:
        """The load test in ``stack``; NotFound for a missing one or another stack's."""
        with translated():
            fields = self._client.hgetall(self._keys.load_test(load_test_id))
        if not fields:
            raise NotFound(f"Load test {load_test_id} not found.")
        test = decode(fields)
        if test.stack != stack or test.kind:
            raise NotFound(f"Load test {load_test_id} not found.")
        return test

    def project_ids(self, load_test_ids: Sequence[int]) -> dict[int, int]:
        """Each existing load test's project id (the scheduler stamps it on fired runs)."""
        with translated():
            pipe = self._client.pipeline(transaction=False)
            for load_test_id in load_test_ids:
                pipe.hget(self._keys.load_test(load_test_id), "project_id")
            replies = pipe.execute()
        return {
            load_test_id: int(text_of(raw))
            for load_test_id, raw in zip(load_test_ids, replies, strict=True)
            if raw is not None
        }

    def runnable(self, load_test_id: int) -> Runnable | None:
        """The load test's stack, runner and script in one round trip; None when gone."""
        with translated():
            pipe = self._client.pipeline(transaction=False)
            pipe.hmget(self._keys.load_test(load_test_id), ["stack", "runner"])
            pipe.get(self._keys.load_test_script(load_test_id))
            (stack, runner), script = pipe.execute()
        if stack is None:
            return None
        return Runnable(
            stack=int(text_of(stack)),
            runner=text_of(runner) if runner is not None else None,
            script=script
            if isinstance(script, bytes) or script is None
            else text_of(script).encode(),
        )

    def with_script_heads(
        self, stack: int, *, head_bytes: int
    ) -> list[tuple[LoadTestRecord, bytes]]:
        """Every load test of the stack (internal ones included), by id, with the first
        ``head_bytes`` of its script (what a report scans for host names)."""
        with translated():
            ids = [
                int(text_of(raw))
                for raw in self._client.zrange(self._keys.stack_index(stack, "load_tests"), 0, -1)
            ]
            pipe = self._client.pipeline(transaction=False)
            for load_test_id in ids:
                pipe.hgetall(self._keys.load_test(load_test_id))
                pipe.getrange(self._keys.load_test_script(load_test_id), 0, head_bytes - 1)
            replies = pipe.execute()
        return [
            (decode(fields), script)
            for fields, script in zip(replies[::2], replies[1::2], strict=True)
            if fields
        ]

    def queue_create_internal(self, pipe: Pipeline, test: LoadTestRecord) -> None:
        """Queue an internal load test (``kind`` set): its record only, in no index."""
        assert test.kind, "an internal load test has a kind"
        pipe.hset(self._keys.load_test(test.id), mapping=_encode(test))

    def page(
        self,
        stack: int,
        *,
        skip: int,
        top: int,
        project_id: int | None = None,
        name: str | None = None,
    ) -> tuple[list[LoadTestRecord], int]:
        """One page by id of the stack's load tests, or a project's, optionally only those
        called ``name``; and how many match in all. Each case reads one index: O(page)."""
        if project_id is not None and name is not None:
            with translated():
                raw = self._client.hget(self._keys.project_load_test_names(project_id), name)
            found = [self.get(stack, int(text_of(raw)))] if raw is not None else []
            return found[skip : skip + top], len(found)
        if project_id is not None:
            index = self._keys.project_load_tests(project_id)
        elif name is not None:
            index = self._keys.load_tests_named(stack, name)
        else:
            index = self._keys.stack_index(stack, "load_tests")
        rows, total = read_page(self._client, index, self._keys.load_test, skip=skip, top=top)
        tests = [decode(row) for row in rows]
        return [test for test in tests if test.stack == stack], total

    def create(
        self,
        stack: int,
        *,
        project_id: int,
        name: str,
        script: bytes | None,
        now: datetime,
        k6_version: int | None = None,
        runner: dict[str, Any] | None = None,
        actor: Actor = INTERNAL,
        quotas: Quotas | None = None,
    ) -> LoadTestRecord:
        """A new load test in the stack's project; NotFound for another stack's project,
        Conflict when the project already has a test of that name, QuotaExceeded past the
        stack's ``quotas`` (load tests, script size; None: not limited)."""
        project_key = self._keys.project(project_id)
        names = self._keys.project_load_test_names(project_id)
        check_script(script, quotas)

        def attempt(pipe: Pipeline) -> LoadTestRecord:
            owner = pipe.hget(project_key, "stack")
            if owner is None or int(text_of(owner)) != stack:
                raise NotFound(f"Project {project_id} not found.")
            if pipe.hexists(names, name):
                raise Conflict(f"A load test named {name!r} already exists.")
            if quotas is not None:
                index = self._keys.stack_index(stack, INDEX_OF["load_tests"])
                check_count(pipe, index, quota="load_tests", limit=quotas.load_tests)
            test_id = int(self._client.incr(self._keys.ids("load_test")))
            test = LoadTestRecord(
                id=test_id,
                stack=stack,
                project_id=project_id,
                name=name,
                created=now,
                updated=now,
                k6_version=k6_version,
                runner=runner if runner is not None else dict(DEFAULT_RUNNER),
            )
            pipe.multi()
            pipe.hset(self._keys.load_test(test_id), mapping=_encode(test))
            if script is not None:
                pipe.set(self._keys.load_test_script(test_id), script)
            self._queue_index(pipe, test)
            self._audit(pipe, test, "created", actor=actor, at=now, extra=_script_facts(script))
            return test

        return transact(self._client, attempt, project_key, names)

    def update(
        self,
        stack: int,
        load_test_id: int,
        change: Callable[[LoadTestRecord], LoadTestRecord],
        *,
        actor: Actor = INTERNAL,
    ) -> LoadTestRecord:
        """Apply ``change`` to the record (which stamps ``updated``); Conflict when a new name
        is already taken."""
        key = self._keys.load_test(load_test_id)

        def attempt(pipe: Pipeline) -> LoadTestRecord:
            current = self.get(stack, load_test_id)
            updated = change(current)
            names = self._keys.project_load_test_names(current.project_id)
            renamed = updated.name != current.name
            if renamed:
                pipe.watch(names)
                if pipe.hexists(names, updated.name):
                    raise Conflict(f"A load test named {updated.name!r} already exists.")
            pipe.multi()
            pipe.hset(key, mapping=_encode(updated))
            if renamed:
                self._queue_unindex(pipe, current)
                self._queue_index(pipe, updated)
            changes = changes_between(_audited(current), _audited(updated))
            if changes:
                self._audit(
                    pipe, updated, "updated", actor=actor, at=updated.updated, changes=changes
                )
            return updated

        return transact(self._client, attempt, key)

    def script(self, stack: int, load_test_id: int) -> bytes | None:
        """The stored script (None when the test was created without one)."""
        self.get(stack, load_test_id)
        with translated():
            raw = self._client.get(self._keys.load_test_script(load_test_id))
        return raw if isinstance(raw, bytes) or raw is None else text_of(raw).encode()

    def set_script(
        self,
        stack: int,
        load_test_id: int,
        script: bytes,
        *,
        now: datetime,
        actor: Actor = INTERNAL,
        quotas: Quotas | None = None,
    ) -> None:
        """Replace the script; QuotaExceeded when it is over the stack's ``script_bytes``
        quota (None: not limited), and nothing changes."""
        key = self._keys.load_test(load_test_id)
        script_key = self._keys.load_test_script(load_test_id)
        check_script(script, quotas)

        def attempt(pipe: Pipeline) -> None:
            test = self.get(stack, load_test_id)
            old = pipe.get(script_key)
            pipe.multi()
            pipe.set(script_key, script)
            pipe.hset(key, "updated", format_instant(now))
            before = _script_facts(old if isinstance(old, bytes) else None)
            facts = {"bytes": len(script), "sha256": hashlib.sha256(script).hexdigest()}
            changes = changes_between(before, facts)
            self._audit(pipe, test, "script_replaced", actor=actor, at=now, changes=changes)

        transact(self._client, attempt, key, script_key)

    def delete(
        self, stack: int, load_test_id: int, *, now: datetime, actor: Actor = INTERNAL
    ) -> None:
        """Delete the load test, its script and its schedule in one transaction. Conflict
        while its latest run has not finished. Its test runs stay readable by id."""

        def attempt(pipe: Pipeline) -> None:
            removal = self.prepare_delete(pipe, stack, load_test_id, now=now, actor=actor)
            pipe.multi()
            removal(pipe)

        transact(self._client, attempt)

    def prepare_delete(
        self,
        pipe: Pipeline,
        stack: int,
        load_test_id: int,
        *,
        now: datetime,
        actor: Actor = INTERNAL,
    ) -> QueuedWrite:
        """WATCH what the deletion depends on, check it may go ahead, and return the
        function that queues it on the pipeline once MULTI has begun (with the audit entries
        of the load test and of its schedule)."""
        keys = self._keys
        pointer, last_run = (
            keys.load_test_schedule(load_test_id),
            keys.load_test_last_run(load_test_id),
        )
        pipe.watch(keys.load_test(load_test_id), pointer, last_run)
        test = self.get(stack, load_test_id)
        latest = pipe.get(last_run)
        if latest is not None:
            status = pipe.hget(keys.run(int(text_of(latest))), "status")
            if status is not None and not is_terminal(text_of(status)):
                raise Conflict(
                    f"Load test {load_test_id} has a test run that has not finished; "
                    "abort it first."
                )
        schedule_id = pipe.get(pointer)
        schedule = self._schedules.get_any(int(text_of(schedule_id))) if schedule_id else None
        if schedule is not None:
            pipe.watch(keys.schedule(schedule.id))
        also = [
            dependent(pipe, load_test_id, now=now, actor=actor) for dependent in self._dependents
        ]

        def queue(multi: Pipeline) -> None:
            multi.delete(
                keys.load_test(load_test_id),
                keys.load_test_script(load_test_id),
                keys.load_test_runs(load_test_id),
                last_run,
            )
            self._queue_unindex(multi, test)
            self._audit(multi, test, "deleted", actor=actor, at=now)
            if schedule is not None:
                self._schedules.queue_delete(multi, schedule)
                self._schedules.queue_audit(
                    multi, schedule, "deleted", actor=actor, at=now, note="with its load test"
                )
            for removal in also:
                removal(multi)

        return queue

    def _audit(
        self,
        pipe: Pipeline,
        test: LoadTestRecord,
        action: str,
        *,
        actor: Actor,
        at: datetime,
        changes: Sequence[Change] = (),
        extra: dict[str, Any] | None = None,
    ) -> None:
        self._schedules.audit.queue(
            pipe,
            stack=test.stack,
            kind="load_test",
            resource_id=test.id,
            action=action,
            actor=actor,
            at=at,
            changes=changes,
            extra=extra,
        )

    def _queue_index(self, pipe: Pipeline, test: LoadTestRecord) -> None:
        member = {str(test.id): test.id}
        pipe.zadd(self._keys.stack_index(test.stack, "load_tests"), member)
        pipe.zadd(self._keys.project_load_tests(test.project_id), member)
        pipe.zadd(self._keys.load_tests_named(test.stack, test.name), member)
        pipe.hset(self._keys.project_load_test_names(test.project_id), test.name, test.id)

    def _queue_unindex(self, pipe: Pipeline, test: LoadTestRecord) -> None:
        pipe.zrem(self._keys.stack_index(test.stack, "load_tests"), str(test.id))
        pipe.zrem(self._keys.project_load_tests(test.project_id), str(test.id))
        pipe.zrem(self._keys.load_tests_named(test.stack, test.name), str(test.id))
        pipe.hdel(self._keys.project_load_test_names(test.project_id), test.name)
