"""Faults of Redis itself, on a private server: paused, out of memory, configured to evict.

Real ``tickwork`` processes against a redis-server of the test's own (the shared one is
never paused, filled or reconfigured). Schedules fire every second; whatever Redis does, no
(schedule, occurrence) gets two runs and every occurrence up to a moment after the fault is
accounted for: fired (the catch-up fire once Redis is back) or recorded skipped.

The memory tests hold tickwork to issue 13 §3 (every process stays up and says it is not
ready while Redis refuses writes; nothing starts on a server that may evict keys).

Each test that measures prints a ``fault figures:`` line (``pytest -s``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
import pytest
import redis

from tickwork.core.lifecycle import TERMINAL
from tickwork.embedded import EmbeddedServer
from tickwork.store import Store

from .faults import (
    PREFIX,
    events,
    every_second_through,
    fault_env,
    private_redis,
    rq_job_ids,
    sleep_until,
    tally,
    wait_for,
    wait_settled,
)
from .processes import Process, Processes, every_second

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SCHEDULES = 5
PAUSE_S = 20
OOM_S = 15
MB = 1 << 20
TOKEN = "fault-token-0123456789abcdef"
TOKENS = json.dumps([{"token": TOKEN, "email": "fault@example.com", "stacks": [1]}])
EVICTING = "allkeys-lru"


def probe(port: int, path: str) -> tuple[int, str]:
    """Status and body of a GET (0 and the error when nothing answers)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def ready(port: int) -> bool:
    return probe(port, "/readyz")[0] == 200


def test_redis_paused_for_20_s_costs_no_duplicate_and_no_silent_miss(tmp_path: Path) -> None:
    with private_redis(tmp_path / "redis") as server:
        client = redis.Redis.from_url(server.url)
        store = Store(client, PREFIX)
        processes = Processes(fault_env(server.url), tmp_path)
        ids = range(1, SCHEDULES + 1)
        try:
            schedulers = [processes.scheduler(f"scheduler-{i}") for i in range(2)]
            for process in schedulers:
                processes.wait_healthy(process)
            processes.leader()
            start = every_second(store, SCHEDULES, lead_s=2)
            sleep_until(start + timedelta(seconds=3))

            # SIGSTOP: every connection stays open and nothing answers, as with DEBUG SLEEP.
            assert server.process is not None
            server.process.send_signal(signal.SIGSTOP)
            paused = datetime.now(UTC)
            time.sleep(PAUSE_S)
            server.process.send_signal(signal.SIGCONT)
            resumed = datetime.now(UTC)

            through = resumed + timedelta(seconds=3)
            wait_settled(store, ids, through, 40)
            assert [p.name for p in schedulers if not p.alive] == []
        finally:
            processes.stop_all()
        result = tally(store, every_second_through(start, through, ids))
        assert result.duplicates == []
        assert result.unaccounted == []
        jobs = rq_job_ids(client)
        assert len(jobs) == len(set(jobs)) == result.fired
        # The catch-up fire: the first run of an occurrence that fell due while Redis slept.
        first = min(
            r.created
            for r in result.runs
            if r.status != "skipped" and r.scheduled_for is not None and r.scheduled_for > paused
        )
        client.close()
    print(
        f"\nfault figures: Redis paused {PAUSE_S} s: the catch-up fire "
        f"{(first - resumed).total_seconds():.2f} s after it resumed; {result.line()}"
    )


def fill(client: redis.Redis) -> list[str]:
    """Fill Redis past its limit (noeviction): 16 MB of fillers, then ``maxmemory`` 8 MB
    below what it holds, so every write is refused whatever small amounts come and go
    meanwhile; the keys that filled it (deleting them frees 8 MB below the limit)."""
    keys = [f"filler:{n}" for n in range(16)]
    for key in keys:
        client.set(key, b"x" * MB)
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used - 8 * MB)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.set("filler:probe", b"x")
    return keys


