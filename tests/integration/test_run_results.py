"""What runs found, through the API: a run's k6 summary and output, a load test's trend.

Runs are fired by the scheduler's own fire path (a hand-moved clock) and executed by the
worker's own execution with the real k6 against a local HTTP server; their results are read
back through the routes a client uses.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import asdict
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from rq import Queue

from tickwork.core.instants import format_instant
from tickwork.core.k6_summary import read_summary
from tickwork.core.runner_specs import K6Spec
from tickwork.scheduler.firing import Firer
from tickwork.store import Lease, RunRecord, StatusEntry, Store
from tickwork.store.queue import queue
from tickwork.worker.executor import WorkerConfig, execute
from tickwork.worker.runners import RunInput, RunnerOptions, runner_for

from .api_support import BOB, T0, Api, Clock, snapshot

SUMMARIES = Path(__file__).parents[1] / "unit" / "k6_summaries"
CONFIG = WorkerConfig(
    runners=RunnerOptions(command_allowed=("sh",), stop_grace_s=1.0),
    heartbeat_s=0.2,
    abort_poll_s=0.05,
    name="worker-results",
)
# No request is answered within a microsecond: the p(95) threshold is crossed on any host.
CROSSING = """import http from 'k6/http';
import { check } from 'k6';
export const options = { vus: 2, iterations: 12, thresholds: {
  http_req_duration: ['p(95)<0.001', 'p(99)<60000'],
  http_req_failed: ['rate<0.01'],
  checks: ['rate==1'],
}};
export default function () {
  check(http.get('URL/ok'), { 'status is 200': (r) => r.status === 200 });
}
"""


class _Target(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def rq_queue(store: Store) -> Queue:
    return queue(store.client, f"{store.keys.prefix}-runs")  # the app's queue


@pytest.fixture
def firer(store: Store, rq_queue: Queue, clock: Clock) -> Firer:
    return Firer(store, rq_queue, clock=clock, catch_up=timedelta(minutes=5))


@pytest.fixture
def lease(store: Store) -> Lease:
    lease = store.leases.acquire("scheduler", "test", 600_000)
    assert lease is not None
    return lease


def _load_test(api: Api, script: str, runner: dict[str, Any] | None = None) -> int:
    body: dict[str, Any] = {"name": "checkout", "script": script}
    if runner is not None:
        body["runner"] = runner
    response = api.post(f"/cloud/v6/projects/{api.project()}/load_tests", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _scheduled_run(api: Api, clock: Clock, firer: Firer, lease: Lease, load_test: int) -> int:
    """A run fired by the load test's schedule (one occurrence, 30 s after T0)."""
    at = T0 + timedelta(seconds=30)
    api.schedule(load_test, {"starts": format_instant(at)})
    clock.now = at + timedelta(milliseconds=5)
    ((run_id, _),) = firer.fire_due(lease).fired
    return run_id


def test_a_failed_scheduled_k6_run_says_which_threshold_failed_and_by_how_much(
    api: Api, store: Store, clock: Clock, firer: Firer, lease: Lease, target: str
) -> None:
    load_test = _load_test(api, CROSSING.replace("URL", target))
    run_id = _scheduled_run(api, clock, firer, lease, load_test)
    ended = execute(store, run_id, CONFIG)
    assert ended is not None
    assert (ended.status, ended.result) == ("completed", "failed")

    response = api.get(f"/cloud/v6/test_runs/{run_id}/summary")

    assert response.status_code == 200, response.text
    summary = response.json()
    assert (summary["test_run_id"], summary["runner"], summary["exit_code"]) == (run_id, "k6", 99)
    assert summary["k6_version"].startswith("v1.")
    crossed, *held = summary["thresholds"]
    assert (crossed["metric"], crossed["expression"], crossed["ok"]) == (
        "http_req_duration",
        "p(95)<0.001",
        False,
    )
    assert crossed["observed"] == summary["metrics"]["http_req_duration"]["p95"]
    assert crossed["excess"] == pytest.approx(crossed["observed"] - 0.001)
    assert crossed["excess"] > 0
    assert sorted((t["metric"], t["expression"], t["ok"]) for t in held) == [
        ("checks", "rate==1", True),
        ("http_req_duration", "p(99)<60000", True),
        ("http_req_failed", "rate<0.01", True),
    ]
    metrics = summary["metrics"]
    assert (metrics["http_reqs"], metrics["iterations"]) == (12, 12)
    assert (metrics["checks_passed"], metrics["checks_failed"]) == (12, 0)
    assert metrics["http_req_failed_rate"] == 0
    durations = metrics["http_req_duration"]
    assert 0 < durations["p50"] <= durations["p90"] <= durations["p95"] <= durations["max"]
    assert durations["p99"] is not None  # the runner asks k6 for p(99)
    assert metrics["data_sent_bytes"] > 0
    assert metrics["data_received_bytes"] > 0
    assert summary["note"] is None

    output = api.get(f"/cloud/v6/test_runs/{run_id}/output").json()
    assert (output["runner"], output["exit_code"]) == ("k6", 99)
    assert "thresholds on metrics 'http_req_duration' have been crossed" in output["output_tail"]


