"""The fire path writes RQ jobs exactly as RQ's own enqueue does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from tickwork.core import Once, Schedule
from tickwork.scheduler.firing import Firer
from tickwork.store import Store
from tickwork.store.queue import enqueue_run, fire_job_id, queue

# Instants RQ stamps at the moment it builds a job; every other field must be identical.
STAMPS = {b"created_at", b"enqueued_at"}
T0 = datetime(2026, 11, 23, 12, tzinfo=UTC)


def test_a_fired_job_matches_rqs_own_enqueue_field_by_field(redis_client: redis.Redis) -> None:
    store = Store(redis_client, f"be{uuid.uuid4().hex[:8]}")
    rq_queue = queue(redis_client, f"{store.keys.prefix}-q")
    redis_client.hset(store.keys.load_test(1), mapping={"stack": 1, "project_id": 1})
    record = store.schedules.put(
        stack=1,
        load_test_id=1,
        schedule=Schedule(T0, Once()),
        request="{}",
        created_by=None,
        now=T0 - timedelta(seconds=1),
    )
    lease = store.leases.acquire("scheduler", "me", 60_000)
    assert lease is not None
    firer = Firer(store, rq_queue, clock=lambda: T0, catch_up=timedelta(minutes=5))
    ((run_id, _),) = firer.fire_due(lease).fired
    with redis_client.pipeline() as pipe:
        pipe.multi()
        enqueue_run(pipe, rq_queue, run_id=run_id, prefix=store.keys.prefix, job_id="by-rq")
        pipe.execute()

    fired_id = fire_job_id(record.id, T0)
    ours = redis_client.hgetall(Job.key_for(fired_id))
    theirs = redis_client.hgetall(Job.key_for("by-rq"))
    # Every field RQ writes, except those it writes empty, which it reads as empty anyway.
    assert {k for k, v in theirs.items() if v != b""} == set(ours)
    assert {k: v for k, v in ours.items() if k not in STAMPS} == {
        k: v for k, v in theirs.items() if k not in STAMPS and v != b""
    }
    # And RQ reads both back the same.
    assert _as_rq_reads(redis_client, fired_id) == _as_rq_reads(redis_client, "by-rq")
    assert rq_queue.job_ids == [fired_id, "by-rq"]
    assert redis_client.sismember(rq_queue.redis_queues_keys, rq_queue.key)
    job = rq_queue.fetch_job(fired_id)
    assert job is not None
    assert (job.func_name, job.kwargs, job.get_status()) == (
        "tickwork.worker.jobs.run_test",
        {"run_id": run_id, "prefix": store.keys.prefix},
        "queued",
    )
    redis_client.delete(rq_queue.key)


def _as_rq_reads(client: redis.Redis, job_id: str) -> dict[str, object]:
    job = Job.fetch(job_id, connection=client, serializer=JSONSerializer)
    return {k: v for k, v in job.to_dict().items() if k.encode() not in STAMPS}
