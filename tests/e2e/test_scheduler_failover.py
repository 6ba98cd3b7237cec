"""Three real scheduler processes; the leader is killed, paused past its lease, and stopped.

Every schedule has an occurrence every second for a minute. Whatever happens to the leader,
no occurrence is enqueued twice, and every occurrence is accounted for: fired, or recorded
as skipped by the catch-up policy.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from tickwork.store import Store
from tickwork.worker.queue import queue

from .processes import Processes, every_second

pytestmark = pytest.mark.slow

LEASE_TTL_S = 2.0
SCHEDULES = 5
DURATION_S = 60


@pytest.fixture
def env(redis_url: str) -> dict[str, str]:
    return {
        "TICKWORK_REDIS_URL": redis_url,
        "TICKWORK_KEY_PREFIX": f"e2e{uuid.uuid4().hex[:8]}",
        "TICKWORK_LEASE_TTL_SECONDS": str(LEASE_TTL_S),
        "TICKWORK_QUEUES": '["e2e-runs"]',
    }


@pytest.fixture
def processes(env: dict[str, str], tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(env, tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()


def test_failover_never_duplicates_and_accounts_for_every_occurrence(
    redis_client: redis.Redis, env: dict[str, str], processes: Processes
) -> None:
    store = Store(redis_client, env["TICKWORK_KEY_PREFIX"])
    schedulers = [processes.scheduler(f"scheduler-{i}") for i in range(3)]
    for process in schedulers:
        processes.wait_healthy(process)

    start = every_second(store, SCHEDULES, lead_s=3)

    def at(offset_s: float) -> None:
        delay = (start + timedelta(seconds=offset_s) - datetime.now(UTC)).total_seconds()
        if delay > 0:
            time.sleep(delay)

    at(10)
    first = processes.leader()
    first.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    second = processes.leader()
    kill_gap = time.monotonic() - killed_at

    at(25)
    second.signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    third = processes.leader()
    pause_gap = time.monotonic() - stopped_at
    time.sleep(LEASE_TTL_S + 1)
    second.signal(signal.SIGCONT)  # wakes up believing it leads: it must not fire

    at(45)
    leader = processes.leader()
    leader.signal(signal.SIGTERM)
    terminated_at = time.monotonic()
    successor = processes.leader()
    term_gap = time.monotonic() - terminated_at
    assert leader.popen.wait(timeout=10) == 0

    at(DURATION_S + 1)
    for schedule_id in range(1, SCHEDULES + 1):
        store.schedules.delete(1, schedule_id)  # Interval never ends: stop it to count
    time.sleep(0.5)
    del third, successor
    runs, _ = store.runs.page(1, skip=0, top=100_000)
    per_schedule: dict[int, Counter[datetime]] = {}
    for run in runs:
        assert run.scheduled_for is not None
        assert run.schedule_id is not None
        per_schedule.setdefault(run.schedule_id, Counter())[run.scheduled_for] += 1

    expected = {start + timedelta(seconds=s) for s in range(DURATION_S)}
    fired_ids = [r.job_id for r in runs if r.status != "skipped"]
    assert len(fired_ids) == len(set(fired_ids))
    assert len(per_schedule) == SCHEDULES
    lags = sorted(
        (r.created - r.scheduled_for).total_seconds()
        for r in runs
        if r.status != "skipped" and r.scheduled_for is not None
    )
    print(
        f"\nfailover gaps: kill -9 {kill_gap:.2f}s, SIGSTOP {pause_gap:.2f}s, "
        f"SIGTERM {term_gap:.2f}s; fires {len(fired_ids)}, "
        f"skipped {len(runs) - len(fired_ids)}, "
        f"lag p50 {lags[len(lags) // 2]:.3f}s max {lags[-1]:.3f}s"
    )
    for counts in per_schedule.values():
        duplicated = [when for when, n in counts.items() if n > 1]
        assert duplicated == []
        assert expected <= set(counts)  # fired or recorded as skipped: nothing silent

    rq_jobs = queue(redis_client, "e2e-runs").job_ids
    assert len(rq_jobs) == len(set(rq_jobs)) == len(fired_ids)
    assert term_gap < 1.0  # a graceful hand-over is taken at once
