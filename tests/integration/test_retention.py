"""Bounded growth against a real Redis: retention removes old and surplus runs with everything
that names them, and the leader ends runs whose job no worker will ever run (issue 13)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis
from rq import Queue
from rq.results import Result

from tickwork.core.lifecycle import Outcome, ending_of
from tickwork.scheduler.firing import Firer
from tickwork.scheduler.housekeeping import Housekeeping, RetentionPolicy
from tickwork.scheduler.loop import Scheduler
from tickwork.store import Store
from tickwork.store.executions import IN_FLIGHT_CONFIRM
from tickwork.store.queue import (
    JOB_KEY_PREFIX,
    JOB_RESULT_TTL_S,
    intermediate_key,
    job_results_key,
    queue,
)

from .seeding import created_run, load_test

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store(redis_client: redis.Redis) -> Store:
    return Store(redis_client, f"ret{uuid.uuid4().hex[:8]}")


@pytest.fixture
def rq_queue(redis_client: redis.Redis, store: Store) -> Queue:
    return queue(redis_client, f"{store.keys.prefix}-runs")


def _finished_run(store: Store, rq_queue: Queue, load_test_id: int, created: datetime) -> int:
    """A run created (with its queued job) at ``created`` that a worker then completed."""
    run_id = created_run(store, load_test_id, rq_queue=rq_queue, created=created)
    claimed = store.executions.claim(run_id, worker="w", at=created, lapse_ms=60_000).run
    assert claimed is not None
    ended = store.executions.finish(
        run_id, expect="initializing", ending=ending_of(Outcome.PASSED), at=created
    )
    assert ended is not None
    # What RQ's worker writes when the job returns: its result stream (~4.7 KB a run)
    job = rq_queue.fetch_job(f"run-{run_id}")
    assert job is not None
    Result.create(job, Result.Type.SUCCESSFUL, ttl=86_400, return_value=None)
    return run_id


def _gone(store: Store, run_id: int, job_id: str) -> bool:
    client, keys = store.client, store.keys
    return (
        not client.exists(
            keys.run(run_id),
            keys.run_executed(run_id),
            JOB_KEY_PREFIX + job_id,
            job_results_key(job_id),
        )
        and client.zscore(keys.stack_index(1, "runs"), run_id) is None
        and client.zscore(keys.load_test_runs(1), run_id) is None
        and client.zscore(keys.unclaimed, run_id) is None
    )


def test_sweep_removes_finished_runs_older_than_the_cutoff_with_everything_naming_them(
    store: Store, rq_queue: Queue
) -> None:
    load_test(store, 1)
    old = _finished_run(store, rq_queue, 1, NOW - timedelta(days=40))
    young = _finished_run(store, rq_queue, 1, NOW - timedelta(days=2))
    waiting = created_run(store, 1, rq_queue=rq_queue, created=NOW - timedelta(days=40))

    removed = store.retention.sweep(before=NOW - timedelta(days=30), limit=100)

    assert removed == 1
    assert _gone(store, old, f"run-{old}")
    assert store.runs.get_any(young) is not None
    assert store.runs.get_any(waiting) is not None  # not finished: ended by the strand check
    assert [run.id for run in store.runs.page(1, skip=0, top=10)[0]] == [waiting, young]


def test_sweep_goes_in_steps_of_its_limit(store: Store, rq_queue: Queue) -> None:
    load_test(store, 1)
    runs = [
        _finished_run(store, rq_queue, 1, NOW - timedelta(days=40, minutes=i)) for i in range(5)
    ]

    assert store.retention.sweep(before=NOW - timedelta(days=30), limit=3) == 3
    assert store.retention.sweep(before=NOW - timedelta(days=30), limit=3) == 2
    assert store.retention.sweep(before=NOW - timedelta(days=30), limit=3) == 0
    assert all(store.runs.get_any(run_id) is None for run_id in runs)


def test_trim_keeps_the_newest_finished_runs_of_each_marked_load_test(
    store: Store, rq_queue: Queue
) -> None:
    load_test(store, 1)
    load_test(store, 2)
    first = [_finished_run(store, rq_queue, 1, NOW - timedelta(hours=10 - i)) for i in range(6)]
    other = [_finished_run(store, rq_queue, 2, NOW - timedelta(hours=10 - i)) for i in range(6)]
    running = created_run(store, 1, rq_queue=rq_queue, created=NOW - timedelta(hours=20))

    removed = store.retention.trim(keep=4, load_tests=10, limit=100)

    # Load test 1 has 7 runs: the two oldest finished ones go, the unfinished one stays
    kept, _ = store.runs.page(1, skip=0, top=100, load_test_id=1)
    assert [run.id for run in kept] == [running, *first[2:]]
    kept, _ = store.runs.page(1, skip=0, top=100, load_test_id=2)
    assert [run.id for run in kept] == other[2:]
    assert removed == 4


def test_trim_does_only_its_limit_and_comes_back_for_the_rest(
    store: Store, rq_queue: Queue
) -> None:
    load_test(store, 1)
    for i in range(6):
        _finished_run(store, rq_queue, 1, NOW - timedelta(hours=10 - i))

    assert store.retention.trim(keep=1, load_tests=10, limit=3) == 3
    assert store.retention.trim(keep=1, load_tests=10, limit=3) == 2
    assert store.retention.trim(keep=1, load_tests=10, limit=3) == 0
    assert store.client.zcard(store.keys.load_test_runs(1)) == 1


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


def _housekeeping(store: Store, clock: Clock) -> Housekeeping:
    policy = RetentionPolicy(claim_within=timedelta(seconds=60), max_queued=timedelta(hours=1))
    return Housekeeping(store, policy, clock=clock)


def test_a_run_whose_job_vanished_is_ended_after_the_claim_window(
    store: Store, rq_queue: Queue, clock: Clock
) -> None:
    load_test(store, 1)
    run_id = created_run(store, 1, rq_queue=rq_queue, created=NOW)
    store.client.delete(JOB_KEY_PREFIX + f"run-{run_id}")  # lost (Redis, an operator...)
    housekeeping = _housekeeping(store, clock)

    housekeeping.reap()
    assert store.runs.get(1, run_id).status == "created"  # within the window: left alone

    clock.now = NOW + timedelta(seconds=61)
    housekeeping.reap()
    run = store.runs.get(1, run_id)
    assert (run.status, run.result, run.details["reason"]) == ("aborted", "error", "worker_lost")
    assert "job was lost" in (run.status_history[-1].message or "")
    assert store.client.zscore(store.keys.unclaimed, run_id) is None


@pytest.mark.parametrize("intermediate", [True, False], ids=["one-queue", "several-queues"])
def test_a_run_whose_job_a_worker_dequeued_and_dropped_is_ended_once_seen_so_twice(
    store: Store, rq_queue: Queue, clock: Clock, intermediate: bool
) -> None:
    # Given a worker that took the job off the queue, then died (or had its claim refused by
    # a full Redis) before claiming the run. RQ moves the job to its intermediate list when
    # the worker listens on one queue, and pops it outright when on several (tickwork's
    # worker listens on two; CI: such a run stayed "created" after Redis ran out of memory).
    load_test(store, 1)
    run_id = created_run(store, 1, rq_queue=rq_queue, created=NOW)
    if intermediate:
        store.client.lmove(rq_queue.key, intermediate_key(rq_queue.name), "RIGHT", "LEFT")
    else:
        store.client.lpop(rq_queue.key)
    housekeeping = _housekeeping(store, clock)

    # The first check past the claim window only notes it: a worker claims within
    # milliseconds of its dequeue, so a later check must find it so too.
    clock.now = NOW + timedelta(minutes=2)
    housekeeping.reap()
    assert store.runs.get(1, run_id).status == "created"

    clock.now = NOW + timedelta(minutes=2) + IN_FLIGHT_CONFIRM
    housekeeping.reap()
    run = store.runs.get(1, run_id)
    assert run.details["reason"] == "worker_lost"
    where = "dequeued" if intermediate else "dequeued and dropped"
    assert f"(job queued, {where})" in (run.status_history[-1].message or "")
    assert 0 < store.client.ttl(JOB_KEY_PREFIX + f"run-{run_id}") <= JOB_RESULT_TTL_S  # expires
    # and a worker that claims it after all does nothing
    assert store.executions.claim(run_id, worker="late", at=clock.now, lapse_ms=1000).run is None


def test_a_job_a_worker_has_just_dequeued_is_left_to_its_claim(
    store: Store, rq_queue: Queue, clock: Clock
) -> None:
    # Given a job that waited in the queue past the claim window and a worker that popped it
    # the moment a check looked
    load_test(store, 1)
    run_id = created_run(store, 1, rq_queue=rq_queue, created=NOW)
    store.client.lpop(rq_queue.key)
    housekeeping = _housekeeping(store, clock)
    clock.now = NOW + timedelta(minutes=2)
    housekeeping.reap()

    # When the worker claims it before the next check
    assert store.executions.claim(run_id, worker="w", at=clock.now, lapse_ms=10**9).run
    clock.now += IN_FLIGHT_CONFIRM
    housekeeping.reap()

    # Then the run is the worker's
    assert store.runs.get(1, run_id).status == "initializing"


def test_a_run_no_worker_takes_ends_timed_out_after_the_longest_wait(
    store: Store, rq_queue: Queue, clock: Clock
) -> None:
    load_test(store, 1)
    run_id = created_run(store, 1, rq_queue=rq_queue, created=NOW)
    housekeeping = _housekeeping(store, clock)

    clock.now = NOW + timedelta(minutes=59)
    housekeeping.reap()
    assert store.runs.get(1, run_id).status == "created"  # its job waits in the queue

    clock.now = NOW + timedelta(minutes=61)
    housekeeping.reap()
    run = store.runs.get(1, run_id)
    assert (run.status, run.details["reason"]) == ("aborted", "timed_out")
    assert "no worker claimed it within 3660 s" in (run.status_history[-1].message or "")


def test_a_claimed_run_is_never_taken_for_stranded(
    store: Store, rq_queue: Queue, clock: Clock
) -> None:
    load_test(store, 1)
    run_id = created_run(store, 1, rq_queue=rq_queue, created=NOW)
    assert store.executions.claim(run_id, worker="w", at=NOW, lapse_ms=10**9).run is not None

    clock.now = NOW + timedelta(days=2)
    _housekeeping(store, clock).reap()

    assert store.runs.get(1, run_id).status == "initializing"


def test_no_retention_step_starts_when_a_fire_is_near(
    store: Store, rq_queue: Queue, clock: Clock
) -> None:
    load_test(store, 1)
    old = _finished_run(store, rq_queue, 1, NOW - timedelta(days=40))
    store.client.zadd(store.keys.due, {"99": int(NOW.timestamp() * 1000) + 20})
    housekeeping = _housekeeping(store, clock)

    housekeeping.step()
    assert store.runs.get_any(old) is not None

    store.client.zadd(store.keys.due, {"99": int(NOW.timestamp() * 1000) + 5_000})
    housekeeping.step()
    assert store.runs.get_any(old) is None


def _until(predicate: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_leading_scheduler_removes_what_retention_no_longer_keeps(
    store: Store, rq_queue: Queue
) -> None:
    # Given old runs of one load test, and more runs than it may keep of another
    load_test(store, 1)
    load_test(store, 2)
    now = datetime.now(UTC)
    expired = [
        _finished_run(store, rq_queue, 1, now - timedelta(days=8, hours=i)) for i in range(3)
    ]
    surplus = [_finished_run(store, rq_queue, 2, now - timedelta(hours=9 - i)) for i in range(5)]

    # When a scheduler leads (retention 7 days, 3 runs per load test)
    firer = Firer(store, rq_queue, clock=lambda: datetime.now(UTC), catch_up=timedelta(minutes=5))
    policy = RetentionPolicy(run_retention=timedelta(days=7), runs_per_load_test=3)
    scheduler = Scheduler(store, firer, lease_ttl=timedelta(seconds=1.5), retention=policy)
    thread = threading.Thread(target=scheduler.run, daemon=True)
    thread.start()
    try:
        _until(lambda: all(store.runs.get_any(r) is None for r in [*expired, *surplus[:2]]))
    finally:
        scheduler.stop()
        thread.join(timeout=30)
    assert not thread.is_alive(), "the scheduler's loop did not stop"

    # Then what is left is the newest three of the second
    kept, _ = store.runs.page(1, skip=0, top=100)
    assert [run.id for run in kept] == surplus[2:]
