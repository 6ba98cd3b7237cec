"""Network faults between the leader and Redis: real schedulers, one of them behind a TCP proxy.

The leader's connections to Redis pass through ``tcp_proxy.TcpProxy``; the other schedulers
talk to Redis directly, so a fault on the proxy cuts off the leader alone, as a partition
would. Five schedules fire every second (or 500 one-shots at one instant). Whatever the
fault, no (schedule, occurrence) gets two runs, every occurrence up to a moment after the
fault is accounted for (fired, or recorded skipped by the catch-up policy), the RQ queue
holds one job per fired run, and no fire commit under a superseded lease term is accepted
once Redis has granted a later term (the proxy records what Redis answered to each).

Each test prints a ``fault figures:`` line (``pytest -s``) for the README's failover section.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from tickwork.embedded import EmbeddedServer
from tickwork.store import Store

from .faults import (
    COMMIT_SHA,
    LEASE_TTL_S,
    PREFIX,
    LeaseWatch,
    events,
    every_second_through,
    fault_env,
    lease_key,
    one_shots,
    private_redis,
    role_of,
    rq_job_ids,
    scheduler_via,
    sleep_until,
    superseded_commits,
    tally,
    wait_for,
    wait_settled,
)
from .processes import Process, Processes, every_second
from .tcp_proxy import Action, Mode, TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

SCHEDULES = 5
SCHEDULE_IDS = range(1, SCHEDULES + 1)
SETTLE_TIMEOUT_S = 30.0
SOCKET_TIMEOUT_S = 5.0  # tickwork.store.connection.connect: how long a silent reply is awaited
BURST = 500


@dataclass
class Rig:
    server: EmbeddedServer
    client: redis.Redis
    store: Store
    proxy: TcpProxy
    processes: Processes
    watch: LeaseWatch

    def leader_behind_proxy(self, standbys: int, **env: str) -> tuple[Process, int]:
        """A scheduler behind the proxy that leads, and ``standbys`` talking to Redis
        directly; the leader and its term."""
        self.processes.env.update(env)
        proxied = scheduler_via(self.processes, "proxied", self.proxy.url)
        self.processes.wait_healthy(proxied)
        wait_for(lambda: role_of(proxied)[0] == "leader", 15, "the proxied scheduler to lead")
        standby = [self.processes.scheduler(f"direct-{i}") for i in range(standbys)]
        for process in standby:
            self.processes.wait_healthy(process)
        term = role_of(proxied)[1]
        assert term is not None
        return proxied, term

    def lease_lost(self, process: Process, term: int) -> bool:
        return any(
            e.get("event") == "lease_lost" and e.get("term") == term for e in events(process)
        )

    def verdict(self, expected: dict[int, set[datetime]]) -> str:
        """Stop every process and judge what was committed; the figures as one line."""
        self.processes.stop_all()
        result = tally(self.store, expected)
        assert self.proxy.errors == []  # the proxy followed every command and reply
        assert superseded_commits(self.proxy.commits(), self.watch.terms) == []
        assert result.duplicates == []
        assert result.unaccounted == []
        jobs = rq_job_ids(self.client)
        assert len(jobs) == len(set(jobs)) == result.fired
        return result.line()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with private_redis(tmp_path / "redis") as server:
        client = redis.Redis.from_url(server.url)
        store = Store(client, PREFIX)
        proxy = TcpProxy(("127.0.0.1", server.port), commit_sha=COMMIT_SHA).start()
        processes = Processes(fault_env(server.url), tmp_path)
        try:
            with LeaseWatch(server.url, lease_key(store)) as watch:
                yield Rig(server, client, store, proxy, processes, watch)
        finally:
            processes.stop_all()
            proxy.stop()
            client.close()


def test_a_leader_cut_off_past_its_lease_is_replaced_and_its_held_commit_is_refused(
    rig: Rig,
) -> None:
    # Given: the leader behind the proxy, two standbys, five schedules firing every second.
    old, old_term = rig.leader_behind_proxy(standbys=2)
    start = every_second(rig.store, SCHEDULES, lead_s=2)
    sleep_until(start + timedelta(seconds=3))

    # When: the partition starts with a fire commit on its way (held, not lost) and lasts
    # twice the lease TTL, and at least until another scheduler leads.
    held = rig.proxy.arm(Action.BLACKHOLE)
    assert held.done.wait(5), "the leader sent no fire commit for 5 s"
    cut = time.monotonic()
    new_term, taken = rig.watch.wait_above(old_term, timeout_s=20)
    time.sleep(max(0.0, cut + 2 * LEASE_TTL_S - time.monotonic()))
    rig.proxy.set_mode(Mode.PASS)
    healed = datetime.now(UTC)

    # Then: the commit reaches Redis only now, under a term no longer the lease's: refused.
    commit = held.commit
    assert commit is not None
    wait_for(lambda: commit.reply is not None, 10, "Redis's answer to the held commit")
    assert (commit.term, commit.reply) == (old_term, b":-1")
    wait_for(lambda: rig.lease_lost(old, old_term), 15, "the old leader to log lease_lost")
    wait_settled(rig.store, SCHEDULE_IDS, healed + timedelta(seconds=3), SETTLE_TIMEOUT_S)
    assert old.alive
    figures = rig.verdict(every_second_through(start, healed, SCHEDULE_IDS))
    print(
        f"\nfault figures: blackhole {2 * LEASE_TTL_S:.0f} s: term {old_term} -> {new_term} "
        f"{taken - cut:.2f} s after the cut; held commit refused; {figures}"
    )


def test_a_leader_whose_connections_are_reset_for_twice_its_lease_is_replaced_without_duplicates(
    rig: Rig,
) -> None:
    old, old_term = rig.leader_behind_proxy(standbys=2)
    start = every_second(rig.store, SCHEDULES, lead_s=2)
    sleep_until(start + timedelta(seconds=3))

    # Every connection of the leader is reset, and each new one as soon as it is made.
    rig.proxy.set_mode(Mode.RESET)
    cut = time.monotonic()
    new_term, taken = rig.watch.wait_above(old_term, timeout_s=20)
    time.sleep(max(0.0, cut + 2 * LEASE_TTL_S - time.monotonic()))
    rig.proxy.set_mode(Mode.PASS)
    healed = datetime.now(UTC)

    wait_for(lambda: rig.lease_lost(old, old_term), 15, "the old leader to log lease_lost")
    wait_settled(rig.store, SCHEDULE_IDS, healed + timedelta(seconds=3), SETTLE_TIMEOUT_S)
    assert old.alive
    figures = rig.verdict(every_second_through(start, healed, SCHEDULE_IDS))
    print(
        f"\nfault figures: reset {2 * LEASE_TTL_S:.0f} s: term {old_term} -> {new_term} "
        f"{taken - cut:.2f} s after the first reset; {figures}"
    )


@pytest.mark.parametrize(
    ("action", "standbys"),
    [
        # Alone, the leader that does not know whether its commit happened goes on itself.
        pytest.param(Action.DROP_REPLY_RESET, 0, id="then_reset_and_the_same_leader_goes_on"),
        # It waits out its socket timeout (5 s) past its lease: a standby takes over.
        pytest.param(Action.DROP_REPLY, 1, id="then_silence_and_a_standby_takes_over"),
    ],
)
def test_a_fire_commit_whose_reply_is_lost_is_never_fired_again(
    rig: Rig, action: Action, standbys: int
) -> None:
    old, old_term = rig.leader_behind_proxy(standbys=standbys)
    start = every_second(rig.store, SCHEDULES, lead_s=2)
    sleep_until(start + timedelta(seconds=3))

    # The commit reaches Redis and commits; its answer never reaches the leader.
    lost = rig.proxy.arm(action)
    assert lost.done.wait(5), "the leader sent no fire commit for 5 s"
    lost_at, lost_mono = datetime.now(UTC), time.monotonic()
    commit = lost.commit
    assert commit is not None
    assert commit.committed, f"Redis answered {commit.reply!r}: it did not commit"

    silence = SOCKET_TIMEOUT_S if action is Action.DROP_REPLY else 0.0
    through = lost_at + timedelta(seconds=3 + silence)
    wait_settled(rig.store, SCHEDULE_IDS, through, SETTLE_TIMEOUT_S)
    assert old.alive
    if not standbys:
        assert role_of(old)[0] == "leader"
    # Alone, it may go on under a new term (it released the lease) or its own.
    later = [f"{t} {seen - lost_mono:.2f} s" for t, seen in rig.watch.terms if t > old_term]
    logs = [e for p in rig.processes.started for e in events(p)]
    figures = rig.verdict(every_second_through(start, through, SCHEDULE_IDS))
    repeats = sum(e.get("event") == "fire_repeat_refused" for e in logs)
    print(
        f"\nfault figures: lost commit reply ({action.value}, {standbys} standby): term "
        f"{old_term}, then {later or 'the same'} after the lost reply; "
        f"repeats refused by the commit {repeats}; {figures}"
    )


def test_the_lease_expiring_under_the_leader_mid_burst_fires_each_of_500_one_shots_once(
    rig: Rig,
) -> None:
    # Given: 500 one-shot schedules due at one instant, committed 50 to a batch.
    old, old_term = rig.leader_behind_proxy(standbys=1, TICKWORK_FIRE_BATCH_SIZE="50")
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=8)
    one_shots(rig.store, BURST, at)
    key = lease_key(rig.store)
    expirer = redis.Redis.from_url(rig.server.url)
    expired_at: list[float] = []

    def expire_lease() -> None:
        value = expirer.get(key)
        expirer.pexpire(key, 1)
        # Gone, or already another term's: a standby may take it at once.
        wait_for(lambda: expirer.get(key) != value, 2, "the lease key to expire")
        expired_at.append(time.monotonic())

    # When: the lease expires after the burst's second batch, before its third reaches Redis.
    expired = rig.proxy.arm(expire_lease, after=2)
    timeout = (at - datetime.now(UTC)).total_seconds() + 10
    assert expired.done.wait(timeout), "the burst never reached its third batch"
    runs_index = rig.store.keys.stack_index(1, "runs")
    took = wait_for(lambda: rig.client.zcard(runs_index) >= BURST, 30, "a run per one-shot")
    expirer.close()

    # Then: the third batch was refused, and every one-shot has exactly one run.
    commit = expired.commit
    assert commit is not None
    wait_for(lambda: commit.reply is not None, 10, "Redis's answer to the third batch")
    assert (commit.term, commit.reply) == (old_term, b":-1")
    assert old.alive
    new_term, taken = rig.watch.wait_above(old_term, timeout_s=1)
    before = sum(c.term == old_term and c.committed for c in rig.proxy.commits())
    figures = rig.verdict({sid: {at} for sid in range(1, BURST + 1)})
    runs, _ = rig.store.runs.page(1, skip=0, top=BURST + 1)
    span = max((r.created - at).total_seconds() for r in runs)
    print(
        f"\nfault figures: lease expired mid-burst of {BURST}: batches committed under term "
        f"{old_term} before it {before}; term {new_term} {taken - expired_at[0]:.2f} s after "
        f"the expiry; last run created {span:.2f} s after the instant (all {took:.1f} s after "
        f"the expiry); {figures}"
    )
