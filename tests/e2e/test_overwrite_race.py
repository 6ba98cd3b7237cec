"""Re-sending a schedule around its due instant, with real processes: never two runs, never
none (issue 12 §0).

A Terraform re-apply or a client retry re-POSTs a schedule unchanged. Here 200 one-shot
schedules fall due 80 ms apart while a pool of clients re-POSTs each of them, unchanged, at
moments from 20 ms before its instant to 20 ms after, and other clients read the schedule
list all the while; one `tickwork api` and two `tickwork scheduler` processes (look-ahead
on, as by default) on the real Redis. Before the fix, 5 % of such instants fired twice and
8 % not at all.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis

from tickwork.core.instants import format_instant
from tickwork.store import Store

from .processes import Processes

pytestmark = pytest.mark.slow

TOKEN = "e2e-race-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}", "X-Stack-Id": "1"}
SCHEDULES = 200
SPACING = timedelta(milliseconds=80)
RESEND_OFFSETS_MS = (-20, -5, -1, 0, 1, 5, 20)


@pytest.fixture
def cluster(redis_url: str, tmp_path: Path) -> Iterator[tuple[str, Store]]:
    prefix = f"e2er{uuid.uuid4().hex[:8]}"
    env = {
        "TICKWORK_REDIS_URL": redis_url,
        "TICKWORK_KEY_PREFIX": prefix,
        "TICKWORK_QUEUES": json.dumps([f"{prefix}-runs"]),
        "TICKWORK_LEASE_TTL_SECONDS": "2",
        # Exactly once is what this measures; one token sends ~2,000 requests in seconds.
        "TICKWORK_RATE_LIMIT_PER_SECOND": "0",
        "TICKWORK_STACK_RATE_LIMIT_PER_SECOND": "0",
        "TICKWORK_TOKENS": json.dumps(
            [{"token": TOKEN, "email": "e2e@example.com", "stacks": [1]}]
        ),
    }
    processes = Processes(env, tmp_path)
    client = redis.Redis.from_url(redis_url)
    try:
        api = processes.api("api")
        schedulers = [processes.scheduler(f"scheduler-{i}") for i in range(2)]
        for process in (api, *schedulers):
            processes.wait_healthy(process)
        processes.leader()
        yield f"http://127.0.0.1:{api.port}", Store(client, prefix)
    finally:
        processes.stop_all()
        client.close()


def _sleep_until(at: datetime) -> None:
    delay = (at - datetime.now(UTC)).total_seconds()
    if delay > 0:
        time.sleep(delay)


def test_resending_schedules_at_their_instants_fires_each_exactly_once(
    cluster: tuple[str, Store],
) -> None:
    base_url, store = cluster
    with httpx.Client(base_url=base_url, headers=AUTH, timeout=30) as http:
        project = http.post("/cloud/v6/projects", json={"name": "race"}).json()["id"]
        load_tests = [
            http.post(
                f"/cloud/v6/projects/{project}/load_tests",
                json={"name": f"lt-{i}", "script": "export default () => {}"},
            ).json()["id"]
            for i in range(SCHEDULES)
        ]
        first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=8)
        instants = {lt: first + i * SPACING for i, lt in enumerate(load_tests)}
        bodies = {lt: {"starts": format_instant(at)} for lt, at in instants.items()}
        for lt, body in bodies.items():
            assert http.post(f"/cloud/v6/load_tests/{lt}/schedule", json=body).status_code == 200

    # When every schedule is re-sent, unchanged, around its instant, under concurrent reads
    resends = sorted(
        (at + timedelta(milliseconds=offset), lt)
        for lt, at in instants.items()
        for offset in RESEND_OFFSETS_MS
    )
    statuses: Counter[int] = Counter()
    stop_reading = threading.Event()

    def resend(when: datetime, lt: int, http: httpx.Client) -> None:
        _sleep_until(when)
        response = http.post(f"/cloud/v6/load_tests/{lt}/schedule", json=bodies[lt])
        statuses[response.status_code] += 1

    def read(http: httpx.Client) -> None:
        while not stop_reading.is_set():
            http.get("/cloud/v6/schedules", params={"$top": 50})

    with (
        httpx.Client(base_url=base_url, headers=AUTH, timeout=30) as http,
        ThreadPoolExecutor(max_workers=16) as pool,
    ):
        readers = [pool.submit(read, http) for _ in range(2)]
        senders = [pool.submit(resend, when, lt, http) for when, lt in resends]
        for sender in senders:
            sender.result(timeout=120)
        stop_reading.set()
        for reader in readers:
            reader.result(timeout=30)
    assert statuses == Counter({200: len(resends)})

    # Then every instant has exactly one run, and it fired (no false overlap record)
    _sleep_until(max(instants.values()) + timedelta(seconds=3))
    runs, _ = store.runs.page(1, skip=0, top=10_000)
    per_instant = Counter((run.load_test_id, run.scheduled_for) for run in runs)
    twice = [key for key, count in per_instant.items() if count > 1]
    dropped = [lt for lt, at in instants.items() if per_instant[(lt, at)] == 0]
    assert twice == []
    assert dropped == []
    assert {run.status for run in runs} == {"created"}
    assert len(runs) == SCHEDULES