def test_redis_out_of_memory_for_15_s_keeps_every_process_up_and_every_occurrence_accounted_for(
    tmp_path: Path,
) -> None:
    with private_redis(tmp_path / "redis") as server:
        client = redis.Redis.from_url(server.url)
        client.config_set("maxmemory-policy", "noeviction")
        store = Store(client, PREFIX)
        processes = Processes(fault_env(server.url, TICKWORK_TOKENS=TOKENS), tmp_path)
        ids = range(1, SCHEDULES + 1)
        try:
            schedulers = [processes.scheduler(f"scheduler-{i}") for i in range(2)]
            worker = processes.worker("worker")
            api = processes.api("api")
            serving = [*schedulers, api]
            everyone = [*serving, worker]
            for process in serving:
                processes.wait_healthy(process)
            processes.leader()
            start = every_second(store, SCHEDULES, lead_s=2)
            sleep_until(start + timedelta(seconds=4))

            # When: Redis is full for 15 s: every write is refused with its OOM error.
            fillers = fill(client)
            filled = datetime.now(UTC)
            full_until = time.monotonic() + OOM_S
            readiness: dict[str, Counter[int]] = {p.name: Counter() for p in serving}
            reasons: dict[str, str] = {}
            written: tuple[int, str] | None = None
            while time.monotonic() < full_until:
                for process in serving:
                    status, body = probe(process.port, "/readyz")
                    readiness[process.name][status] += 1
                    if status == 503:
                        reasons[process.name] = body
                if written is None and time.monotonic() > full_until - OOM_S / 2:
                    response = httpx.post(
                        f"http://127.0.0.1:{api.port}/cloud/v6/projects",
                        json={"name": "written while Redis is full"},
                        headers={"Authorization": f"Bearer {TOKEN}", "X-Stack-Id": "1"},
                        timeout=10,
                    )
                    written = (response.status_code, response.text)
                time.sleep(0.5)
            down = [p.name for p in everyone if not p.alive]
            client.delete(*fillers)
            freed = datetime.now(UTC)

            # Then: every process stayed up, and said it was not ready, and why.
            assert down == []
            for process in serving:
                assert readiness[process.name][503] > 0, (process.name, readiness)
                assert "memory" in reasons[process.name].lower(), reasons
            assert written is not None
            assert written[0] == 503, written
            assert "memory" in json.loads(written[1])["error"]["message"].lower(), written
            for process in serving:
                wait_for(partial(ready, process.port), 20, f"{process.name} ready again")

            # The fires due meanwhile end as catch-up fires or recorded skips, and no run
            # stays queued: the worker runs each (they end at once: no k6 script), or the
            # leader ends one whose job was lost after its claim window (60 s) at its next
            # housekeeping pass: the bound leaves a loaded 2-core host room for both.
            through = freed + timedelta(seconds=3)
            wait_settled(store, ids, through, 30)

            def unfinished() -> list[tuple[int, str]]:
                runs, _ = store.runs.page(1, skip=0, top=100_000)
                return [(r.id, r.status) for r in runs if r.status not in TERMINAL]

            try:
                ended_in = wait_for(lambda: not unfinished(), 150, "every fired run to end")
            except AssertionError as timeout:
                raise AssertionError(f"{timeout}; still unfinished: {unfinished()}") from None
            assert [p.name for p in everyone if not p.alive] == []
        finally:
            processes.stop_all()
        result = tally(store, every_second_through(start, through, ids))
        assert result.duplicates == []
        assert result.unaccounted == []
        client.close()

    # No traceback anywhere; each daemon's retry loop logs one line per change of state,
    # naming the cause, and one when Redis takes writes again. (The API has no such loop:
    # it answers each refused request with a 503.)
    for process in everyone:
        assert "Traceback" not in process.log.read_text(), process.name
    daemons = [*schedulers, worker]
    noted = {
        p.name: [e for e in events(p) if e.get("event") == "store_unavailable"] for p in daemons
    }
    memory = {
        name: [e for e in found if "memory" in str(e.get("error", "")).lower()]
        for name, found in noted.items()
    }
    assert any(memory[p.name] for p in schedulers), noted
    for process in daemons:
        assert len(noted[process.name]) <= 3, (process.name, noted[process.name])
        if noted[process.name]:
            assert any(e.get("event") == "store_available" for e in events(process)), process.name
    statuses = Counter(r.status for r in result.runs)
    first = min(
        r.created
        for r in result.runs
        if r.status != "skipped" and r.scheduled_for is not None and r.scheduled_for > filled
    )
    print(
        f"\nfault figures: Redis out of memory {OOM_S} s: every process up; the catch-up fire "
        f"{(first - freed).total_seconds():.2f} s after memory was freed; runs {dict(statuses)} "
        f"(all ended {ended_in:.1f} s after the settle); {result.line()}"
    )


