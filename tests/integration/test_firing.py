"""The fire path against a real Redis: exactly once, fenced by the lease, policies applied."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis
from rq import Queue

from tickwork.core import Frequency, Interval, Once, RuleSpec, Schedule, build_schedule
from tickwork.errors import LeaseLost
from tickwork.scheduler.firing import Firer
from tickwork.store import Lease, RunRecord, Store
from tickwork.worker.queue import fire_job_id, queue

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TTL_MS = 60_000


class Clock:
    """A hand-moved clock; ``hook`` runs once on the next reading (to interleave a rival)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.hook: Callable[[], None] | None = None
        self.readings = 0

    def __call__(self) -> datetime:
        self.readings += 1
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        return self.now


@pytest.fixture
def store(redis_client: redis.Redis) -> Store:
    return Store(redis_client, f"t{uuid.uuid4().hex[:8]}")


@pytest.fixture
def rq_queue(redis_client: redis.Redis, store: Store) -> Queue:
    return queue(redis_client, f"{store.keys.prefix}-runs")


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def firer(store: Store, rq_queue: Queue, clock: Clock) -> Firer:
    return Firer(store, rq_queue, clock=clock, catch_up=timedelta(minutes=5), batch_size=500)


@pytest.fixture
def lease(store: Store) -> Lease:
    lease = store.leases.acquire("scheduler", "me", TTL_MS)
    assert lease is not None
    return lease


def _load_test(store: Store, load_test_id: int, stack: int = 1) -> None:
    store.client.hset(store.keys.load_test(load_test_id), mapping={"stack": stack, "project_id": 7})


def _put(
    store: Store,
    load_test_id: int,
    schedule: Schedule,
    *,
    now: datetime = T0,
    overlap: str = "skip",
) -> int:
    _load_test(store, load_test_id)
    record = store.schedules.put(
        stack=1,
        load_test_id=load_test_id,
        schedule=schedule,
        request="{}",
        dialect="k6",
        created_by="a@example.com",
        now=now,
        overlap=overlap,
    )
    return record.id


def _runs(store: Store) -> list[RunRecord]:
    runs, _ = store.runs.page(1, skip=0, top=10_000)
    return runs


def test_due_one_shot_fires_exactly_once_with_its_job(
    store: Store, firer: Firer, lease: Lease, clock: Clock, rq_queue: Queue
) -> None:
    at = T0 + timedelta(seconds=2)
    sid = _put(store, 1, Schedule(at, Once()))
    assert firer.fire_due(lease).fired == []  # not due yet

    clock.now = at + timedelta(milliseconds=5)
    result = firer.fire_due(lease)
    assert [occurrence for _, occurrence in result.fired] == [at]
    assert firer.fire_due(lease).fired == []  # and never again

    (run,) = _runs(store)
    assert (run.status, run.schedule_id, run.scheduled_for, run.started_by) == (
        "created",
        sid,
        at,
        None,
    )
    assert run.project_id == 7
    assert rq_queue.job_ids == [fire_job_id(sid, at)]
    job = rq_queue.fetch_job(fire_job_id(sid, at))
    assert job is not None
    assert job.kwargs["run_id"] == run.id
    assert store.schedules.get(1, sid).next_at is None
    assert store.client.zcard(store.keys.due) == 0


def test_a_leader_that_lost_its_lease_commits_nothing(
    store: Store, firer: Firer, lease: Lease, clock: Clock, rq_queue: Queue
) -> None:
    _put(store, 1, Schedule(T0, Once()))
    store.client.delete(store.keys.lease("scheduler"))
    assert store.leases.acquire("scheduler", "rival", TTL_MS) is not None
    with pytest.raises(LeaseLost):
        firer.fire_due(lease)
    assert _runs(store) == []
    assert rq_queue.count == 0


def test_a_rival_taking_the_lease_mid_commit_voids_the_commit(
    store: Store, firer: Firer, lease: Lease, clock: Clock, rq_queue: Queue
) -> None:
    """The old leader checked its lease, then paused; a rival took over before EXEC."""
    _put(store, 1, Schedule(T0, Once()))

    def rival_takes_over() -> None:
        store.client.delete(store.keys.lease("scheduler"))
        assert store.leases.acquire("scheduler", "rival", TTL_MS) is not None

    # The first clock reading is fire_due's own; the second is taken inside the commit,
    # after WATCH and the lease check: the rival strikes there.
    clock.hook = lambda: setattr(clock, "hook", rival_takes_over)
    with pytest.raises(LeaseLost):
        firer.fire_due(lease)
    assert _runs(store) == []
    assert rq_queue.count == 0


