"""Test run records in Redis: written by the scheduler (at fire), the API and the workers.

The record itself (``RunRecord``) and its statuses are the core's; this module stores them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import redis

from tickwork.core.instants import format_instant, parse_instant, to_us
from tickwork.core.lifecycle import NOT_STARTED, Status, is_terminal
from tickwork.core.runs import RunRecord, StatusEntry
from tickwork.errors import NotFound
from tickwork.store.connection import text_of, translated
from tickwork.store.keys import Keys
from tickwork.store.paging import read_page


def creation_fields(at: datetime) -> dict[str, str]:
    """The fields of a new run that say when it was created: the fire path stamps them as
    it commits runs encoded ahead of their instant."""
    return {
        "created": format_instant(at),
        "status_history": _history([StatusEntry(Status.CREATED, at)]),
    }


def _history(entries: Iterable[StatusEntry]) -> str:
    """A status history as stored: compact, null extras left out (``from_json`` reads them
    as none). A new run's, its creation alone, then fits in 64 bytes, and Redis keeps the
    run's hash in its compact encoding: ~680 bytes less per queued run (bench/memory.py)."""
    return json.dumps(
        [{k: v for k, v in entry.as_json().items() if v is not None} for entry in entries],
        separators=(",", ":"),
    )


def encode(run: RunRecord) -> dict[Any, Any]:
    """The record as hash fields (the fire script writes these too)."""
    return {
        "id": str(run.id),
        "stack": str(run.stack),
        "load_test_id": str(run.load_test_id),
        "project_id": str(run.project_id),
        "created": format_instant(run.created),
        "status": run.status,
        "status_history": _history(run.status_history),
        "result": run.result or "",
        "ended": format_instant(run.ended) if run.ended else "",
        "started_by": run.started_by or "",
        "note": run.note,
        "schedule_id": "" if run.schedule_id is None else str(run.schedule_id),
        "scheduled_for": format_instant(run.scheduled_for) if run.scheduled_for else "",
        "job_id": run.job_id or "",
        "details": json.dumps(run.details),
    }


# Fields a record may leave out when empty (the fire path writes new runs without them, and
# without details "{}"). Every version reads these as absent: a rolling upgrade, or a
# rollback, meets runs written by the other version.
_MAY_BE_ABSENT = ("result", "ended", "started_by", "note", "schedule_id", "scheduled_for", "job_id")


def decode(fields: Mapping[Any, Any]) -> RunRecord:
    text = dict.fromkeys(_MAY_BE_ABSENT, "") | {text_of(k): text_of(v) for k, v in fields.items()}
    return RunRecord(
        id=int(text["id"]),
        stack=int(text["stack"]),
        load_test_id=int(text["load_test_id"]),
        project_id=int(text["project_id"]),
        created=parse_instant(text["created"]),
        status=text["status"],
        status_history=tuple(
            StatusEntry.from_json(entry) for entry in json.loads(text["status_history"])
        ),
        result=text["result"] or None,
        ended=parse_instant(text["ended"]) if text["ended"] else None,
        started_by=text["started_by"] or None,
        note=text["note"],
        schedule_id=int(text["schedule_id"]) if text["schedule_id"] else None,
        scheduled_for=parse_instant(text["scheduled_for"]) if text["scheduled_for"] else None,
        job_id=text["job_id"] or None,
        details=json.loads(text.get("details") or "{}"),
    )


class Runs:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    def new_id(self) -> int:
        return self.reserve_ids(1)

    def reserve_ids(self, count: int) -> int:
        """The first of ``count`` new consecutive run ids."""
        with translated():
            return int(self._client.incrby(self._keys.ids("run"), count)) - count + 1

    def queue_create(self, pipe: redis.client.Pipeline, run: RunRecord) -> None:
        """Queue a new record and its index entries on a MULTI pipeline."""
        pipe.hset(self._keys.run(run.id), mapping=encode(run))
        created_us = to_us(run.created)  # the indexes list runs by creation
        pipe.zadd(self._keys.stack_index(run.stack, "runs"), {str(run.id): created_us})
        pipe.zadd(self._keys.load_test_runs(run.load_test_id), {str(run.id): created_us})
        if run.status != Status.SKIPPED:
            pipe.set(self._keys.load_test_last_run(run.load_test_id), run.id)
        if run.job_id is not None and run.status in NOT_STARTED:
            pipe.zadd(self._keys.unclaimed, {str(run.id): created_us})
        pipe.sadd(self._keys.retention_load_tests, run.load_test_id)
        pipe.sadd(self._keys.stacks, run.stack)

    def unfinished(self, load_test_ids: Sequence[int]) -> set[int]:
        """Those of ``load_test_ids`` whose latest run that executes has not finished (what
        the overlap policy ``skip`` asks)."""
        if not load_test_ids:
            return set()
        with translated():
            latest = self._client.mget([self._keys.load_test_last_run(lt) for lt in load_test_ids])
            pipe = self._client.pipeline(transaction=False)
            owners = []
            for load_test_id, run_id in zip(load_test_ids, latest, strict=True):
                if run_id is not None:
                    owners.append(load_test_id)
                    pipe.hget(self._keys.run(int(text_of(run_id))), "status")
            statuses = pipe.execute()
        return {
            owner
            for owner, status in zip(owners, statuses, strict=True)
            if status is not None and not is_terminal(text_of(status))
        }

    def queue_update(self, pipe: redis.client.Pipeline, run: RunRecord) -> None:
        pipe.hset(self._keys.run(run.id), mapping=encode(run))

    def create(self, run: RunRecord) -> None:
        with translated(), self._client.pipeline() as pipe:
            self.queue_create(pipe, run)
            pipe.execute()

    def get_any(self, run_id: int) -> RunRecord | None:
        with translated():
            fields = self._client.hgetall(self._keys.run(run_id))
        return decode(fields) if fields else None

    def get(self, stack: int, run_id: int) -> RunRecord:
        run = self.get_any(run_id)
        if run is None or run.stack != stack:
            raise NotFound(f"Test run {run_id} not found.")
        return run

    def page(
        self,
        stack: int,
        *,
        skip: int,
        top: int,
        load_test_id: int | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        newest_first: bool = False,
    ) -> tuple[list[RunRecord], int]:
        """Runs by creation: those created in [created_after, created_before), oldest first
        unless ``newest_first``, and how many there are."""
        index = (
            self._keys.load_test_runs(load_test_id)
            if load_test_id is not None
            else self._keys.stack_index(stack, "runs")
        )
        rows, total = read_page(
            self._client,
            index,
            self._keys.run,
            skip=skip,
            top=top,
            low=to_us(created_after) if created_after is not None else None,
            below=to_us(created_before) if created_before is not None else None,
            descending=newest_first,
        )
        runs = [decode(row) for row in rows]
        return [run for run in runs if run.stack == stack], total
