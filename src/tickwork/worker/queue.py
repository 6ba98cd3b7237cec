"""How a test run becomes an RQ job: queue names, the JSON serializer, job ids.

Jobs carry only the run id, serialized as JSON: a write to Redis can never become code
execution on a worker (RQ's default is pickle).
"""

from __future__ import annotations

from datetime import datetime

import redis
from rq import Queue
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