def test_lease_expiring_mid_commit_voids_the_commit(
    store: Store, rq_queue: Queue, clock: Clock
) -> None:
    lease = store.leases.acquire("scheduler", "me", 150)
    assert lease is not None
    firer = Firer(store, rq_queue, clock=clock, catch_up=timedelta(minutes=5))
    _put(store, 1, Schedule(T0, Once()))

    def pause_past_the_lease() -> None:
        time.sleep(0.3)

    clock.hook = lambda: setattr(clock, "hook", pause_past_the_lease)
    with pytest.raises(LeaseLost):
        firer.fire_due(lease)
    assert _runs(store) == []
    assert rq_queue.count == 0


def test_overwriting_a_due_schedule_mid_commit_never_fires_the_old_version(
    store: Store, firer: Firer, lease: Lease, clock: Clock
) -> None:
    sid = _put(store, 1, Schedule(T0, Once()))
    later = T0 + timedelta(hours=1)

    def overwrite() -> None:
        _put(store, 1, Schedule(later, Once()), now=T0)

    clock.now = T0 + timedelta(seconds=1)
    clock.hook = lambda: setattr(clock, "hook", overwrite)
    assert firer.fire_due(lease).fired == []
    assert _runs(store) == []
    record = store.schedules.get(1, sid)
    assert record.id == sid
    assert record.next_at == later


def test_deleting_a_due_schedule_mid_commit_fires_nothing(
    store: Store, firer: Firer, lease: Lease, clock: Clock
) -> None:
    sid = _put(store, 1, Schedule(T0, Once()))
    clock.now = T0 + timedelta(seconds=1)
    clock.hook = lambda: setattr(clock, "hook", lambda: store.schedules.delete(1, sid))
    assert firer.fire_due(lease).fired == []
    assert _runs(store) == []


def test_deactivated_occurrences_pass_without_runs_but_count(
    store: Store, firer: Firer, lease: Lease, clock: Clock
) -> None:
    schedule = build_schedule(
        starts="2026-11-23T12:00:00Z", rule=RuleSpec(Frequency.HOURLY, count=3)
    )
    sid = _put(store, 1, schedule, overlap="allow")
    assert [o for _, o in firer.fire_due(lease).fired] == [T0]
    store.schedules.deactivate(1, sid)
    clock.now = T0 + timedelta(hours=1, minutes=1)
    assert firer.fire_due(lease).fired == []
    record = store.schedules.activate(1, sid, now=clock.now)
    assert record.next_at == T0 + timedelta(hours=2)  # the third and last
    clock.now = T0 + timedelta(hours=2)
    assert [o for _, o in firer.fire_due(lease).fired] == [T0 + timedelta(hours=2)]
    assert store.schedules.get(1, sid).next_at is None
    assert len(_runs(store)) == 2


def test_missed_occurrences_fire_the_latest_once_and_record_the_rest(
    store: Store, firer: Firer, lease: Lease, clock: Clock
) -> None:
    sid = _put(store, 1, Schedule(T0, Interval(timedelta(minutes=1))), overlap="allow")
    clock.now = T0 + timedelta(minutes=9, seconds=30)  # every daemon was down
    result = firer.fire_due(lease)
    assert [o for _, o in result.fired] == [T0 + timedelta(minutes=9)]
    assert result.skipped == {"missed": 9}
    runs = _runs(store)
    skipped = [r for r in runs if r.status == "skipped"]
    assert [r.scheduled_for for r in skipped] == [T0 + timedelta(minutes=m) for m in range(9)]
    assert all(r.details["skip_reason"] == "missed" for r in skipped)
    assert store.schedules.get(1, sid).next_at == T0 + timedelta(minutes=10)


def test_occurrences_missed_beyond_the_window_are_all_recorded_none_fired(
    store: Store, firer: Firer, lease: Lease, clock: Clock
) -> None:
    _put(store, 1, Schedule(T0, Interval(timedelta(hours=1))))
    clock.now = T0 + timedelta(hours=2, minutes=30)
    result = firer.fire_due(lease)
    assert result.fired == []
    assert result.skipped == {"missed": 2, "missed_outside_catch_up_window": 1}


