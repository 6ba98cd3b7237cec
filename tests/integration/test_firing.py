"""The fire path against a real Redis: exactly once, fenced by the lease, policies applied."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from tickwork.core import Frequency, Interval, Once, RuleSpec, Schedule, build_schedule
from tickwork.core.instants import to_us
from tickwork.embedded import EmbeddedServer
from tickwork.errors import LeaseLost
from tickwork.scheduler.firing import Firer
from tickwork.store import Lease, RunRecord, Store
from tickwork.store.queue import fire_job_id, queue

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
    return lease_of(store)


def lease_of(store: Store) -> Lease:
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
    clock.hook = lambda: setattr(
        clock, "hook", lambda: store.schedules.delete(1, sid, now=clock.now)
    )
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
    store.schedules.deactivate(1, sid, now=clock.now)
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


def _lead(firer: Firer, lease: Lease) -> list[datetime]:
    """One wake-up of the leader's loop: fire all that is due, then work ahead."""
    fired: list[datetime] = []
    while True:
        result = firer.fire_ahead(lease) or firer.fire_due(lease)
        fired += [occurrence for _, occurrence in result.fired]
        if not result.full:
            break
    while firer.prepare():
        pass
    return fired


def _fire_through(firer: Firer, lease: Lease, clock: Clock, until: datetime) -> list[datetime]:
    """Step the clock one minute at a time, firing as a leader would; the occurrences fired."""
    fired: list[datetime] = []
    while clock.now < until:
        clock.now += timedelta(minutes=1)
        fired += _lead(firer, lease)
    return fired


@pytest.fixture(params=["ordinary", "ahead"])
def leader_firer(
    request: pytest.FixtureRequest, store: Store, rq_queue: Queue, clock: Clock
) -> Firer:
    """A firer as the daemon runs it: without and with the look-ahead."""
    lookahead = timedelta(minutes=10) if request.param == "ahead" else timedelta(0)
    return Firer(store, rq_queue, clock=clock, catch_up=timedelta(minutes=5), lookahead=lookahead)


def test_fixed_time_cron_fires_once_on_a_fall_back_day(
    store: Store, leader_firer: Firer, lease: Lease, clock: Clock
) -> None:
    from tickwork.core import CronSpec

    clock.now = datetime(2026, 10, 31, 12, tzinfo=UTC)
    schedule = build_schedule(
        starts="2026-10-01T00:00:00Z", cron=CronSpec("30 1 * * *", "America/New_York")
    )
    _put(store, 1, schedule, now=clock.now, overlap="allow")
    fired = _fire_through(leader_firer, lease, clock, datetime(2026, 11, 2, 12, tzinfo=UTC))
    assert fired == [
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
        datetime(2026, 11, 2, 6, 30, tzinfo=UTC),
    ]


def test_fixed_time_cron_in_the_spring_gap_fires_once_after_it(
    store: Store, leader_firer: Firer, lease: Lease, clock: Clock
) -> None:
    from tickwork.core import CronSpec

    clock.now = datetime(2026, 3, 7, 12, tzinfo=UTC)
    schedule = build_schedule(
        starts="2026-01-01T00:00:00Z", cron=CronSpec("30 2 * * *", "America/New_York")
    )
    _put(store, 1, schedule, now=clock.now, overlap="allow")
    fired = _fire_through(leader_firer, lease, clock, datetime(2026, 3, 8, 12, tzinfo=UTC))
    assert fired == [datetime(2026, 3, 8, 7, 0, tzinfo=UTC)]


