"""Redis crashes (kill -9) and comes back from its AOF while a scheduler fires every second.

Held under both ``appendfsync always`` and ``everysec``:

- firing resumes after the restart: every schedule gets runs for occurrences after it;
- every occurrence from the first to a moment after the restart is accounted for (fired, or
  recorded skipped by the catch-up policy), and none is fired twice;
- what the crash lost of the run records a client saw acknowledged: nothing under ``always``
  (the AOF is written and fsynced before the reply). Under ``everysec`` the AOF write(2)
  normally precedes the reply too, so a killed process loses nothing; but while a background
  fsync is still running Redis postpones the write by up to 2 s (counted in whole seconds of
  its clock) and replies meanwhile, so the test holds a bound of 3 s of this load.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from tickwork.embedded import EmbeddedServer
from tickwork.store import RunRecord, Store

from .processes import Processes, every_second

pytestmark = pytest.mark.slow

SCHEDULES = 20  # each fires every second: 20 run records a second
EVERYSEC_LOSS_BOUND_S = 3.0
"""The most acknowledged writes ``everysec`` may lose to a killed process, in seconds: the
2 s Redis may postpone an AOF write behind a running fsync, rounded up to its clock's
whole seconds."""
RESUMED_S = 3
"""Firing must resume for occurrences this many seconds after the restart."""


def _until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


def _fsync_policy(url: str, appendfsync: str) -> None:
    """Run the server with ``appendfsync``. EmbeddedServer passes ``everysec`` whatever it is
    given (see tests/integration/test_embedded_appendfsync.py), so the policy is set here
    and read back: this test must measure the policy it names."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        client.config_set("appendfsync", appendfsync)
        config = client.config_get("appendfsync")
        assert isinstance(config, dict)
        assert config["appendfsync"] == appendfsync
    finally:
        client.close()


@pytest.mark.parametrize("appendfsync", ["always", "everysec"])
def test_after_a_redis_crash_firing_resumes_nothing_fires_twice_and_no_acknowledged_fire_is_lost(
    appendfsync: str, tmp_path: Path
) -> None:
    server = EmbeddedServer(tmp_path / "redis").start()
    prefix = f"rs{uuid.uuid4().hex[:8]}"
    processes = Processes(
        {
            "TICKWORK_REDIS_URL": server.url,
            "TICKWORK_KEY_PREFIX": prefix,
            "TICKWORK_LEASE_TTL_SECONDS": "2",
        },
        tmp_path,
    )
    client = redis.Redis.from_url(server.url)
    store = Store(client, prefix)
    try:
        _fsync_policy(server.url, appendfsync)
        processes.wait_healthy(processes.scheduler("scheduler"))
        start = every_second(store, SCHEDULES, lead_s=2)
        runs_index = store.keys.stack_index(1, "runs")
        seen = [0]
        watching = threading.Event()
        watching.set()

        def watch() -> None:  # the highest run count Redis ever acknowledged to us
            probe = redis.Redis.from_url(server.url, socket_timeout=0.5)
            while watching.is_set():
                with contextlib.suppress(redis.RedisError):
                    seen[0] = max(seen[0], int(probe.zcard(runs_index)))
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        time.sleep(8)
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)  # the watcher is still reading
        server.process.wait(timeout=10)
        watching.clear()
        watcher.join(timeout=30)
        assert not watcher.is_alive(), "the run count watcher did not stop"
        acknowledged = seen[0]
        time.sleep(2)
        server.process = None
        server.start()  # same port, same directory: from the AOF
        _fsync_policy(server.url, appendfsync)
        restarted_at = datetime.now(UTC)
        after_restart = int(client.zcard(runs_index))
        # What the watcher saw acknowledged and the restarted server no longer has. (Fires
        # acknowledged after its last read and kept are not counted: lost is a lower bound.)
        lost = max(0, acknowledged - after_restart)

        resumed = restarted_at.replace(microsecond=0) + timedelta(seconds=RESUMED_S)

        def fired_after_restart() -> set[int]:
            return {
                run.schedule_id
                for run in _runs(store)
                if run.status != "skipped"
                and run.scheduled_for is not None
                and run.scheduled_for >= resumed
                and run.schedule_id is not None
            }

        _until(
            lambda: len(fired_after_restart()) == SCHEDULES, 30, "firing to resume after restart"
        )
        for schedule_id in range(1, SCHEDULES + 1):
            store.schedules.delete(
                1, schedule_id, now=datetime.now(UTC)
            )  # committed fires are in; no more come

        runs = _runs(store)
        counts: dict[int, Counter[datetime]] = {}
        for run in runs:
            assert run.schedule_id is not None
            assert run.scheduled_for is not None
            counts.setdefault(run.schedule_id, Counter())[run.scheduled_for] += 1
        expected = {
            start + timedelta(seconds=s) for s in range(int((resumed - start).total_seconds()) + 1)
        }
        assert len(counts) == SCHEDULES
        for per_schedule in counts.values():
            assert [when for when, n in per_schedule.items() if n > 1] == []
            assert expected <= set(per_schedule)  # across the crash and after it: all there
        print(
            f"\nappendfsync {appendfsync}: acknowledged run records lost by the crash: "
            f"{lost} ({lost / SCHEDULES:.1f} s of this load); runs after: {len(runs)}"
        )
        if appendfsync == "always":
            assert lost == 0
        else:
            assert lost <= EVERYSEC_LOSS_BOUND_S * SCHEDULES
    finally:
        processes.stop_all()
        client.close()
        server.stop()


def _runs(store: Store) -> list[RunRecord]:
    return store.runs.page(1, skip=0, top=100_000)[0]
