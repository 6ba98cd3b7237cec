"""The RQ queue as tickwork uses it: its name, the job a run becomes, and the job's ids.

Below the scheduler, the API and the worker, which share nothing else: the scheduler's fire
commit and the API's manual start write jobs, the worker runs them. Jobs carry only the run
id and the key prefix, serialized as JSON: a write to Redis can never become code execution
on a worker (RQ's default is pickle). The function they name is the worker's ``run_test``,
named here as text so that nothing below the worker imports it.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.results import Result
from rq.serializers import JSONSerializer

from tickwork.core.instants import to_ms
from tickwork.store.connection import translated

DEFAULT_QUEUE = "tickwork"
JOB_FUNCTION = "tickwork.worker.jobs.run_test"
JOB_TIMEOUT_S = 6 * 3600  # the runner enforces the load test's own limit; this is a backstop
# How long RQ keeps an ended job's hash, result stream and finished-registry entry. tickwork
# reads none of them (the run record holds the outcome, and retention removes the job's keys
# with its run), so an hour: RQ's registry entries, ~120 B a run, are not removed with the
# run, and at a day they would outgrow a short retention (3 GB at 300 fires a second).
JOB_RESULT_TTL_S = 3_600
JOB_FAILURE_TTL_S = 7 * 86_400
JOB_KEY_PREFIX = Job.redis_job_namespace_prefix  # RQ's job hash: {prefix}{job id}
QUEUE_KEY_PREFIX = Queue.redis_queue_namespace_prefix  # RQ's queue list: {prefix}{name}
JOB_GONE_STATUSES = frozenset({"failed", "stopped", "canceled"})
"""RQ job statuses after which no worker will run the job (RQ's ``JobStatus``)."""


def intermediate_key(queue_name: str) -> str:
    """RQ's list of jobs a worker has dequeued but not yet started (RQ 2+)."""
    return f"{QUEUE_KEY_PREFIX}{queue_name}:intermediate"


def fire_job_id(schedule_id: int, occurrence_at: datetime) -> str:
    """The job of a schedule's occurrence (RQ 3 allows letters, digits, "_" and "-")."""
    return f"fire-{schedule_id}-{to_ms(occurrence_at)}"


def job_results_key(job_id: str) -> str:
    """RQ's stream of a job's results (~4.7 KB for a run's): it lives result_ttl after the
    job ends unless removed with its run."""
    key: str = Result.get_key(job_id)
    return key


def backfill_job_id(schedule_id: int, occurrence_at: datetime) -> str:
    """The job of a run a backfill created for a past occurrence (one per occurrence)."""
    return f"backfill-{schedule_id}-{to_ms(occurrence_at)}"


def run_job_id(run_id: int) -> str:
    """The job of a run started by hand."""
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
        result_ttl=JOB_RESULT_TTL_S,
        failure_ttl=JOB_FAILURE_TTL_S,
        description=f"test run {run_id}",
    )
    rq_queue.enqueue_job(job, pipeline=pipe)


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """The RQ job of one fired run: its id, serialized call, and description."""

    job_id: str
    data: bytes
    description: str


@dataclass(frozen=True, slots=True)
class JobTemplate:
    """Where a batch's jobs go (RQ's keys), and the job hash fields they all share."""

    queues_key: str
    queue_key: str
    job_key_prefix: str
    fields: Mapping[str, Any]


class JobShape:
    """RQ jobs for the fire path, written by the fire commit in the same atomic step as
    their runs, at a fraction of RQ's per-job cost.

    RQ's own enqueue builds a Job object, resolves its serializer and writes the job hash
    twice (status, then the rest) for every job: at 100,000 simultaneous fires that was most
    of the leader's time. Here RQ builds one prototype job per batch, and each run's job is
    that hash with its own id, data and description, less the fields RQ writes empty. A
    test compares the result with ``Queue.enqueue_job``'s, field by field and as RQ reads
    it back, so an RQ upgrade that changes the job layout fails there, not in production.
    """

    def __init__(self, rq_queue: Queue, *, prefix: str) -> None:
        self._queue = rq_queue
        self._prefix = prefix

    def template(self) -> JobTemplate:
        with translated():
            self._queue.get_redis_server_version()  # RQ reads it lazily (and keeps it)
        prototype = self._queue.create_job(
            JOB_FUNCTION,
            kwargs={"run_id": 0, "prefix": self._prefix},
            job_id="prototype",
            timeout=JOB_TIMEOUT_S,
            result_ttl=JOB_RESULT_TTL_S,
            failure_ttl=JOB_FAILURE_TTL_S,
        )
        prototype.origin = self._queue.name
        prototype.enqueued_at = prototype.created_at
        fields = {**prototype.to_dict(), "status": JobStatus.QUEUED.value}
        for per_job in ("data", "description"):
            fields.pop(per_job, None)
        # RQ writes eight fields empty at enqueue (started_at, worker_name, callbacks...)
        # and reads an absent field as empty: leaving them out is ~40% less hash to write.
        fields = {name: value for name, value in fields.items() if value != ""}
        return JobTemplate(
            queues_key=self._queue.redis_queues_keys,
            queue_key=self._queue.key,
            job_key_prefix=JOB_KEY_PREFIX,
            fields=fields,
        )

    def job(self, *, run_id: int, job_id: str) -> QueuedJob:
        data = JSONSerializer.dumps(
            (JOB_FUNCTION, None, (), {"run_id": run_id, "prefix": self._prefix})
        )
        return QueuedJob(job_id, zlib.compress(data), f"test run {run_id}")
