"""An overwrite and a fire of one schedule, in every order: one run per occurrence, never two.

Regression tests for issue 12 §0: a one-shot re-POSTed unchanged within milliseconds of its
instant fired that instant twice, because the overwrite (its clock read a moment before)
moved the high-water mark back below an occurrence the leader had just committed. The
interleavings here are forced by hand, so each order is tested on every run.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import redis
from rq import Queue
from rq.job import Job

from tickwork.core import Frequency, Interval, Once, RuleSpec, Schedule, build_schedule
from tickwork.core.instants import to_us
from tickwork.scheduler.firing import Firer
from tickwork.store import Lease, RunRecord, ScheduleRecord, Store
from tickwork.store.fires import Advance
from tickwork.store.queue import JobShape, queue
from tickwork.store.schedules import retimed

T = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store(redis_client: redis.Redis) -> Store:
    return Store(redis_client, f"t{uuid.uuid4().hex[:8]}")


@pytest.fixture
def rq_queue(redis_client: redis.Redis, store: Store) -> Queue:
    return queue(redis_client, f"{store.keys.prefix}-runs")


@pytest.fixture
def clock() -> Clock:
    return Clock(T - timedelta(seconds=10))


@pytest.fixture
def firer(store: Store, rq_queue: Queue, clock: Clock) -> Firer:
    return Firer(store, rq_queue, clock=clock, catch_up=timedelta(minutes=5))


@pytest.fixture
def ahead(store: Store, rq_queue: Queue, clock: Clock) -> Firer:
    return Firer(
        store, rq_queue, clock=clock, catch_up=timedelta(minutes=5), lookahead=timedelta(30)
    )


@pytest.fixture
def lease(store: Store) -> Lease:
    lease = store.leases.acquire("scheduler", "me", 60_000)
    assert lease is not None
    return lease


def _put(store: Store, schedule: Schedule, *, now: datetime, overlap: str = "skip") -> int:
    store.client.hset(store.keys.load_test(1), mapping={"stack": 1, "project_id": 7})
    record = store.schedules.put(
        stack=1,
        load_test_id=1,
        schedule=schedule,
        request="{}",
        created_by="a@example.com",
        now=now,
        overlap=overlap,
    )
    return record.id


def _runs_for(store: Store, at: datetime) -> list[RunRecord]:
    runs, _ = store.runs.page(1, skip=0, top=10_000)
    return [run for run in runs if run.scheduled_for == at]


def _due(store: Store, sid: int) -> float | None:
    return store.client.zscore(store.keys.due, str(sid))


@pytest.mark.parametrize("overlap", ["skip", "allow"])
def test_an_overwrite_whose_clock_was_read_before_a_committed_fire_does_not_fire_it_again(
    store: Store, firer: Firer, lease: Lease, clock: Clock, rq_queue: Queue, overlap: str
) -> None:
    # Given a one-shot at T, fired by the leader
    sid = _put(store, Schedule(T, Once()), now=clock.now, overlap=overlap)
    clock.now = T + MS
    assert [at for _, at in firer.fire_due(lease).fired] == [T]

    # When the same body is re-sent by a request that read its clock just before T
    _put(store, Schedule(T, Once()), now=T - 2 * MS, overlap=overlap)

    # Then T is not due again: one run, one job, no false overlap record
    assert _due(store, sid) is None
    clock.now = T + 5 * MS
    assert firer.fire_due(lease).fired == []
    (run,) = _runs_for(store, T)
    assert run.status == "created"
    assert rq_queue.count == 1


def test_an_overwrite_that_read_the_record_before_a_fire_committed_retries_and_sees_it(
    store: Store, firer: Firer, lease: Lease, clock: Clock
) -> None:
    # Given a one-shot at T, and a re-POST that reads the record before the fire commits
    sid = _put(store, Schedule(T, Once()), now=clock.now)
    clock.now = T + MS
    original = store.schedules.get_any
    fired: list[int] = []

    def read_then_fire(schedule_id: int) -> ScheduleRecord | None:
        record = original(schedule_id)
        if not fired:  # the leader commits T between the overwrite's read and its write
            fired.extend(run_id for run_id, _ in firer.fire_due(lease).fired)
        return record

    store.schedules.get_any = read_then_fire  # type: ignore[method-assign]

    # When the overwrite (clock read before T) commits
    _put(store, Schedule(T, Once()), now=T - MS)

    # Then it was serialised after the fire: T fired once and is not due again
    assert len(fired) == 1
    assert _due(store, sid) is None
    assert firer.fire_due(lease).fired == []
    assert len(_runs_for(store, T)) == 1


def test_an_overwrite_with_the_same_timing_at_the_instant_does_not_drop_the_occurrence(
    store: Store, firer: Firer, lease: Lease, clock: Clock
) -> None:
    # Given a one-shot at T not yet fired, re-sent by a request whose clock read T itself
    sid = _put(store, Schedule(T, Once()), now=clock.now)
    _put(store, Schedule(T, Once()), now=T + MS)

    # Then T is still due and fires once
    assert _due(store, sid) == T.timestamp() * 1000
    clock.now = T + 2 * MS
    assert [at for _, at in firer.fire_due(lease).fired] == [T]
    assert len(_runs_for(store, T)) == 1


def test_an_overwrite_with_a_new_timing_starts_afresh_and_never_repeats_a_fired_occurrence(
    store: Store, firer: Firer, lease: Lease, clock: Clock
) -> None:
    # Given an every-minute schedule that fired T
    every_minute = Schedule(T, Interval(timedelta(minutes=1)))
    sid = _put(store, every_minute, now=clock.now, overlap="allow")
    clock.now = T + MS
    assert [at for _, at in firer.fire_due(lease).fired] == [T]

    # When it is re-timed by a request whose clock read before T, to timing that has T too
    _put(store, Schedule(T, Interval(timedelta(seconds=30))), now=T - MS, overlap="allow")

    # Then its next occurrence is after T: T is not fired again
    assert store.schedules.get(1, sid).next_at == T + timedelta(seconds=30)
    clock.now = T + timedelta(seconds=30)
    assert [at for _, at in firer.fire_due(lease).fired] == [T + timedelta(seconds=30)]
    assert len(_runs_for(store, T)) == 1


def test_the_commit_refuses_an_occurrence_it_already_settled_even_when_the_record_was_rewound(
    store: Store, firer: Firer, lease: Lease, clock: Clock, rq_queue: Queue
) -> None:
    # Given an hourly schedule that fired T
    hourly = build_schedule(starts="2026-11-23T12:00:00Z", rule=RuleSpec(Frequency.HOURLY))
    sid = _put(store, hourly, now=clock.now, overlap="allow")
    clock.now = T + MS
    assert [at for _, at in firer.fire_due(lease).fired] == [T]

    # When a writer with every other check wrong rewinds the record and its due entry to T
    key = store.keys.schedule(sid)
    store.client.hset(key, mapping={"fired_through_us": to_us(T) - 1, "next_us": to_us(T)})
    store.client.zadd(store.keys.due, {str(sid): to_us(T) // 1000})

    # Then the fire commit refuses T again, and the schedule moves on past it
    clock.now = T + 2 * MS
    assert firer.fire_due(lease).fired == []
    assert len(_runs_for(store, T)) == 1
    assert rq_queue.count == 1
    assert store.schedules.get(1, sid).next_at == T + timedelta(hours=1)
    clock.now = T + timedelta(hours=1)
    assert [at for _, at in firer.fire_due(lease).fired] == [T + timedelta(hours=1)]


def test_a_second_commit_of_the_same_advance_is_refused(
    store: Store, firer: Firer, lease: Lease, clock: Clock, rq_queue: Queue
) -> None:
    # Given the plan of T for a one-shot, committed once
    sid = _put(store, Schedule(T, Once()), now=clock.now)
    clock.now = T + MS
    assert len(firer.fire_due(lease).fired) == 1
    (run,) = _runs_for(store, T)
    fired = store.schedules.get(1, sid)

    # When the same occurrence is committed again by a plan whose version and next match
    # (as if the stored record had been put back by a buggy writer)
    store.client.hset(
        store.keys.schedule(sid), mapping={"next_us": to_us(T), "fired_through_us": to_us(T) - 1}
    )
    rewound = store.schedules.get(1, sid)
    again = RunRecord(
        id=store.runs.new_id(),
        stack=1,
        load_test_id=1,
        project_id=7,
        created=clock.now,
        schedule_id=sid,
        scheduled_for=T,
        job_id=f"again-{sid}",
    )
    shape = JobShape(rq_queue, prefix=store.keys.prefix)
    job = shape.job(run_id=again.id, job_id=f"again-{sid}")
    entry = store.fires.encode(
        Advance(replace(rewound, next_at=T), T, None, ((again, job),)), ahead=False
    )
    outcome = store.fires.commit(lease, [entry], shape.template())

    # Then it is refused, and nothing of it was written
    assert outcome.repeats == frozenset({sid})
    assert [r.id for r in _runs_for(store, T)] == [run.id]
    assert not store.client.exists(Job.key_for(f"again-{sid}"))
    assert fired.fired_through == T


def test_a_fire_encoded_ahead_is_refused_for_an_occurrence_already_settled(
    store: Store, ahead: Firer, firer: Firer, lease: Lease, clock: Clock, rq_queue: Queue
) -> None:
    # Given a one-shot at T fired by the ordinary path, then rewound by a buggy writer
    sid = _put(store, Schedule(T, Once()), now=clock.now, overlap="allow")
    clock.now = T + MS
    assert len(firer.fire_due(lease).fired) == 1
    store.client.hset(
        store.keys.schedule(sid), mapping={"next_us": to_us(T), "fired_through_us": to_us(T) - 1}
    )
    store.client.zadd(store.keys.due, {str(sid): to_us(T) // 1000})

    # When a leader encodes T ahead again and commits it at the instant
    clock.now = T - timedelta(seconds=5)
    while ahead.prepare():
        pass
    assert ahead.ahead == 1
    clock.now = T
    result = ahead.fire_ahead(lease)

    # Then the commit refuses it
    assert result is not None
    assert result.fired == []
    assert len(_runs_for(store, T)) == 1
    assert rq_queue.count == 1


@pytest.mark.parametrize(
    "now_offset", [-timedelta(seconds=5), -MS, timedelta(0), MS, timedelta(seconds=5)]
)
def test_retiming_never_moves_the_high_water_mark_back(
    store: Store, firer: Firer, lease: Lease, clock: Clock, now_offset: timedelta
) -> None:
    # Whoever re-times (an overwrite, a Kragle template or a report): never below what fired
    sid = _put(store, Schedule(T, Interval(timedelta(minutes=1))), now=clock.now)
    clock.now = T + MS
    firer.fire_due(lease)
    fired = store.schedules.get(1, sid)

    moved = retimed(fired, Schedule(T, Interval(timedelta(seconds=7))), now=T + now_offset)

    assert moved.fired_through >= fired.fired_through
    assert moved.next_at is not None
    assert moved.next_at > T
