"""Runs end to end with real processes: `tickwork api`, two schedulers, two workers, real k6.

Each test creates a load test through the HTTP API, schedules it once a second ahead, and
follows its run through the API until it ends. The k6 scripts hit a local HTTP target and
last one to three seconds; the long ones are cut short by a time limit, an abort, or a
kill -9 of the worker that runs them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from rq import Queue, Worker

from tickwork.core.instants import format_instant
from tickwork.store import Store
from tickwork.store.connection import text_of

from .processes import Process, Processes

pytestmark = pytest.mark.slow

TOKEN = "e2e-token-0123456789abcdef"
EMAIL = "e2e@example.com"
SECRET = "e2e-webhook-secret-0123"
HEARTBEAT_S = 0.5  # a killed worker's run is reaped within ~4 heartbeats

K6_HITS_TARGET = """
import http from 'k6/http';
import { check, sleep } from 'k6';
export const options = { vus: 2, duration: '1s',
  thresholds: { http_req_failed: ['rate<0.01'], checks: ['rate==1'] } };
export default function () {
  check(http.get(__ENV.TARGET), { 'status is 200': (r) => r.status === 200 });
  sleep(0.05);
}
"""
K6_IMPOSSIBLE_THRESHOLD = """
import http from 'k6/http';
export const options = { iterations: 3, thresholds: { http_req_duration: ['p(95)<0'] } };
export default function () { http.get(__ENV.TARGET); }
"""
K6_LONG = """
import http from 'k6/http';
import { sleep } from 'k6';
export const options = { vus: 1, duration: '30s' };
export default function () { http.get(__ENV.TARGET); sleep(0.05); }
"""


@dataclass
class Target:
    """The system under load (GET) and a webhook receiver that checks signatures (POST)."""

    hits: int = 0
    hooks: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    state = Target()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.hits += 1
            self._answer(200)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            signed = hmac.compare_digest(
                f"sha256={mac}", self.headers.get("X-Tickwork-Signature-256", "")
            )
            with state.lock:
                state.hooks.append({"signed": signed, "body": json.loads(body)})
                first = len(state.hooks) == 1
            # The first delivery meets a 503, as from a receiver mid-deploy: it is retried.
            self._answer(401 if not signed else 503 if first else 200)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@dataclass
class Cluster:
    processes: Processes
    api: httpx.Client
    store: Store
    queue: Queue
    project_id: int
    workers: list[Process]

    def wait_for_workers(self, count: int, timeout_s: float = 15) -> None:
        _until(lambda: Worker.count(queue=self.queue) >= count, timeout_s, "workers up")


@pytest.fixture(scope="module")
def cluster(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    prefix = f"e2ew{uuid.uuid4().hex[:8]}"
    queue_name = f"{prefix}-runs"
    env = {
        "TICKWORK_REDIS_URL": redis_url,
        "TICKWORK_KEY_PREFIX": prefix,
        "TICKWORK_QUEUES": json.dumps([queue_name]),
        "TICKWORK_LEASE_TTL_SECONDS": "2",
        "TICKWORK_RUN_HEARTBEAT_SECONDS": str(HEARTBEAT_S),
        "TICKWORK_WEBHOOK_SECRET": SECRET,
        # The webhook receiver is on loopback, which egress refuses unless allowed.
        "TICKWORK_EGRESS_ALLOWED_CIDRS": json.dumps(["127.0.0.0/8"]),
        "TICKWORK_TOKENS": json.dumps([{"token": TOKEN, "email": EMAIL, "stacks": [1]}]),
    }
    processes = Processes(env, tmp_path_factory.mktemp("workers-e2e"))
    client = redis.Redis.from_url(redis_url)
    try:
        api = processes.api("api")
        schedulers = [processes.scheduler(f"scheduler-{i}") for i in range(2)]
        workers = [processes.worker(f"worker-{i}") for i in range(2)]
        for process in (api, *schedulers):
            processes.wait_healthy(process)
        http = httpx.Client(
            base_url=f"http://127.0.0.1:{api.port}/cloud/v6",
            headers={"Authorization": f"Bearer {TOKEN}", "X-Stack-Id": "1"},
            timeout=10,
        )
        project = http.post("/projects", json={"name": f"e2e {prefix}"})
        assert project.status_code == 201, project.text
        cluster = Cluster(
            processes,
            http,
            Store(client, prefix),
            Queue(queue_name, connection=client),
            project.json()["id"],
            workers,
        )
        cluster.wait_for_workers(2)
        yield cluster
        http.close()
    finally:
        processes.stop_all()
        client.close()


def _until(predicate: Callable[[], bool], timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def _schedule_run(
    cluster: Cluster, name: str, *, script: str = "", runner: dict[str, Any] | None = None
) -> int:
    """Create the load test and a one-shot schedule a second ahead; the id of its run."""
    body: dict[str, Any] = {"name": f"{name} {uuid.uuid4().hex[:6]}", "script": script}
    if runner is not None:
        body["runner"] = runner
    created = cluster.api.post(f"/projects/{cluster.project_id}/load_tests", json=body)
    assert created.status_code == 201, created.text
    load_test_id = created.json()["id"]
    starts = datetime.now(UTC) + timedelta(seconds=1)
    scheduled = cluster.api.post(
        f"/load_tests/{load_test_id}/schedule", json={"starts": format_instant(starts)}
    )
    assert scheduled.status_code == 200, scheduled.text
    runs: list[dict[str, Any]] = []

    def fired() -> bool:
        runs[:] = cluster.api.get(f"/load_tests/{load_test_id}/test_runs").json()["value"]
        return bool(runs)

    _until(fired, 10, "the schedule to fire")
    assert len(runs) == 1
    run_id: int = runs[0]["id"]
    return run_id


def _run(cluster: Cluster, run_id: int) -> dict[str, Any]:
    response = cluster.api.get(f"/test_runs/{run_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def _wait_status(cluster: Cluster, run_id: int, *statuses: str, timeout_s: float = 20) -> float:
    return _until(lambda: _run(cluster, run_id)["status"] in statuses, timeout_s, str(statuses))


def _worker_events(cluster: Cluster) -> list[dict[str, Any]]:
    events = []
    for process in cluster.processes.started:
        if process.name.startswith("worker"):
            events += [json.loads(line) for line in process.log.read_text().splitlines()]
    return events


def _k6(env_target: str, **extra: Any) -> dict[str, Any]:
    return {"type": "k6", "env": {"TARGET": env_target}, **extra}


def test_scheduled_k6_run_loads_the_target_and_passes(cluster: Cluster, target: Target) -> None:
    before = target.hits
    run_id = _schedule_run(cluster, "passes", script=K6_HITS_TARGET, runner=_k6(f"{target.url}/"))

    _wait_status(cluster, run_id, "completed", "aborted")

    run = _run(cluster, run_id)
    assert (run["status"], run["result"]) == ("completed", "passed")
    assert [s["type"] for s in run["status_history"]] == [
        "created",
        "initializing",
        "running",
        "completed",
    ]
    assert target.hits - before >= 5
    details = cluster.store.runs.get(1, run_id).details
    assert details["summary"]["metrics"]["http_reqs"]["count"] == target.hits - before
    assert "http_reqs" in details["output_tail"]
    # One canonical JSON log line per finished run, from the worker that ran it.
    lines = [e for e in _worker_events(cluster) if e.get("run_id") == run_id]
    finished = [e for e in lines if e["event"] == "run_finished"]
    assert [(e["status"], e["result"]) for e in finished] == [("completed", "passed")]


def test_crossed_threshold_completes_failed(cluster: Cluster, target: Target) -> None:
    run_id = _schedule_run(
        cluster, "fails", script=K6_IMPOSSIBLE_THRESHOLD, runner=_k6(f"{target.url}/")
    )
    _wait_status(cluster, run_id, "completed", "aborted")
    run = _run(cluster, run_id)
    assert (run["status"], run["result"]) == ("completed", "failed")
    assert run["status_details"]["extra"]["message"] == "failed: k6 thresholds were crossed"


def test_run_past_its_time_limit_is_aborted_as_timed_out(cluster: Cluster, target: Target) -> None:
    run_id = _schedule_run(
        cluster, "too long", script=K6_LONG, runner=_k6(f"{target.url}/", timeout_seconds=2)
    )
    _wait_status(cluster, run_id, "aborted", "completed", timeout_s=15)
    run = _run(cluster, run_id)
    extra = run["status_details"]["extra"]
    assert (run["status"], run["result"], extra["code"]) == ("aborted", "error", 4)
    assert extra["message"] == "timed_out: k6 ran longer than the 2 s limit"
    history = {s["type"]: datetime.fromisoformat(s["entered"]) for s in run["status_history"]}
    assert 2.0 <= (history["aborted"] - history["running"]).total_seconds() < 4.0


def test_abort_stops_a_running_k6_within_seconds(cluster: Cluster, target: Target) -> None:
    run_id = _schedule_run(cluster, "aborted", script=K6_LONG, runner=_k6(f"{target.url}/"))
    _wait_status(cluster, run_id, "running")
    _until(lambda: target.hits > 0, 5, "k6 to load the target")

    asked = cluster.api.post(f"/test_runs/{run_id}/abort")
    assert asked.status_code == 204, asked.text
    took = _wait_status(cluster, run_id, "aborted", "completed", timeout_s=10)

    run = _run(cluster, run_id)
    extra = run["status_details"]["extra"]
    assert took < 3.0
    assert (run["status"], run["result"], extra["code"], extra["by_user"]) == (
        "aborted",
        "error",
        5,
        EMAIL,
    )
    assert extra["message"].startswith("aborted_by_user: k6 stopped")
    hits = target.hits
    time.sleep(0.5)
    assert target.hits == hits  # k6 is gone


def test_webhook_runner_posts_a_signed_description_and_retries_a_5xx(
    cluster: Cluster, target: Target
) -> None:
    runner = {"type": "webhook", "url": f"{target.url}/hook", "max_attempts": 3}
    run_id = _schedule_run(cluster, "webhook", runner=runner)
    _wait_status(cluster, run_id, "completed", "aborted")

    run = _run(cluster, run_id)
    assert (run["status"], run["result"]) == ("completed", "passed")
    assert [hook["signed"] for hook in target.hooks] == [True, True]
    assert {hook["body"]["run_id"] for hook in target.hooks} == {run_id}
    attempts = cluster.store.runs.get(1, run_id).details["attempts"]
    assert [attempt["status"] for attempt in attempts] == [503, 200]


def _k6_alive() -> list[str]:
    """Each running k6: pid, its parent, its process group (from /proc)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            line = stat.read_text()
        except OSError:
            continue  # ended while we looked
        comm, rest = line[line.find("(") + 1 : line.rfind(")")], line[line.rfind(")") + 2 :]
        if comm == "k6":
            state, ppid, pgrp = rest.split()[:3]
            alive.append(f"pid {stat.parent.name} state {state} ppid {ppid} pgrp {pgrp}")
    return alive


