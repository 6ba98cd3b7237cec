"""Runs started by hand (``POST /load_tests/{id}/start``): the run record and its RQ job in
one MULTI, idempotent by key.

With a ``K6-Idempotency-Key`` the key's entry is WATCHed, read, and written in the same
transaction as the run: two concurrent starts with one key cannot both commit (the second
EXEC is void, re-reads, and answers the first run). The entry expires after ten minutes, as
the k6 spec says the key is valid for. A manual start never touches a schedule: it neither
consumes, moves nor skips an occurrence.
"""

from __future__ import annotations

from datetime import datetime

import redis
from redis.client import Pipeline
from rq import Queue

from tickwork.core.runs import RunRecord
from tickwork.errors import NotFound
from tickwork.store.connection import text_of, translated
from tickwork.store.keys import Keys
from tickwork.store.load_tests import LoadTestRecord
from tickwork.store.queue import enqueue_run, run_job_id
from tickwork.store.runs import Runs
from tickwork.store.transactions import transact

IDEMPOTENCY_TTL_S = 600


class ManualRuns:
    def __init__(self, client: redis.Redis, keys: Keys, runs: Runs) -> None:
        self._client = client
        self._keys = keys
        self._runs = runs

    def start(
        self,
        load_test: LoadTestRecord,
        *,
        rq_queue: Queue,
        started_by: str,
        now: datetime,
        idempotency_key: str | None = None,
    ) -> RunRecord:
        """Create a ``created`` run of the load test and enqueue it; with a key seen in the
        last ten minutes, the run that key started instead."""
        keys = self._keys
        test_key = keys.load_test(load_test.id)
        remembered = (
            keys.idempotency(load_test.stack, load_test.id, idempotency_key)
            if idempotency_key is not None
            else None
        )
        watched = [test_key] if remembered is None else [test_key, remembered]
        with translated():
            rq_queue.get_redis_server_version()  # RQ reads it lazily; not inside MULTI

        def attempt(pipe: Pipeline) -> RunRecord:
            if not pipe.exists(test_key):
                raise NotFound(f"Load test {load_test.id} not found.")
            if remembered is not None:
                earlier = pipe.get(remembered)
                if earlier is not None:
                    return self._runs.get(load_test.stack, int(text_of(earlier)))
            run_id = self._runs.new_id()
            run = RunRecord.started(
                run_id=run_id,
                stack=load_test.stack,
                load_test_id=load_test.id,
                project_id=load_test.project_id,
                started_by=started_by,
                job_id=run_job_id(run_id),
                now=now,
            )
            pipe.multi()
            if remembered is not None:
                pipe.set(remembered, run_id, nx=True, ex=IDEMPOTENCY_TTL_S)
            self._runs.queue_create(pipe, run)
            enqueue_run(pipe, rq_queue, run_id=run_id, prefix=keys.prefix, job_id=run.job_id or "")
            return run

        return transact(self._client, attempt, *watched)
