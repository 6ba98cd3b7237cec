"""The health and metrics endpoints of real processes, against what the README promises.

README, Operations: the scheduler serves ``/healthz``, ``/readyz`` and ``/metrics`` on its
health port, each worker serves ``/metrics`` on ``--metrics-port``, and the Metrics table
names every metric and the process that serves it. The table is read from the README itself,
so a metric added there and not served (or served under another name, without its labels)
fails here; and each one is checked against what the test made happen.
"""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from integration.seeding import created_run, load_test
from tickwork.core import Frequency, Once, RuleSpec, Schedule, build_schedule
from tickwork.core.instants import format_instant
from tickwork.embedded import EmbeddedServer, free_port
from tickwork.scheduler.loop import LEASE_NAME
from tickwork.store import RunRecord, Store

from .processes import Processes, running

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
TOKEN = "metrics-reach-token-0123456789"
TRUE = {"type": "command", "argv": ["sh", "-c", "true"]}


def _until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code), error.read()


def _samples(url: str) -> list[Sample]:
    status, body = _get(url)
    assert status == 200, body
    return [s for family in text_string_to_metric_families(body.decode()) for s in family.samples]


def _value(samples: list[Sample], name: str, **labels: str) -> float | None:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) <= 1, (name, labels)
    return found[0] if found else None


@dataclass(frozen=True)
class Listed:
    """A metric as the README's table lists it."""

    name: str
    labels: frozenset[str]
    process: str