def test_overlap_skip_records_the_occurrence_while_the_previous_run_is_unfinished(
    store: Store, firer: Firer, lease: Lease, clock: Clock
) -> None:
    _put(store, 1, Schedule(T0, Interval(timedelta(minutes=1))))
    assert len(firer.fire_due(lease).fired) == 1  # run 1 stays "created": unfinished
    clock.now = T0 + timedelta(minutes=1)
    result = firer.fire_due(lease)
    assert result.fired == []
    assert result.skipped == {"overlap": 1}


def test_overlap_allow_fires_while_the_previous_run_is_unfinished(
    store: Store, firer: Firer, lease: Lease, clock: Clock
) -> None:
    _put(store, 1, Schedule(T0, Interval(timedelta(minutes=1))), overlap="allow")
    firer.fire_due(lease)
    clock.now = T0 + timedelta(minutes=1)
    assert len(firer.fire_due(lease).fired) == 1


def test_many_simultaneous_occurrences_fire_once_each_across_batches(
    store: Store, rq_queue: Queue, lease: Lease, clock: Clock
) -> None:
    firer = Firer(store, rq_queue, clock=clock, catch_up=timedelta(minutes=5), batch_size=100)
    for load_test_id in range(1, 251):
        _put(store, load_test_id, Schedule(T0, Once()))
    fired: list[int] = []
    while True:
        result = firer.fire_due(lease)
        fired += [run_id for run_id, _ in result.fired]
        if not result.full:
            break
    assert len(fired) == len(set(fired)) == 250
    assert rq_queue.count == 250
    assert store.client.zcard(store.keys.due) == 0


def test_a_schedule_set_after_its_one_shot_instant_never_fires(
    store: Store, firer: Firer, lease: Lease, clock: Clock
) -> None:
    sid = _put(store, 1, Schedule(T0 - timedelta(seconds=1), Once()))
    assert store.schedules.get(1, sid).next_at is None
    assert firer.fire_due(lease).fired == []


def _fire_through(firer: Firer, lease: Lease, clock: Clock, until: datetime) -> list[datetime]:
    """Step the clock one minute at a time, firing as a leader would; the occurrences fired."""
    fired: list[datetime] = []
    while clock.now < until:
        clock.now += timedelta(minutes=1)
        fired += [occurrence for _, occurrence in firer.fire_due(lease).fired]
    return fired


def test_fixed_time_cron_fires_once_on_a_fall_back_day(
    store: Store, firer: Firer, lease: Lease, clock: Clock
) -> None:
    from tickwork.core import CronSpec

    clock.now = datetime(2026, 10, 31, 12, tzinfo=UTC)
    schedule = build_schedule(
        starts="2026-10-01T00:00:00Z", cron=CronSpec("30 1 * * *", "America/New_York")
    )
    _put(store, 1, schedule, now=clock.now, overlap="allow")
    fired = _fire_through(firer, lease, clock, datetime(2026, 11, 2, 12, tzinfo=UTC))
    assert fired == [
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
        datetime(2026, 11, 2, 6, 30, tzinfo=UTC),
    ]


def test_fixed_time_cron_in_the_spring_gap_fires_once_after_it(
    store: Store, firer: Firer, lease: Lease, clock: Clock
) -> None:
    from tickwork.core import CronSpec

    clock.now = datetime(2026, 3, 7, 12, tzinfo=UTC)
    schedule = build_schedule(
        starts="2026-01-01T00:00:00Z", cron=CronSpec("30 2 * * *", "America/New_York")
    )
    _put(store, 1, schedule, now=clock.now, overlap="allow")
    fired = _fire_through(firer, lease, clock, datetime(2026, 3, 8, 12, tzinfo=UTC))
    assert fired == [datetime(2026, 3, 8, 7, 0, tzinfo=UTC)]


def test_until_is_inclusive_and_ends_the_schedule(
    store: Store, firer: Firer, lease: Lease, clock: Clock
) -> None:
    schedule = build_schedule(
        starts="2026-11-23T12:00:00Z",
        rule=RuleSpec(Frequency.HOURLY, until="2026-11-23T14:00:00Z"),
    )
    sid = _put(store, 1, schedule, overlap="allow")
    fired = _fire_through(firer, lease, clock, T0 + timedelta(hours=5))
    assert fired == [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    assert store.schedules.get(1, sid).next_at is None
    assert store.client.zscore(store.keys.due, str(sid)) is None
