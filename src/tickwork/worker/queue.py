"""Transitional: the queue's names and the job's shape now live in ``tickwork.store.queue``.

Kept only until the callers outside the worker move (this wave); nothing new imports it.
"""

from __future__ import annotations

from tickwork.store.queue import (
    DEFAULT_QUEUE,
    JOB_FUNCTION,
    JOB_TIMEOUT_S,
    enqueue_run,
    fire_job_id,
    queue,
    run_job_id,
)

__all__ = [
    "DEFAULT_QUEUE",
    "JOB_FUNCTION",
    "JOB_TIMEOUT_S",
    "enqueue_run",
    "fire_job_id",
    "queue",
    "run_job_id",
]