def readme_metrics() -> list[Listed]:
    section = README.read_text().split("\n### Metrics\n", 1)[1].split("\n### ", 1)[0]
    listed = []
    for line in section.splitlines():
        if not line.startswith("| `tickwork_"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        for name, labels in re.findall(r"`(tickwork_[a-z_]+)(?:\{([a-z_,]+)\})?`", cells[0]):
            listed.append(Listed(name, frozenset(filter(None, labels.split(","))), cells[1]))
    return listed


def _served(listed: Listed, samples: list[Sample]) -> list[Sample]:
    """The samples of ``listed`` (a histogram's as _bucket, _count and _sum)."""
    names = {listed.name, *(f"{listed.name}_{part}" for part in ("bucket", "count", "sum"))}
    return [s for s in samples if s.name in names]


def _put(
    store: Store, load_test_id: int, schedule: Schedule, *, set_at: datetime, overlap: str
) -> None:
    store.schedules.put(
        stack=1,
        load_test_id=load_test_id,
        schedule=schedule,
        request="{}",
        created_by=None,
        now=set_at,
        overlap=overlap,
    )


@pytest.fixture
def store(redis_client: redis.Redis) -> Store:
    return Store(redis_client, f"e2em{uuid.uuid4().hex[:8]}")


@pytest.fixture
def env(redis_url: str, store: Store) -> dict[str, str]:
    return {
        "TICKWORK_REDIS_URL": redis_url,
        "TICKWORK_KEY_PREFIX": store.keys.prefix,
        "TICKWORK_QUEUES": json.dumps([f"{store.keys.prefix}-runs"]),
        "TICKWORK_TOKENS": json.dumps([{"token": TOKEN, "email": "m@example.com", "stacks": [1]}]),
        "TICKWORK_COMMAND_ALLOWED": '["sh"]',
        "TICKWORK_LEASE_TTL_SECONDS": "2",
        # Five requests at once, then one per 100 s: the test's seventh is refused.
        "TICKWORK_RATE_LIMIT_PER_SECOND": "0.01",
        "TICKWORK_RATE_LIMIT_BURST": "5",
    }


@pytest.fixture
def processes(env: dict[str, str], tmp_path: Path) -> Iterator[Processes]:
    with running(env, tmp_path) as procs:
        yield procs


def test_the_readme_metrics_table_is_what_the_processes_serve() -> None:
    listed = readme_metrics()
    assert {m.process for m in listed} == {"api", "scheduler", "worker"}
    assert len(listed) == 17
    assert Listed("tickwork_skipped_occurrences_total", frozenset({"reason"}), "scheduler") in (
        listed
    )


def test_every_metric_the_readme_lists_is_served_and_counts_what_happened(
    store: Store, processes: Processes
) -> None:
    now = datetime.now(UTC)
    set_at = now - timedelta(hours=10)
    for load_test_id in (1, 2, 3, 4):
        load_test(store, load_test_id, runner=TRUE)
    # 1: ten hourly occurrences, the last 30 s ago: nine missed, the tenth fires late.
    rule = RuleSpec(Frequency.HOURLY, count=10)
    starts = format_instant(now - timedelta(hours=9, seconds=30))
    _put(store, 1, build_schedule(starts=starts, rule=rule), set_at=set_at, overlap="allow")
    # 2: one occurrence 400 s ago, outside the 300 s catch-up window.
    _put(store, 2, Schedule(now - timedelta(seconds=400), Once()), set_at=set_at, overlap="skip")
    # 3: one occurrence now, while the load test's previous run has not finished.
    created_run(store, 3)
    _put(store, 3, Schedule(now - timedelta(seconds=1), Once()), set_at=set_at, overlap="skip")

    scheduler = processes.scheduler("scheduler")
    worker_port = free_port()
    processes.worker("worker", "--metrics-port", str(worker_port))
    api = processes.api("api")
    for process in (scheduler, api):
        processes.wait_healthy(process)
    processes.leader()
    _until(lambda: store.runs.page(1, skip=0, top=1)[1] == 10 + 1 + 2, 30, "1-3 settled")

    # 4: encoded ahead, then changed before its instant: a conflict, then the ordinary path.
    at = datetime.now(UTC) + timedelta(seconds=12)
    _put(store, 4, Schedule(at, Once()), set_at=datetime.now(UTC), overlap="skip")
    scheduler_metrics = f"http://127.0.0.1:{scheduler.port}/metrics"

    def ahead() -> float | None:
        return _value(_samples(scheduler_metrics), "tickwork_fires_ahead")

    _until(lambda: ahead() == 1, 9, "the fire of schedule 4 ahead")
    assert datetime.now(UTC) < at - timedelta(seconds=1), "too slow to change it in time"
    _put(store, 4, Schedule(at, Once()), set_at=datetime.now(UTC), overlap="skip")  # version+1
    _until(lambda: len(_fired(store)) == 2, 20, "schedule 4 to fire")
    worker_metrics = f"http://127.0.0.1:{worker_port}/metrics"
    _until(
        lambda: _value(_samples(worker_metrics), "tickwork_runs_total", **PASSED) == 2,
        30,
        "the worker to run both fired runs",
    )
    auth = {"Authorization": f"Bearer {TOKEN}", "X-Stack-Id": "1"}
    for _ in range(3):
        assert _get(f"http://127.0.0.1:{api.port}/cloud/v6/projects", auth)[0] == 200
    load_tests = f"http://127.0.0.1:{api.port}/cloud/v6/load_tests"
    assert [_get(load_tests, auth)[0] for _ in range(4)] == [200, 200, 429, 429]
    _until(lambda: ahead() == 0, 10, "nothing left ahead")

    leading = _samples(scheduler_metrics)
    health = json.loads(_get(f"http://127.0.0.1:{scheduler.port}/healthz")[1])
    # A rival takes the lease: the scheduler counts a loss and says it no longer leads.
    store.client.set(store.keys.lease(LEASE_NAME), "0:rival", px=120_000)
    _until(
        lambda: _value(_samples(scheduler_metrics), "tickwork_scheduler_leader") == 0,
        10,
        "the step-down",
    )
    standby = _samples(scheduler_metrics)
    served = {
        "scheduler": standby,
        "worker": _samples(worker_metrics),
        "api": _samples(f"http://127.0.0.1:{api.port}/metrics"),
    }

    # Every metric of the table, with its labels, from the process the table names.
    for listed in readme_metrics():
        samples = _served(listed, served[listed.process])
        assert samples, f"{listed.name} is not served by the {listed.process}"
        for sample in samples:
            assert listed.labels <= set(sample.labels), (listed, sample)

    # The scheduler's figures are those of the runs it wrote.
    runs = store.runs.page(1, skip=0, top=1000)[0]
    skipped: dict[str, int] = {}
    for run in runs:
        if run.status == "skipped":
            reason = str(run.details["skip_reason"])
            skipped[reason] = skipped.get(reason, 0) + 1 + int(run.details.get("more", 0))
    assert skipped == {"missed": 9, "missed_outside_catch_up_window": 1, "overlap": 1}
    for reason, count in skipped.items():
        assert _value(leading, "tickwork_skipped_occurrences_total", reason=reason) == count
    assert _value(leading, "tickwork_fires_total") == len(_fired(store)) == 2
    assert _value(leading, "tickwork_fire_lag_seconds_count") == 2
    assert _value(leading, "tickwork_fire_conflicts_total") == 1
    assert _value(leading, "tickwork_scheduler_leader") == 1
    assert _value(leading, "tickwork_scheduler_term") == health["term"]
    assert (_value(leading, "tickwork_lease_renewals_total") or 0) >= 1
    assert _value(leading, "tickwork_lease_losses_total") == 0
    last_loop = _value(leading, "tickwork_scheduler_last_loop_timestamp_seconds")
    assert last_loop is not None
    assert abs(last_loop - time.time()) < 60
    assert _value(standby, "tickwork_lease_losses_total") == 1
    assert _value(standby, "tickwork_scheduler_term") == 0

    # The worker's, those of the runs it ended.
    worker = served["worker"]
    assert _value(worker, "tickwork_runs_total", **PASSED) == 2
    assert _value(worker, "tickwork_run_queue_delay_seconds_count") == 2
    assert _value(worker, "tickwork_run_duration_seconds_count") == 2

    # The API's, those of the requests above and of the schedules stored.
    api_samples = served["api"]
    route = {"route": "/cloud/v6/projects", "method": "GET"}
    assert _value(api_samples, "tickwork_api_requests_total", **route, status="200") == 3
    assert _value(api_samples, "tickwork_api_request_duration_seconds_count", **route) == 3
    assert _value(api_samples, "tickwork_api_rate_limited_total", limit="token") == 2
    assert _value(api_samples, "tickwork_schedules", state="active") == 0  # all settled
    assert _value(api_samples, "tickwork_schedules", state="inactive") == 4


PASSED = {"status": "completed", "result": "passed"}


def _fired(store: Store) -> list[RunRecord]:
    runs = store.runs.page(1, skip=0, top=1000)[0]
    return [r for r in runs if r.schedule_id is not None and r.status != "skipped"]


def test_the_scheduler_readyz_follows_redis_and_healthz_stays_up(
    tmp_path: Path, processes: Processes, env: dict[str, str]
) -> None:
    server = EmbeddedServer(tmp_path / "redis").start()
    try:
        processes.env = {**env, "TICKWORK_REDIS_URL": server.url}
        scheduler = processes.scheduler("scheduler")
        processes.wait_healthy(scheduler)
        processes.leader()
        base = f"http://127.0.0.1:{scheduler.port}"

        def ready() -> tuple[int, dict[str, Any]]:
            status, body = _get(f"{base}/readyz")
            return status, json.loads(body)

        assert ready() == (200, {"status": "ready", "role": "leader"})
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        _until(lambda: ready()[0] == 503, 15, "/readyz to say Redis is gone")
        assert ready()[1]["status"] == "unavailable"
        assert _get(f"{base}/healthz")[0] == 200  # alive: only not ready

        server.process = None
        server.start()  # on the same port, from its AOF
        _until(lambda: ready()[0] == 200, 15, "/readyz to say Redis is back")
        _until(lambda: ready()[1].get("role") == "leader", 15, "the scheduler to lead again")
    finally:
        processes.stop_all()
        server.stop()
