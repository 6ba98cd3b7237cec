"""The scheduler loop in-process against a real Redis: leads, fires on time, reaps, hands over."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import redis

from tickwork.core import Once, Schedule
from tickwork.scheduler.firing import Firer
from tickwork.scheduler.loop import Scheduler
from tickwork.store import Store
from tickwork.store.queue import queue

from .seeding import created_run, load_test


@pytest.fixture
def store(redis_client: redis.Redis) -> Store:
    return Store(redis_client, f"loop{uuid.uuid4().hex[:8]}")


# Renewals every 10 s: what happens sooner than that was woken by the nudge, the due instant
# or the released lease, not by the renewal cadence. The reaper's test renews every 0.5 s.
LONG_LEASE = timedelta(seconds=30)
SHORT_LEASE = timedelta(seconds=1.5)
ON_TIME_S = 1.0
"""Late by less than this is on time, even on a loaded 2-core host; a loop that waited for
its next renewal would be late by up to 10 s."""


def _scheduler(
    store: Store, lookahead: timedelta = timedelta(0), lease_ttl: timedelta = LONG_LEASE
) -> Scheduler:
    firer = Firer(
        store,
        queue(store.client, f"{store.keys.prefix}-runs"),
        clock=lambda: datetime.now(UTC),
        catch_up=timedelta(minutes=5),
        lookahead=lookahead,
    )
    return Scheduler(store, firer, lease_ttl=lease_ttl)


@contextmanager
def _started(schedulers: list[Scheduler]) -> Iterator[list[Scheduler]]:
    """The schedulers' loops on threads of their own, stopped on the way out."""
    threads = [threading.Thread(target=s.run, daemon=True) for s in schedulers]
    for thread in threads:
        thread.start()
    try:
        yield schedulers
    finally:
        for scheduler in schedulers:
            scheduler.stop()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(t.is_alive() for t in threads), "a scheduler's loop did not stop"


@pytest.fixture
def running(store: Store) -> Iterator[list[Scheduler]]:
    with _started([_scheduler(store), _scheduler(store)]) as schedulers:
        yield schedulers


def _one_shot(store: Store, in_s: float) -> datetime:
    """Load test 1 gets a one-shot schedule ``in_s`` seconds from now; its instant, in whole
    milliseconds as the API takes them (the due index counts in them)."""
    at = datetime.now(UTC) + timedelta(seconds=in_s)
    at = at.replace(microsecond=at.microsecond // 1000 * 1000)
    store.client.hset(store.keys.load_test(1), mapping={"stack": 1, "project_id": 1})
    store.schedules.put(
        stack=1,
        load_test_id=1,
        schedule=Schedule(at, Once()),
        request="{}",
        created_by=None,
        now=datetime.now(UTC),
    )
    return at


def _wait(predicate: object, timeout_s: float = 5.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def _leader(schedulers: list[Scheduler]) -> Scheduler:
    _wait(lambda: sum(s.role == "leader" for s in schedulers) == 1)
    return next(s for s in schedulers if s.role == "leader")


@pytest.mark.slow  # waits out a real instant (~1 s)
def test_a_schedule_set_for_a_moment_from_now_fires_at_that_moment(
    store: Store, running: list[Scheduler]
) -> None:
    _leader(running)
    at = _one_shot(store, 1)
    _wait(lambda: store.runs.page(1, skip=0, top=10)[1] == 1, timeout_s=1 + 5)
    (run,) = store.runs.page(1, skip=0, top=10)[0]
    lag = (run.created - at).total_seconds()
    assert 0 <= lag < ON_TIME_S  # woken by the nudge and the due instant, not by a renewal


def test_the_leader_reaps_a_run_whose_worker_died_when_no_worker_is_left(store: Store) -> None:
    load_test(store, 1)
    run_id = created_run(store, 1)
    claim = store.executions.claim(run_id, worker="gone", at=datetime.now(UTC), lapse_ms=100)
    assert claim.run is not None
    with _started([_scheduler(store, lease_ttl=SHORT_LEASE)]) as running:
        _leader(running)
        _wait(lambda: store.runs.get(1, run_id).status == "aborted", timeout_s=10)
    assert store.runs.get(1, run_id).details["reason"] == "worker_lost"


def test_a_stopped_leader_hands_over_at_once(store: Store, running: list[Scheduler]) -> None:
    first = _leader(running)
    first.stop()
    # Well inside the 30 s lease a standby would otherwise wait out.
    _wait(lambda: any(s.role == "leader" for s in running if s is not first), timeout_s=10)


@pytest.mark.slow  # waits out a real instant (~3 s)
def test_a_leader_encodes_a_fire_ahead_and_commits_it_on_time(store: Store) -> None:
    with _started([_scheduler(store, lookahead=timedelta(seconds=10))]) as (scheduler,):
        _leader([scheduler])
        at = _one_shot(store, 3)
        _wait(lambda: _ahead(scheduler) == 1, timeout_s=2.5)
        assert datetime.now(UTC) < at, "encoded too late to see it before its instant"
        assert store.runs.page(1, skip=0, top=10)[1] == 0  # encoded, nothing written
        _wait(lambda: store.runs.page(1, skip=0, top=10)[1] == 1, timeout_s=6)
        (run,) = store.runs.page(1, skip=0, top=10)[0]
        assert 0 <= (run.created - at).total_seconds() < ON_TIME_S
        assert run.scheduled_for == at
        _wait(lambda: _ahead(scheduler) == 0)


def _ahead(scheduler: Scheduler) -> float | None:
    return scheduler.metrics.registry.get_sample_value("tickwork_fires_ahead")
