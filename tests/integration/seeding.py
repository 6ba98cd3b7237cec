"""Load tests and queued runs written the way the API and the scheduler write them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import redis
from rq import Queue

from tickwork.store import RunRecord, StatusEntry, Store
from tickwork.store.queue import enqueue_run, run_job_id

Dumped = list[tuple[str, int, bytes]]
"""A database state: each key's name, time to live (ms, 0: none) and DUMP, to RESTORE."""


def dumped(client: redis.Redis, keys: Iterable[bytes]) -> Dumped:
    saved = []
    for key in keys:
        value = client.dump(key)
        assert isinstance(value, bytes), key
        saved.append((key.decode(), max(int(client.pttl(key)), 0), value))
    return saved


def load_test(
    store: Store,
    load_test_id: int,
    *,
    runner: dict[str, Any] | None = None,
    script: bytes | None = None,
    stack: int = 1,
) -> None:
    key = store.keys.load_test(load_test_id)
    store.client.hset(key, mapping={"id": load_test_id, "stack": stack, "project_id": 7})
    if runner is not None:
        store.client.hset(key, "runner", json.dumps(runner))
    if script is not None:
        store.client.set(store.keys.load_test_script(load_test_id), script)


def created_run(
    store: Store,
    load_test_id: int,
    *,
    rq_queue: Queue | None = None,
    job_id: str | None = None,
    run_id: int | None = None,
    created: datetime | None = None,
) -> int:
    """A run in status ``created`` (now, unless ``created``) and, with ``rq_queue``, its job,
    in one MULTI."""
    run_id = run_id or store.runs.new_id()
    now = created or datetime.now(UTC)
    run = RunRecord(
        id=run_id,
        stack=1,
        load_test_id=load_test_id,
        project_id=7,
        created=now,
        status_history=(StatusEntry("created", now),),
        job_id=job_id or run_job_id(run_id),
    )
    if rq_queue is not None:
        rq_queue.get_redis_server_version()
    with store.client.pipeline() as pipe:
        pipe.multi()
        store.runs.queue_create(pipe, run)
        if rq_queue is not None:
            enqueue_run(
                pipe,
                rq_queue,
                run_id=run_id,
                prefix=store.keys.prefix,
                job_id=job_id or run_job_id(run_id),
            )
        pipe.execute()
    return run_id


def run_of(store: Store, run_id: int) -> RunRecord:
    run = store.runs.get_any(run_id)
    assert run is not None
    return run


def history(run: RunRecord) -> list[str]:
    return [entry.type for entry in run.status_history]
