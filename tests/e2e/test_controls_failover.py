"""Operator controls across a leader's death (issue 16): four real scheduler processes, and
the leader killed (-9) just before a pause's resume_at, just before a skip window opens and
just before a defer window closes. Nothing is lost, nothing repeated: the resume happens once,
no run starts inside a window, and every occurrence is accounted for in the ledger."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from tickwork.core.windows import Window, WindowPolicy
from tickwork.scheduler.loop import LEASE_NAME
from tickwork.store import Store
from tickwork.store.ledger import FIRED, SKIPPED
from tickwork.store.windows import WindowRecord

from .processes import Processes, every_second, running, scheduler_env

pytestmark = pytest.mark.slow

LEASE_TTL_S = 2.0
SCHEDULES = 4
RESUME_S, SKIP_FROM_S, SKIP_TO_S, DEFER_FROM_S, DEFER_TO_S, END_S = 6, 11, 15, 18, 22, 28


@pytest.fixture
def env(redis_url: str) -> dict[str, str]:
    return scheduler_env(redis_url, lease_ttl_s=LEASE_TTL_S)


@pytest.fixture
def processes(env: dict[str, str], tmp_path: Path) -> Iterator[Processes]:
    with running(env, tmp_path) as procs:
        yield procs


def test_resume_and_window_boundaries_hold_when_the_leader_dies_at_them(
    redis_client: redis.Redis, env: dict[str, str], processes: Processes
) -> None:
    store = Store(redis_client, env["TICKWORK_KEY_PREFIX"])
    for i in range(4):  # one more than the leaders killed
        processes.wait_healthy(processes.scheduler(f"scheduler-{i}"))

    # Four schedules every second; #1 paused until RESUME_S; the stack skips SKIP_FROM_S to
    # SKIP_TO_S; #2 defers DEFER_FROM_S to DEFER_TO_S.
    start = every_second(store, SCHEDULES, lead_s=4)

    def instant(offset_s: float) -> datetime:
        return start + timedelta(seconds=offset_s)

    now = datetime.now(UTC)
    store.schedules.deactivate(1, 1, now=now, note="freeze", resume_at=instant(RESUME_S))
    skip = Window(0, WindowPolicy.SKIP, starts_at=instant(SKIP_FROM_S), ends_at=instant(SKIP_TO_S))
    skip_id = store.windows.add(
        WindowRecord(skip, stack=1, schedule_id=None, note="", created=now, created_by=None)
    ).id
    defer = Window(
        0, WindowPolicy.DEFER, starts_at=instant(DEFER_FROM_S), ends_at=instant(DEFER_TO_S)
    )
    defer_id = (
        store.schedules.add_window(
            1, 2, WindowRecord(defer, stack=1, schedule_id=2, note="", created=now, created_by=None)
        )
        .windows[-1]
        .id
    )

    lease_key = store.keys.lease(LEASE_NAME)

    def kill_leader_at(offset_s: float) -> None:
        delay = (instant(offset_s) - datetime.now(UTC)).total_seconds()
        if delay > 0:
            time.sleep(delay)
        held = redis_client.get(lease_key)
        processes.leader().signal(signal.SIGKILL)
        deadline = time.monotonic() + 30
        while (now_held := redis_client.get(lease_key)) is None or now_held == held:
            assert time.monotonic() < deadline, "no new leader within 30 s"
            time.sleep(0.01)

    for boundary in (RESUME_S, SKIP_FROM_S, DEFER_TO_S):
        kill_leader_at(boundary - 0.3)

    time.sleep(max(0.0, (instant(END_S + 2) - datetime.now(UTC)).total_seconds()))
    records = {sid: store.schedules.get(1, sid) for sid in range(1, SCHEDULES + 1)}
    for sid in records:  # an Interval never ends: stop it (a pause keeps its ledger)
        store.schedules.deactivate(1, sid, now=datetime.now(UTC), note="done")
    instants = [instant(s) for s in range(END_S)]

    # Exactly once: no occurrence has two runs, no job is queued twice
    runs, _ = store.runs.page(1, skip=0, top=100_000)
    per_occurrence = Counter((r.schedule_id, r.scheduled_for) for r in runs)
    assert [key for key, n in per_occurrence.items() if n > 1] == []
    jobs = [r.job_id for r in runs if r.status != "skipped"]
    assert len(jobs) == len(set(jobs))

    # The resume happened once, by the scheduler
    trail, _ = store.audit.of("schedule", 1, skip=0, top=50)
    assert [e.who for e in trail if e.action == "resumed"] == ["scheduler"]

    # No run started inside a window or a pause; every occurrence is accounted for
    for sid, record in records.items():
        happened = store.ledger.happened(record, instants)
        for at, what in zip(instants, happened, strict=True):
            assert what is not None, (sid, at)
            assert what.outcome in (FIRED, SKIPPED), (sid, (at - start).total_seconds(), what)
            if sid == 1 and at < instant(RESUME_S):
                assert (what.outcome, what.reason) == (SKIPPED, "paused"), (sid, at, what)
            if instant(SKIP_FROM_S) <= at < instant(SKIP_TO_S):
                assert (what.outcome, what.reason, what.window_id) == (SKIPPED, "blackout", skip_id)
            if sid == 2 and instant(DEFER_FROM_S) <= at < instant(DEFER_TO_S):
                assert (what.outcome, what.reason, what.window_id) == (
                    SKIPPED,
                    "deferred",
                    defer_id,
                )
    fired_at = [r.created for r in runs if r.status != "skipped"]
    assert not [t for t in fired_at if instant(SKIP_FROM_S) <= t < instant(SKIP_TO_S)]
    deferred_schedule = [r.created for r in runs if r.schedule_id == 2 and r.status != "skipped"]
    assert not [t for t in deferred_schedule if instant(DEFER_FROM_S) <= t < instant(DEFER_TO_S)]
