"""Redis under memory pressure, or configured to evict: tickwork stays up, says why it is not
ready, answers 503 naming the cause, and picks up where it left off (issue 13 §3).

Each test has a redis-server of its own: a tiny ``maxmemory`` under ``noeviction`` makes
every write fail with Redis's OOM error, as a full production server does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from tickwork.api.app import create_app
from tickwork.api.auth import ApiToken
from tickwork.core import Once, Schedule
from tickwork.errors import StoreOutOfMemory
from tickwork.scheduler.firing import Firer
from tickwork.scheduler.loop import Scheduler
from tickwork.store import Store, connect
from tickwork.store.queue import queue

from .private_redis import private_redis

# Slow: a redis-server of its own per test, and waits for it to fill and to drain.
pytestmark = pytest.mark.slow

TOKEN = "memory-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}", "X-Stack-Id": "1"}


@pytest.fixture
def server() -> Iterator[str]:
    with private_redis("--maxmemory-policy", "noeviction") as url:
        yield url


def _fill(client: redis.Redis) -> None:
    """Make every write fail for memory, as on a server that has run full."""
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used)


def _free(client: redis.Redis) -> None:
    client.config_set("maxmemory", 0)


def _until(predicate: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_write_refused_for_memory_is_store_out_of_memory(server: str) -> None:
    store = Store(connect(server), "m")
    _fill(store.client)

    with pytest.raises(StoreOutOfMemory, match="out of memory"):
        store.runs.new_id()


@pytest.fixture
def api(server: str) -> Iterator[tuple[TestClient, Store]]:
    store = Store(connect(server), "m")
    token = ApiToken.from_plain(TOKEN, email="m@example.com", stacks=[1])
    app = create_app(store, tokens=[token], queue_name="m-runs")
    with TestClient(app, raise_server_exceptions=False) as http:
        yield http, store


def test_api_writes_answer_503_naming_the_cause_while_redis_is_full_and_change_nothing(
    api: tuple[TestClient, Store],
) -> None:
    http, store = api
    project = http.post("/cloud/v6/projects", json={"name": "p"}, headers=AUTH)
    assert project.status_code == 201
    _fill(store.client)
    keys_before = sorted(store.client.keys("*"))

    response = http.post("/cloud/v6/projects", json={"name": "q"}, headers=AUTH)

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "store_out_of_memory"
    assert "out of memory" in error["message"]
    assert sorted(store.client.keys("*")) == keys_before
    # Reads still work, and readiness says why the API should not take traffic
    assert http.get("/cloud/v6/projects", headers=AUTH).status_code == 200
    ready = http.get("/readyz")
    assert ready.status_code == 503
    assert "out of memory" in ready.json()["error"]["message"]

    _free(store.client)
    assert http.post("/cloud/v6/projects", json={"name": "q"}, headers=AUTH).status_code == 201
    assert http.get("/readyz").status_code == 200


def test_api_readiness_fails_on_a_redis_that_may_evict_keys() -> None:
    with private_redis("--maxmemory-policy", "allkeys-lru") as url:
        store = Store(connect(url), "m")
        app = create_app(store, tokens=[], queue_name="m-runs")
        with TestClient(app) as http:
            ready = http.get("/readyz")

    assert ready.status_code == 503
    assert "maxmemory-policy is allkeys-lru" in ready.json()["error"]["message"]


def test_a_leader_rides_out_a_full_redis_and_settles_what_fell_due_meanwhile(
    server: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a leading scheduler and a one-shot due in a moment
    store = Store(connect(server), f"m{uuid.uuid4().hex[:6]}")
    store.client.hset(store.keys.load_test(1), mapping={"stack": 1, "project_id": 1})
    rq_queue = queue(store.client, "m-runs")
    firer = Firer(store, rq_queue, clock=lambda: datetime.now(UTC), catch_up=timedelta(minutes=5))
    scheduler = Scheduler(store, firer, lease_ttl=timedelta(seconds=1.5))
    thread = threading.Thread(target=scheduler.run, daemon=True)
    thread.start()
    try:
        _until(lambda: scheduler.role == "leader")
        at = datetime.now(UTC) + timedelta(seconds=1)
        store.schedules.put(
            stack=1,
            load_test_id=1,
            schedule=Schedule(at, Once()),
            request="{}",
            created_by=None,
            now=datetime.now(UTC),
        )
        # When Redis refuses every write across the occurrence's instant
        with caplog.at_level("INFO", logger="tickwork.scheduler"):
            _fill(store.client)
            _until(lambda: scheduler.store_problem is not None)
            time.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()) + 2)
            assert thread.is_alive()
            assert store.runs.page(1, skip=0, top=10)[1] == 0
            _free(store.client)
            # Then, memory back, the occurrence fires (a catch-up fire: within its window)
            _until(lambda: store.runs.page(1, skip=0, top=10)[1] == 1)
            _until(lambda: scheduler.store_problem is None)
    finally:
        scheduler.stop()
        thread.join(timeout=30)
    assert not thread.is_alive(), "the scheduler's loop did not stop"
    (run,) = store.runs.page(1, skip=0, top=10)[0]
    assert run.scheduled_for == at
    events = [r.getMessage() for r in caplog.records if r.name == "tickwork.scheduler"]
    assert events.count("store_unavailable") == 1  # one line per change of state
    assert events.count("store_available") == 1


def _tickwork(*args: str, env: dict[str, str], timeout_s: float = 30) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tickwork", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("role", ["api", "scheduler", "worker"])
def test_every_daemon_refuses_a_redis_that_may_evict_keys(role: str, tmp_path: Path) -> None:
    with private_redis("--maxmemory-policy", "volatile-lru") as url:
        env = {"PATH": "/usr/bin:/bin", "TICKWORK_REDIS_URL": url, "HOME": str(tmp_path)}
        args = {"api": ["--port", "0"], "scheduler": ["--health-port", "0"], "worker": []}[role]
        process = _tickwork(role, *args, env=env)
        out, err = process.communicate(timeout=60)

    assert process.returncode == 1, out + err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"tickwork {role}: Redis maxmemory-policy is volatile-lru")
    assert "TICKWORK_ALLOW_EVICTING_REDIS" in line


def test_with_the_override_a_scheduler_runs_on_an_evicting_redis_but_is_never_ready(
    tmp_path: Path,
) -> None:
    from tickwork.embedded import free_port

    port = free_port()
    with private_redis("--maxmemory-policy", "allkeys-lru") as url:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "TICKWORK_REDIS_URL": url,
            "TICKWORK_ALLOW_EVICTING_REDIS": "true",
        }
        process = _tickwork("scheduler", "--health-port", str(port), env=env)
        try:
            import urllib.error
            import urllib.request

            def answer() -> tuple[int, dict[str, object]] | None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                        return r.status, json.load(r)
                except urllib.error.HTTPError as exc:
                    return exc.code, json.load(exc)
                except OSError:
                    return None

            _until(lambda: answer() is not None)
            status, body = answer() or (0, {})
        finally:
            process.terminate()
            _, err = process.communicate(timeout=30)

    assert status == 503
    assert "allkeys-lru" in str(body["error"])
    assert "store_unsafe" in err
