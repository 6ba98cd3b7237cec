"""How a test run becomes an RQ job: queue names, the JSON serializer, job ids.

Jobs carry only the run id, serialized as JSON: a write to Redis can never become code
execution on a worker (RQ's default is pickle).
"""

from __future__ import annotations

import zlib
from datetime import datetime
from typing import Any

import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from tickwork.core.instants import to_ms

DEFAULT_QUEUE = "tickwork"
JOB_FUNCTION = "tickwork.worker.jobs.run_test"
JOB_TIMEOUT_S = 6 * 3600  # the runner enforces the load test's own limit; this is a backstop


def fire_job_id(schedule_id: int, occurrence_at: datetime) -> str:
    return f"fire-{schedule_id}-{to_ms(occurrence_at)}"


def run_job_id(run_id: int) -> str:
    return f"run-{run_id}"


def queue(client: redis.Redis, name: str = DEFAULT_QUEUE) -> Queue:
    return Queue(name, connection=client, serializer=JSONSerializer)


def enqueue_run(
    pipe: redis.client.Pipeline, rq_queue: Queue, *, run_id: int, prefix: str, job_id: str
) -> None:
    """Queue the job on a MULTI pipeline, so that it commits together with the run record.

    Call ``rq_queue.get_redis_server_version()`` once before entering MULTI: RQ reads it
    lazily, and a read inside MULTI would be queued instead of answered."""
    job = rq_queue.create_job(
        JOB_FUNCTION,
        kwargs={"run_id": run_id, "prefix": prefix},
        job_id=job_id,
        timeout=JOB_TIMEOUT_S,
        result_ttl=86_400,
        failure_ttl=7 * 86_400,
        description=f"test run {run_id}",
    )
    rq_queue.enqueue_job(job, pipeline=pipe)


class BatchEnqueuer:
    """Enqueues many run jobs on one MULTI pipeline at a fraction of RQ's per-job cost.

    RQ's own enqueue builds a Job object, resolves its serializer and writes the job hash
    twice (status, then the rest) for every job: at 100,000 simultaneous fires that is most
    of the leader's time. Here RQ builds one prototype job per batch, and each run's job is
    that hash with its own id, data and description. What RQ stores and what its workers
    read is unchanged: a test compares the result with ``Queue.enqueue_job``'s, field by
    field, so an RQ upgrade that changes the job layout fails there, not in production.
    """

    def __init__(self, rq_queue: Queue, *, prefix: str) -> None:
        self._queue = rq_queue
        self._prefix = prefix

    def begin(self, pipe: redis.client.Pipeline) -> JobBatch:
        prototype = self._queue.create_job(
            JOB_FUNCTION,
            kwargs={"run_id": 0, "prefix": self._prefix},
            job_id="prototype",
            timeout=JOB_TIMEOUT_S,
            result_ttl=86_400,
            failure_ttl=7 * 86_400,
        )
        prototype.origin = self._queue.name
        prototype.enqueued_at = prototype.created_at
        base: dict[Any, Any] = {**prototype.to_dict(), "status": JobStatus.QUEUED.value}
        pipe.sadd(self._queue.redis_queues_keys, self._queue.key)
        return JobBatch(pipe, self._queue.key, base, self._prefix)


class JobBatch:
    def __init__(
        self, pipe: redis.client.Pipeline, queue_key: str, base: dict[Any, Any], prefix: str
    ) -> None:
        self._pipe = pipe
        self._queue_key = queue_key
        self._base = base
        self._prefix = prefix

    def add(self, *, run_id: int, job_id: str) -> None:
        data = JSONSerializer.dumps(
            (JOB_FUNCTION, None, (), {"run_id": run_id, "prefix": self._prefix})
        )
        fields = {**self._base, "data": zlib.compress(data), "description": f"test run {run_id}"}
        self._pipe.hset(Job.key_for(job_id), mapping=fields)
        self._pipe.rpush(self._queue_key, job_id)