def test_a_command_run_has_its_output_and_no_k6_summary(api: Api, store: Store) -> None:
    load_test = _load_test(api, "", runner={"type": "command", "argv": ["sh", "-c", "echo hi"]})
    run_id = api.post(f"/cloud/v6/load_tests/{load_test}/start").json()["id"]
    execute(store, run_id, CONFIG)

    summary = api.get(f"/cloud/v6/test_runs/{run_id}/summary").json()
    output = api.get(f"/cloud/v6/test_runs/{run_id}/output").json()

    assert summary == {
        "test_run_id": run_id,
        "runner": "command",
        "k6_version": None,
        "exit_code": 0,
        "thresholds": [],
        "metrics": None,
        "note": None,
    }
    assert output == {
        "test_run_id": run_id,
        "runner": "command",
        "exit_code": 0,
        "output_tail": "hi\n",
    }


def test_a_run_not_yet_executed_has_an_empty_summary(api: Api) -> None:
    run_id = api.post(f"/cloud/v6/load_tests/{api.load_test()}/start").json()["id"]
    summary = api.get(f"/cloud/v6/test_runs/{run_id}/summary").json()
    assert (summary["runner"], summary["thresholds"], summary["metrics"]) == (None, [], None)
    output = api.get(f"/cloud/v6/test_runs/{run_id}/output").json()
    assert output["output_tail"] is None


def test_a_k6_run_without_a_summary_says_why(api: Api, store: Store) -> None:
    load_test = _load_test(api, "export default function ( {")  # k6 refuses the script
    run_id = api.post(f"/cloud/v6/load_tests/{load_test}/start").json()["id"]
    execute(store, run_id, CONFIG)
    summary = api.get(f"/cloud/v6/test_runs/{run_id}/summary").json()
    assert (summary["exit_code"], summary["metrics"], summary["thresholds"]) == (107, None, [])
    assert summary["note"].startswith("k6 wrote no end-of-test summary")


@pytest.mark.parametrize("path", ["/test_runs/{run}/summary", "/test_runs/{run}/output"])
def test_another_stacks_run_is_a_404_like_one_that_does_not_exist(api: Api, path: str) -> None:
    run_id = api.post(f"/cloud/v6/load_tests/{api.load_test()}/start").json()["id"]
    theirs = api.as_(BOB, 3).get("/cloud/v6" + path.format(run=run_id))
    missing = api.get("/cloud/v6" + path.format(run=run_id + 1000))
    unauthenticated = api.as_(None).get("/cloud/v6" + path.format(run=run_id))
    assert (theirs.status_code, missing.status_code) == (404, 404)
    assert theirs.json()["error"]["code"] == missing.json()["error"]["code"] == "not_found"
    assert unauthenticated.status_code == 401


# Trend


def _recorded(name: str) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((SUMMARIES / f"{name}.json").read_text())["summary"]
    return summary


def _finished_run(
    store: Store, load_test: int, minute: int, *, status: str = "completed", summary: str | None
) -> int:
    """A run as the worker leaves it, with a summary a real k6 wrote."""
    run_id = store.runs.new_id()
    created = T0 + timedelta(minutes=minute)
    details: dict[str, Any] = {"runner": "k6", "exit_code": 0}
    if summary is not None:
        details["summary"] = _recorded(summary)
    history = [StatusEntry("created", created)]
    if status != "skipped":
        history.append(StatusEntry("running", created + timedelta(seconds=1)))
    ended = created + timedelta(seconds=7)
    if status != "running":
        history.append(StatusEntry(status, ended))
    store.runs.create(
        RunRecord(
            id=run_id,
            stack=1,
            load_test_id=load_test,
            project_id=1,
            created=created,
            status=status,
            status_history=tuple(history),
            result="passed" if status == "completed" else None,
            ended=ended if status != "running" else None,
            details=details,
        )
    )
    return run_id


