"""Manual starts: the run record and its RQ job in one MULTI, idempotent by key.

With a ``K6-Idempotency-Key`` the key's Redis entry is WATCHed, read, and written in the same
transaction as the run: two concurrent starts with one key cannot both commit (the second
EXEC is void, re-reads, and answers the first run). The entry expires after ten minutes, as
the k6 spec says the key is valid for.
"""

from __future__ import annotations

from datetime import datetime

import redis
from rq import Queue

from tickwork.errors import NotFound
from tickwork.store import LoadTestRecord, RunRecord, StatusEntry, Store
from tickwork.store.connection import text_of, translated
from tickwork.worker.queue import enqueue_run, run_job_id

IDEMPOTENCY_TTL_S = 600


def start_run(
    store: Store,
    rq_queue: Queue,
    *,
    load_test: LoadTestRecord,
    started_by: str,
    now: datetime,
    idempotency_key: str | None = None,
) -> RunRecord:
    """Create a ``created`` run of the load test and enqueue it; with a key seen in the last
    ten minutes, the run that key started instead."""
    keys = store.keys
    test_key = keys.load_test(load_test.id)
    remembered = (
        keys.idempotency(load_test.stack, load_test.id, idempotency_key)
        if idempotency_key is not None
        else None
    )
    watched = [test_key] if remembered is None else [test_key, remembered]
    with translated(), store.client.pipeline() as pipe:
        rq_queue.get_redis_server_version()  # RQ reads it lazily; not inside MULTI
        while True:
            try:
                pipe.watch(*watched)
                if not pipe.exists(test_key):
                    raise NotFound(f"Load test {load_test.id} not found.")
                if remembered is not None:
                    earlier = pipe.get(remembered)
                    if earlier is not None:
                        pipe.unwatch()
                        return store.runs.get(load_test.stack, int(text_of(earlier)))
                run_id = store.runs.new_id()
                job_id = run_job_id(run_id)
                run = RunRecord(
                    id=run_id,
                    stack=load_test.stack,
                    load_test_id=load_test.id,
                    project_id=load_test.project_id,
                    created=now,
                    status="created",
                    status_history=(StatusEntry("created", now),),
                    started_by=started_by,
                    job_id=job_id,
                )
                pipe.multi()
                if remembered is not None:
                    pipe.set(remembered, run_id, nx=True, ex=IDEMPOTENCY_TTL_S)
                store.runs.queue_create(pipe, run)
                enqueue_run(pipe, rq_queue, run_id=run_id, prefix=keys.prefix, job_id=job_id)
                pipe.execute()
                return run
            except redis.WatchError:
                continue
