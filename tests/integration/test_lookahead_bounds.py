"""What the leader holds ahead is bounded and never outlives its lease.

README, "On time when many fire at once": the leader keeps fires encoded ahead in memory, "at
most 150,000"; beyond that the ordinary path takes the rest; and "a new leader starts with
nothing ahead". The cap is a constructor argument of ``Lookahead``, so these tests use a
small one; the leader's ``Firer`` builds its look-ahead with the default.
"""

from __future__ import annotations

import inspect
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import redis
from rq import Queue

from tickwork.core import Once, Schedule
from tickwork.scheduler import lookahead
from tickwork.scheduler.firing import Firer
from tickwork.scheduler.lookahead import Lookahead
from tickwork.scheduler.loop import LEASE_NAME, Scheduler
from tickwork.store import Lease, Store
from tickwork.store.queue import queue

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=30)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store(redis_client: redis.Redis) -> Store:
    return Store(redis_client, f"ahead{uuid.uuid4().hex[:8]}")


@pytest.fixture
def rq_queue(store: Store) -> Queue:
    return queue(store.client, f"{store.keys.prefix}-runs")


def _one_shots(store: Store, count: int, at: datetime, *, now: datetime) -> None:
    """Load tests 1..count, each with a one-shot schedule at ``at``, set at ``now``."""
    for load_test_id in range(1, count + 1):
        store.client.hset(store.keys.load_test(load_test_id), mapping={"stack": 1, "project_id": 7})
        store.schedules.put(
            stack=1,
            load_test_id=load_test_id,
            schedule=Schedule(at, Once()),
            request="{}",
            created_by=None,
            now=now,
        )


def _capped_firer(store: Store, rq_queue: Queue, clock: Clock, cap: int) -> Firer:
    """The leader's Firer with a look-ahead of ``cap`` entries at most."""
    return Firer(
        store,
        rq_queue,
        clock=clock,
        catch_up=timedelta(minutes=5),
        lookahead=WINDOW,
        lookahead_cap=cap,
    )


def _prepare_all(firer: Firer) -> int:
    while firer.prepare():
        pass
    return firer.ahead


def test_the_leader_holds_at_most_150000_fires_ahead_by_default() -> None:
    assert lookahead.CAP == 150_000
    assert inspect.signature(Lookahead).parameters["cap"].default == lookahead.CAP
    # Firer builds its look-ahead without a cap argument: the default is what the daemon uses.
    assert "cap" not in inspect.signature(Firer).parameters


def test_fires_beyond_those_held_ahead_take_the_ordinary_path_and_each_fires_once(
    store: Store, rq_queue: Queue
) -> None:
    cap, count = lookahead.STEP, lookahead.STEP + 50  # more than a look-ahead step holds
    at = T0 + timedelta(seconds=10)
    clock = Clock(T0)
    _one_shots(store, count, at, now=T0)
    firer = _capped_firer(store, rq_queue, clock, cap)
    lease = store.leases.acquire(LEASE_NAME, "me", 60_000)
    assert lease is not None

    assert _prepare_all(firer) == cap
    assert store.runs.page(1, skip=0, top=1)[1] == 0  # held in memory, nothing written

    clock.now = at
    from_ahead: list[int] = []
    while (result := firer.fire_ahead(lease)) is not None and result.fired:
        from_ahead += [run_id for run_id, _ in result.fired]
    ordinary: list[int] = []
    while (result := firer.fire_due(lease)).fired:
        ordinary += [run_id for run_id, _ in result.fired]

    assert len(from_ahead) == cap
    assert len(ordinary) == count - cap
    runs, total = store.runs.page(1, skip=0, top=10_000)
    assert total == count
    assert sorted(r.load_test_id for r in runs) == list(range(1, count + 1))  # once each
    assert sorted(r.id for r in runs) == sorted(from_ahead + ordinary)
    assert rq_queue.count == count


def test_the_look_ahead_never_holds_more_fires_than_its_cap(store: Store, rq_queue: Queue) -> None:
    clock = Clock(T0)
    _one_shots(store, 5, T0 + timedelta(seconds=10), now=T0)
    firer = _capped_firer(store, rq_queue, clock, cap=3)

    assert _prepare_all(firer) <= 3


# A leader that loses its lease forgets what it held ahead, and leads again from nothing.


def _wait(predicate: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@contextmanager
def _running(scheduler: Scheduler) -> Iterator[Scheduler]:
    thread = threading.Thread(target=scheduler.run, daemon=True)
    thread.start()
    try:
        yield scheduler
    finally:
        scheduler.stop()
        thread.join(timeout=10)
        assert not thread.is_alive()


def _sample(scheduler: Scheduler, name: str) -> float:
    value = scheduler.metrics.registry.get_sample_value(name)
    return 0.0 if value is None else value


@pytest.mark.slow  # waits out a lease's expiry (~3 s)
def test_a_leader_that_lost_its_lease_forgets_its_fires_ahead_and_leads_again_from_nothing(
    store: Store, rq_queue: Queue
) -> None:
    firer = Firer(
        store,
        rq_queue,
        clock=lambda: datetime.now(UTC),
        catch_up=timedelta(minutes=5),
        lookahead=WINDOW,
    )
    scheduler = Scheduler(store, firer, lease_ttl=timedelta(seconds=1.5))
    with _running(scheduler):
        _wait(lambda: scheduler.role == "leader", "the lease")
        # Far enough ahead that none of them is due before the test moves them.
        _one_shots(store, 3, datetime.now(UTC) + timedelta(seconds=25), now=datetime.now(UTC))
        _wait(lambda: _sample(scheduler, "tickwork_fires_ahead") == 3, "three fires ahead")

        # A rival takes the lease (as after a pause past its TTL): the leader steps down.
        store.client.set(store.keys.lease(LEASE_NAME), "0:rival", px=30_000)
        _wait(lambda: scheduler.role == "standby", "the leader to step down")
        assert firer.ahead == 0
        assert _sample(scheduler, "tickwork_fires_ahead") == 0
        assert _sample(scheduler, "tickwork_lease_losses_total") == 1

        # Meanwhile the schedules move earlier. Entries kept from the lost term would sit at
        # the old instants (and keep these schedules from being encoded again).
        moved_to = datetime.now(UTC) + timedelta(seconds=3)
        _one_shots(store, 3, moved_to, now=datetime.now(UTC))
        assert store.leases.release(Lease(LEASE_NAME, "rival", 0))
        _wait(lambda: scheduler.role == "leader", "the lease again")

        _wait(lambda: store.runs.page(1, skip=0, top=10)[1] == 3, "the three fires")
        _wait(lambda: _sample(scheduler, "tickwork_fires_ahead") == 0, "nothing left ahead")
        runs, _ = store.runs.page(1, skip=0, top=10)
        assert sorted(r.load_test_id for r in runs) == [1, 2, 3]
        assert {r.scheduled_for for r in runs} == {moved_to}
        assert firer.ahead == 0
        assert _sample(scheduler, "tickwork_fire_conflicts_total") == 0