def test_trend_gives_the_key_metrics_of_the_last_finished_runs_newest_first(
    api: Api, store: Store
) -> None:
    load_test = api.load_test()
    oldest = _finished_run(store, load_test, 1, summary="http_passed")
    middle = _finished_run(store, load_test, 2, summary="counters_rates_and_submetrics")
    _finished_run(store, load_test, 3, status="skipped", summary=None)
    newest = _finished_run(store, load_test, 4, summary="http_p95_threshold_crossed")
    _finished_run(store, load_test, 5, status="running", summary=None)
    _finished_run(store, api.load_test(), 6, summary="http_passed")  # another load test

    everything = api.get(f"/cloud/v6/load_tests/{load_test}/trend").json()
    two = api.get(f"/cloud/v6/load_tests/{load_test}/trend?limit=2").json()

    assert everything["load_test_id"] == load_test
    points = everything["value"]
    assert [p["test_run_id"] for p in points] == [newest, middle, oldest]
    assert [p["metrics"]["http_req_duration"]["p95"] for p in points] == [
        9.241271600000001,
        57.95977375,
        2.7778333999999996,
    ]
    assert [p["thresholds_crossed"] for p in points] == [
        ["http_req_duration: p(95)<0.001"],
        ["http_req_failed: rate<0.4", "http_reqs: count>1000000"],
        [],
    ]
    assert points[0]["execution_duration"] == 6
    assert points[0]["created"] == format_instant(T0 + timedelta(minutes=4))
    assert [p["test_run_id"] for p in two["value"]] == [newest, middle]


def test_trend_of_a_load_test_without_runs_is_empty(api: Api) -> None:
    load_test = api.load_test()
    assert api.get(f"/cloud/v6/load_tests/{load_test}/trend").json() == {
        "load_test_id": load_test,
        "value": [],
    }


def test_trend_of_another_stacks_load_test_is_a_404(api: Api) -> None:
    load_test = api.load_test()
    assert api.as_(BOB, 3).get(f"/cloud/v6/load_tests/{load_test}/trend").status_code == 404
    assert api.get(f"/cloud/v6/load_tests/{load_test + 1000}/trend").status_code == 404


@pytest.mark.parametrize("limit", ["0", "101", "-1", "1_0", "+5", "ten", "2.0"])
def test_a_bad_trend_limit_is_a_400_naming_it_and_changes_nothing(
    api: Api, store: Store, limit: str
) -> None:
    load_test = api.load_test()
    before = snapshot(store)
    response = api.get(f"/cloud/v6/load_tests/{load_test}/trend?limit={limit}")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["target"] for d in error["details"]] == ["limit"]
    assert snapshot(store) == before


def test_the_openapi_document_describes_the_result_routes(api: Api) -> None:
    document = api.get("/openapi.json").json()
    paths = document["paths"]
    for path, schema in [
        ("/cloud/v6/test_runs/{id}/summary", "TestRunSummaryApiModel"),
        ("/cloud/v6/test_runs/{id}/output", "TestRunOutputApiModel"),
        ("/cloud/v6/load_tests/{id}/trend", "LoadTestTrendApiModel"),
    ]:
        operation = paths[path]["get"]
        answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer == {"$ref": f"#/components/schemas/{schema}"}
        assert {"404", "401"} <= set(operation["responses"])
        assert "tickwork extension" in operation["summary"]
    threshold = document["components"]["schemas"]["ThresholdApiModel"]["properties"]
    assert {"metric", "expression", "ok", "observed", "excess"} <= set(threshold)


# The parser against the k6 installed here


@pytest.mark.parametrize(
    "name", ["http_p95_threshold_crossed", "checks_without_http_crossed", "no_http_no_thresholds"]
)
def test_the_summaries_the_installed_k6_writes_read_as_the_recorded_ones(
    name: str, target: str, tmp_path: Path
) -> None:
    """The recorded summaries were written by k6 v1.1; a k6 that changed its summary's shape
    fails here, not in a user's `tickwork runs show`."""
    recorded = json.loads((SUMMARIES / f"{name}.json").read_text())
    script = recorded["script"].replace("http://127.0.0.1:PORT", target).encode()
    verdict = runner_for(K6Spec(), RunnerOptions()).run(
        RunInput(
            run_id=1,
            load_test_id=1,
            project_id=1,
            stack=1,
            created=T0,
            script=script,
            work_dir=tmp_path,
            time_limit_s=60,
        ),
        threading.Event(),
    )
    fresh = read_summary(verdict.details["summary"])
    old = read_summary(recorded["summary"])
    assert fresh is not None
    assert old is not None
    assert verdict.details["exit_code"] == recorded["exit_code"]
    assert [(t.metric, t.expression, t.held) for t in fresh.thresholds] == [
        (t.metric, t.expression, t.held) for t in old.thresholds
    ]
    assert all(t.observed is not None for t in fresh.thresholds)
    # The same metrics are present (values differ from run to run).
    present = {k for k, v in asdict(fresh.metrics).items() if v is not None}
    assert present == {k for k, v in asdict(old.metrics).items() if v is not None}