@pytest.fixture
def evicting_redis(tmp_path: Path) -> Iterator[EmbeddedServer]:
    """A private Redis that may evict any key when full."""
    with private_redis(tmp_path / "redis") as server:
        client = redis.Redis.from_url(server.url)
        client.config_set("maxmemory", 256 * MB)
        client.config_set("maxmemory-policy", EVICTING)
        client.close()
        yield server


def start_each(processes: Processes) -> list[Process]:
    return [processes.scheduler("scheduler"), processes.worker("worker"), processes.api("api")]


def test_every_daemon_refuses_to_start_on_a_redis_that_may_evict_keys(
    evicting_redis: EmbeddedServer, tmp_path: Path
) -> None:
    processes = Processes(fault_env(evicting_redis.url, TICKWORK_TOKENS=TOKENS), tmp_path)
    try:
        started = start_each(processes)
        wait_for(lambda: not any(p.alive for p in started), 15, "every daemon to exit")
    finally:
        processes.stop_all()
    for process in started:
        said = process.log.read_text()
        assert process.popen.returncode not in (0, None), process.name
        assert "maxmemory-policy" in said, (process.name, said)
        assert EVICTING in said, (process.name, said)


def test_with_the_override_every_daemon_starts_never_ready_and_says_why_loudly(
    evicting_redis: EmbeddedServer, tmp_path: Path
) -> None:
    env = fault_env(
        evicting_redis.url, TICKWORK_TOKENS=TOKENS, TICKWORK_ALLOW_EVICTING_REDIS="true"
    )
    processes = Processes(env, tmp_path)
    try:
        started = start_each(processes)
        serving = [p for p in started if p.port]  # the worker serves no health port
        for process in serving:
            processes.wait_healthy(process)
        for _ in range(3):  # never ready, however long it runs
            for process in serving:
                status, body = probe(process.port, "/readyz")
                assert status == 503, (process.name, status, body)
                assert "maxmemory-policy" in body, (process.name, body)
            time.sleep(0.5)
        assert [p.name for p in started if not p.alive] == []
    finally:
        processes.stop_all()
    for process in started:
        loud = [
            e
            for e in events(process)
            if e.get("level") in ("error", "critical") and "maxmemory-policy" in json.dumps(e)
        ]
        assert loud, (process.name, process.log.read_text())


def test_doctor_fails_on_a_redis_that_may_evict_keys(
    evicting_redis: EmbeddedServer, tmp_path: Path
) -> None:
    env = {**os.environ, **fault_env(evicting_redis.url, TICKWORK_TOKENS=TOKENS)}
    result = subprocess.run(
        [sys.executable, "-m", "tickwork", "doctor"],
        env=env,
        cwd=tmp_path,  # no .env of anyone else's
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    failed = [line for line in result.stdout.splitlines() if line.startswith("[fail] eviction:")]
    assert failed, result.stdout
    assert EVICTING in failed[0]