def test_until_is_inclusive_and_ends_the_schedule(
    store: Store, leader_firer: Firer, lease: Lease, clock: Clock
) -> None:
    schedule = build_schedule(
        starts="2026-11-23T12:00:00Z",
        rule=RuleSpec(Frequency.HOURLY, until="2026-11-23T14:00:00Z"),
    )
    sid = _put(store, 1, schedule, overlap="allow")
    fired = _fire_through(leader_firer, lease, clock, T0 + timedelta(hours=5))
    assert fired == [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    assert store.schedules.get(1, sid).next_at is None
    assert store.client.zscore(store.keys.due, str(sid)) is None


# Fires encoded ahead of their instant (the look-ahead): the same outcomes as the ordinary path.


@pytest.fixture
def ahead(store: Store, rq_queue: Queue, clock: Clock) -> Firer:
    return Firer(
        store,
        rq_queue,
        clock=clock,
        catch_up=timedelta(minutes=5),
        lookahead=timedelta(seconds=10),
    )


def _prepare_all(firer: Firer) -> int:
    while firer.prepare():
        pass
    return firer.ahead


def test_a_fire_encoded_ahead_writes_what_the_ordinary_path_writes(
    redis_client: redis.Redis, store: Store, ahead: Firer, lease: Lease, clock: Clock
) -> None:
    at = T0 + timedelta(seconds=5)
    sid = _put(store, 1, Schedule(at, Interval(timedelta(hours=1))))
    assert _prepare_all(ahead) == 1
    assert _runs(store) == []  # nothing written ahead

    clock.now = at + timedelta(milliseconds=7)
    result = ahead.fire_ahead(lease)
    assert result is not None
    assert [occurrence for _, occurrence in result.fired] == [at]
    assert result.lags_s == [0.007]
    assert ahead.fire_due(lease).fired == []  # and the ordinary path finds nothing left
    (fired,) = _runs(store)
    record = store.schedules.get(1, sid)
    assert (record.next_at, record.fired_through) == (at + timedelta(hours=1), at)

    # The same occurrence through the ordinary path, on a second store, field by field.
    other = Store(redis_client, f"{store.keys.prefix}o")
    other_queue = queue(redis_client, f"{other.keys.prefix}-runs")
    _load_test(other, 1)
    other.client.incr(other.keys.ids("schedule"), sid + 100)  # another job id
    _put(other, 1, Schedule(at, Interval(timedelta(hours=1))))
    plain = Firer(other, other_queue, clock=clock, catch_up=timedelta(minutes=5))
    other.client.incr(other.keys.ids("run"), fired.id - 1)
    (_,) = plain.fire_due(lease_of(other)).fired
    (expected,) = _runs(other)
    assert fired == replace(expected, job_id=fired.job_id, schedule_id=sid)
    assert fired.created == clock.now
    for a_store, run in ((store, fired), (other, expected)):  # runs list by creation
        for index in (a_store.keys.stack_index(1, "runs"), a_store.keys.load_test_runs(1)):
            assert redis_client.zscore(index, str(run.id)) == to_us(clock.now)
        # Every value within 64 bytes, so Redis keeps the hash compact (~680 bytes less).
        assert redis_client.object("encoding", a_store.keys.run(run.id)) == b"listpack"
    ours = redis_client.hgetall(Job.key_for(str(fired.job_id)))
    theirs = redis_client.hgetall(Job.key_for(str(expected.job_id)))
    assert set(ours) == set(theirs)
    per_queue = {b"origin", b"data", b"created_at", b"enqueued_at"}  # RQ's clock, prefix
    assert {k: v for k, v in ours.items() if k not in per_queue} == {
        k: v for k, v in theirs.items() if k not in per_queue
    }
    job = Job.fetch(str(fired.job_id), connection=redis_client, serializer=JSONSerializer)
    assert job.kwargs == {"run_id": fired.id, "prefix": store.keys.prefix}
    redis_client.delete(other_queue.key)


def test_nothing_beyond_the_look_ahead_window_is_encoded(
    store: Store, ahead: Firer, clock: Clock
) -> None:
    _put(store, 1, Schedule(T0 + timedelta(seconds=11), Once()))
    assert _prepare_all(ahead) == 0
    clock.now += timedelta(seconds=2)
    assert _prepare_all(ahead) == 1


def test_no_look_ahead_encodes_nothing(store: Store, firer: Firer) -> None:
    _put(store, 1, Schedule(T0 + timedelta(seconds=1), Once()))
    assert _prepare_all(firer) == 0


@pytest.mark.parametrize("change", ["overwrite", "delete", "deactivate"])
def test_a_schedule_changed_after_it_was_encoded_ahead_fires_only_as_it_now_is(
    store: Store, ahead: Firer, lease: Lease, clock: Clock, rq_queue: Queue, change: str
) -> None:
    at = T0 + timedelta(seconds=5)
    sid = _put(store, 1, Schedule(at, Once()))
    assert _prepare_all(ahead) == 1
    if change == "overwrite":
        _put(store, 1, Schedule(at, Interval(timedelta(minutes=1))))
    elif change == "delete":
        store.schedules.delete(1, sid, now=clock.now)
    else:
        store.schedules.deactivate(1, sid, now=clock.now)
    clock.now = at
    fired = _lead(ahead, lease)
    if change == "overwrite":
        assert fired == [at]
        (run,) = _runs(store)
        assert store.schedules.get(1, sid).next_at == at + timedelta(minutes=1)  # new version
        assert rq_queue.job_ids == [run.job_id]
    else:
        assert fired == []
        assert _runs(store) == []
        assert rq_queue.count == 0


def test_overlap_is_checked_at_commit_not_when_encoded(
    store: Store, ahead: Firer, lease: Lease, clock: Clock
) -> None:
    """A run of the load test started after the fire was encoded: the occurrence is skipped
    as overlapping, recorded by the ordinary path."""
    at = T0 + timedelta(seconds=5)
    _put(store, 1, Schedule(at, Once()))
    assert _prepare_all(ahead) == 1
    store.client.set(store.keys.load_test_last_run(1), 999)
    store.client.hset(store.keys.run(999), "status", "running")
    clock.now = at
    result = ahead.fire_ahead(lease)
    assert result is not None
    assert (result.fired, result.conflicts) == ([], 0)
    result = ahead.fire_due(lease)
    assert (result.fired, result.skipped) == ([], {"overlap": 1})


def test_overlap_allow_fires_ahead_while_a_run_is_going(
    store: Store, ahead: Firer, lease: Lease, clock: Clock
) -> None:
    at = T0 + timedelta(seconds=5)
    _put(store, 1, Schedule(at, Once()), overlap="allow")
    assert _prepare_all(ahead) == 1
    store.client.set(store.keys.load_test_last_run(1), 999)
    store.client.hset(store.keys.run(999), "status", "running")
    clock.now = at
    result = ahead.fire_ahead(lease)
    assert result is not None
    assert [occurrence for _, occurrence in result.fired] == [at]


def test_a_plan_made_ahead_is_dropped_once_the_next_occurrence_is_due(
    store: Store, ahead: Firer, lease: Lease, clock: Clock
) -> None:
    """The leader was held up past the following occurrence: what was missed is settled by
    the ordinary path (one skipped, the latest fired), not by the stale plan."""
    at = T0 + timedelta(seconds=5)
    _put(store, 1, Schedule(at, Interval(timedelta(seconds=1))), overlap="allow")
    assert _prepare_all(ahead) == 1
    clock.now = at + timedelta(seconds=1, milliseconds=500)
    assert _lead(ahead, lease) == [at + timedelta(seconds=1)]
    statuses = sorted((r.scheduled_for, r.status) for r in _runs(store))
    assert statuses == [(at, "skipped"), (at + timedelta(seconds=1), "created")]


def test_a_leader_that_lost_its_lease_commits_nothing_encoded_ahead(
    store: Store, ahead: Firer, lease: Lease, clock: Clock, rq_queue: Queue
) -> None:
    at = T0 + timedelta(seconds=5)
    _put(store, 1, Schedule(at, Once()))
    assert _prepare_all(ahead) == 1
    store.client.delete(store.keys.lease("scheduler"))
    assert store.leases.acquire("scheduler", "rival", TTL_MS) is not None
    clock.now = at
    with pytest.raises(LeaseLost):
        ahead.fire_ahead(lease)
    assert _runs(store) == []
    assert rq_queue.count == 0


def test_many_simultaneous_occurrences_fire_once_each_from_ahead(
    store: Store, rq_queue: Queue, lease: Lease, clock: Clock
) -> None:
    firer = Firer(
        store,
        rq_queue,
        clock=clock,
        catch_up=timedelta(minutes=5),
        batch_size=100,
        lookahead=timedelta(seconds=10),
    )
    at = T0 + timedelta(seconds=5)
    for load_test_id in range(1, 601):
        _put(store, load_test_id, Schedule(at, Once()))
    assert _prepare_all(firer) == 600
    clock.now = at
    fired = _lead(firer, lease)
    assert len(fired) == 600
    assert rq_queue.count == 600
    runs = _runs(store)
    assert len({r.schedule_id for r in runs}) == len(runs) == 600
    assert store.client.zcard(store.keys.due) == 0


def test_work_ahead_is_forgotten_when_discarded(store: Store, ahead: Firer, clock: Clock) -> None:
    _put(store, 1, Schedule(T0 + timedelta(seconds=5), Once()))
    assert _prepare_all(ahead) == 1
    ahead.discard_ahead()
    assert ahead.ahead == 0
    clock.now = T0 + timedelta(seconds=5)
    assert ahead.fire_ahead(lease_of(store)) is None


def test_a_fire_encoded_ahead_never_commits_before_its_instant_even_within_its_millisecond(
    store: Store, ahead: Firer, lease: Lease, clock: Clock
) -> None:
    at = T0 + timedelta(seconds=5, microseconds=660)
    _put(store, 1, Schedule(at, Once()))
    assert _prepare_all(ahead) == 1
    clock.now = T0 + timedelta(seconds=5, microseconds=443)
    assert ahead.fire_ahead(lease) is None
    assert _lead(ahead, lease) == []
    clock.now = at
    assert _lead(ahead, lease) == [at]


def test_fires_encoded_ahead_for_different_instants_share_a_batch_once_all_are_due(
    store: Store, ahead: Firer, lease: Lease, clock: Clock
) -> None:
    instants = [T0 + timedelta(seconds=5, milliseconds=ms) for ms in range(1, 6)]
    for load_test_id, at in enumerate(instants, start=1):
        _put(store, load_test_id, Schedule(at, Once()))
    assert _prepare_all(ahead) == 5
    clock.now = instants[2]
    result = ahead.fire_ahead(lease)
    assert result is not None
    assert sorted(occurrence for _, occurrence in result.fired) == instants[:3]
    clock.now = instants[-1] + timedelta(milliseconds=5)
    result = ahead.fire_ahead(lease)
    assert result is not None
    assert sorted(occurrence for _, occurrence in result.fired) == instants[3:]
    assert ahead.fire_ahead(lease) is None
    assert ahead.ahead == 0


def test_fires_encoded_ahead_commit_after_redis_forgot_the_script(
    tmp_path: Path, clock: Clock
) -> None:
    """A Redis restarted between encoding and the instant has an empty script cache (a
    private server: the shared one's cache is not ours to flush)."""
    server = EmbeddedServer(tmp_path / "redis").start()
    try:
        client = redis.Redis.from_url(server.url)
        store = Store(client, "ns")
        rq_queue = queue(client, "ns-runs")
        firer = Firer(
            store,
            rq_queue,
            clock=clock,
            catch_up=timedelta(minutes=5),
            lookahead=timedelta(seconds=10),
        )
        at = T0 + timedelta(seconds=5)
        _put(store, 1, Schedule(at, Once()))
        assert _prepare_all(firer) == 1
        client.script_flush()
        clock.now = at
        result = firer.fire_ahead(lease_of(store))
        assert result is not None
        assert [occurrence for _, occurrence in result.fired] == [at]
        assert rq_queue.count == 1
    finally:
        server.stop()


def test_a_fire_held_ahead_is_left_to_the_look_ahead_when_its_instant_comes_between_reads(
    store: Store, ahead: Firer, lease: Lease, clock: Clock
) -> None:
    # Given a fire encoded ahead, and the instant arriving just after fire_ahead read the
    # clock (so the ordinary path runs first and sees it due)
    at = T0 + timedelta(seconds=5)
    _put(store, 1, Schedule(at, Once()))
    assert _prepare_all(ahead) == 1
    clock.now = at

    # Then the ordinary path leaves it, and the look-ahead commits it without a conflict
    assert ahead.fire_due(lease).fired == []
    result = ahead.fire_ahead(lease)
    assert result is not None
    assert [occurrence for _, occurrence in result.fired] == [at]
    assert result.conflicts == 0
    assert len(_runs(store)) == 1


def test_a_fire_held_ahead_is_left_to_it_from_the_first_millisecond_of_its_instant(
    store: Store, rq_queue: Queue, lease: Lease
) -> None:
    # Given a fire encoded ahead for an instant with microseconds, and an ordinary path whose
    # first clock read falls in the instant's millisecond but before it (the due index, in
    # milliseconds, lists it) and whose second read, when it plans, falls after it
    at = T0 + timedelta(seconds=5, microseconds=660)
    reads: list[datetime] = []

    def clock() -> datetime:
        return reads.pop(0) if reads else (at + timedelta(microseconds=1) if armed else T0)

    armed = False
    firer = Firer(
        store, rq_queue, clock=clock, catch_up=timedelta(minutes=5), lookahead=timedelta(seconds=10)
    )
    _put(store, 1, Schedule(at, Once()))
    assert _prepare_all(firer) == 1
    armed = True
    reads.append(T0 + timedelta(seconds=5, microseconds=220))

    # Then the ordinary path leaves it (it fired it, and the look-ahead's commit conflicted)
    assert firer.fire_due(lease).fired == []
    result = firer.fire_ahead(lease)
    assert result is not None
    assert [occurrence for _, occurrence in result.fired] == [at]
    assert result.conflicts == 0
    assert len(_runs(store)) == 1


def test_a_schedule_moved_earlier_than_its_fire_held_ahead_fires_at_its_new_instant(
    store: Store, ahead: Firer, lease: Lease, clock: Clock
) -> None:
    later = T0 + timedelta(seconds=9)
    _put(store, 1, Schedule(later, Once()))
    assert _prepare_all(ahead) == 1
    earlier = T0 + timedelta(seconds=2)
    _put(store, 1, Schedule(earlier, Once()))
    clock.now = earlier

    assert [occurrence for _, occurrence in ahead.fire_due(lease).fired] == [earlier]
