"""The fire path's batch enqueue writes exactly what RQ's own enqueue writes."""

from __future__ import annotations

import uuid

import redis
from rq.job import Job

from tickwork.worker.queue import BatchEnqueuer, enqueue_run, queue

# Instants RQ stamps at the moment it builds a job; every other field must be identical.
STAMPS = {b"created_at", b"enqueued_at"}


def test_batch_enqueued_job_matches_rqs_own_field_by_field(redis_client: redis.Redis) -> None:
    rq_queue = queue(redis_client, f"q{uuid.uuid4().hex[:8]}")
    rq_queue.get_redis_server_version()
    with redis_client.pipeline() as pipe:
        pipe.multi()
        enqueue_run(pipe, rq_queue, run_id=7, prefix="tw", job_id="by-rq")
        BatchEnqueuer(rq_queue, prefix="tw").begin(pipe).add(run_id=7, job_id="by-batch")
        pipe.execute()

    ours = redis_client.hgetall(Job.key_for("by-batch"))
    theirs = redis_client.hgetall(Job.key_for("by-rq"))
    assert set(ours) == set(theirs)
    assert {k: v for k, v in ours.items() if k not in STAMPS} == {
        k: v for k, v in theirs.items() if k not in STAMPS
    }
    assert rq_queue.job_ids == ["by-rq", "by-batch"]
    job = rq_queue.fetch_job("by-batch")
    assert job is not None
    assert (job.func_name, job.kwargs, job.get_status()) == (
        "tickwork.worker.jobs.run_test",
        {"run_id": 7, "prefix": "tw"},
        "queued",
    )
    redis_client.delete(rq_queue.key)