def test_worker_killed_mid_run_the_run_ends_as_worker_lost_and_is_not_rerun(
    cluster: Cluster, target: Target
) -> None:
    run_id = _schedule_run(cluster, "killed", script=K6_LONG, runner=_k6(f"{target.url}/"))
    _wait_status(cluster, run_id, "running")
    _until(lambda: target.hits > 0, 5, "k6 to load the target")
    owner = cluster.store.client.get(cluster.store.keys.run_executed(run_id))
    assert owner is not None
    pid = int(text_of(owner).rsplit(":", 1)[1])  # the worker records itself as host:pid
    (victim,) = [w for w in cluster.workers if w.popen.pid == pid]

    victim.signal(signal.SIGKILL)
    victim.popen.wait(timeout=5)
    took = _wait_status(cluster, run_id, "aborted", "completed", timeout_s=15)

    run = _run(cluster, run_id)
    extra = run["status_details"]["extra"]
    assert (run["status"], run["result"], extra["code"]) == ("aborted", "error", 6)
    assert extra["message"].startswith("worker_lost: its worker")
    assert took < 4 * HEARTBEAT_S + 2.0  # lapse (3 beats) + one reaper pass + polling
    hits = target.hits
    time.sleep(1.0)
    # k6 died with its worker (seen once still loading: the k6 processes say who held them)
    assert target.hits == hits, f"{target.hits - hits} hits in 1 s; k6 alive: {_k6_alive()}"
    assert [s["type"] for s in _run(cluster, run_id)["status_history"]] == [
        "created",
        "initializing",
        "running",
        "aborted",
    ]
    cluster.workers.remove(victim)
    cluster.workers.append(cluster.processes.worker("worker-replacement"))
    cluster.wait_for_workers(2)
