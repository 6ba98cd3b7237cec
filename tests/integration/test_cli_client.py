"""The client commands (`projects`, `load-tests`, `schedules`, `runs`) and `tickwork doctor`
as a user runs them: separate processes against a real `tickwork api`, with a real worker,
scheduler and k6 where runs must run; what is asserted is what they print and exit with."""

from __future__ import annotations

import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tickwork.client import Client
from tickwork.client_runs import follow
from tickwork.core.instants import format_instant
from tickwork.embedded import free_port

# Slow: every command is a `tickwork` process of its own (~1 s each), against a live API.
pytestmark = pytest.mark.slow

TOKEN = "cli-test-token-0123456789"
# No request is answered within a microsecond: the p(95) threshold is crossed on any host.
CROSSING = """import http from 'k6/http';
export const options = { vus: 1, iterations: 5, thresholds: {
  http_req_duration: ['p(95)<0.001'], http_req_failed: ['rate<0.01'] } };
export default function () { http.get('TARGET'); }
"""
PASSING = """import { check } from 'k6';
export const options = { iterations: 2, thresholds: { checks: ['rate==1'] } };
export default function () { check(1, { 'one is one': (v) => v === 1 }); }
"""
LONG = """import { sleep } from 'k6';
export const options = { vus: 1, duration: '60s' };
export default function () { sleep(0.2); }
"""


def tickwork(
    env: dict[str, str], *args: str, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickwork", *args],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("TICKWORK_")}, **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[str]]]:
    """The CLI processes a test started (``_popen``): one still running at the test's end (a
    wait that timed out, an assertion before it) is killed, not left following forever."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)  # reaps it and closes its pipes


# `python -m tickwork`, with SIGINT handled as at a terminal. A job a shell starts in the
# background inherits SIGINT ignored (CI may run the suite so: /proc showed SigIgn 0x1001007),
# Python keeps an ignored SIGINT ignored, and a Ctrl-C test would then test nothing.
AT_A_TERMINAL = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('tickwork', run_name='__main__', alter_sys=True)"
)


def _popen(
    spawned: list[subprocess.Popen[str]],
    env: dict[str, str],
    *args: str,
    at_a_terminal: bool = False,
) -> subprocess.Popen[str]:
    start = ["-c", AT_A_TERMINAL] if at_a_terminal else ["-m", "tickwork"]
    process = subprocess.Popen(
        [sys.executable, *start, *args],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("TICKWORK_")}, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    spawned.append(process)
    return process


def _stderr_line(process: subprocess.Popen[str], what: str, timeout_s: float = 60) -> str:
    """The next line ``process`` prints to stderr. A pipe read takes no timeout, so a thread
    reads it: a process that prints nothing in time fails the test naming ``what`` it did
    not print, rather than hanging it."""
    stderr = process.stderr
    assert stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stderr.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout_s)
    except queue.Empty:
        raise AssertionError(f"the CLI printed no {what} on stderr in {timeout_s} s") from None


class _Target(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def env(redis_url: str) -> dict[str, str]:
    prefix = f"cli{uuid.uuid4().hex[:8]}"
    return {
        "TICKWORK_REDIS_URL": redis_url,
        "TICKWORK_KEY_PREFIX": prefix,
        "TICKWORK_QUEUES": json.dumps([f"{prefix}-runs"]),  # this test's runs only
        "TICKWORK_TOKENS": json.dumps([{"token": TOKEN, "email": "me@example.com", "stacks": [3]}]),
        "TICKWORK_API_TOKEN": TOKEN,
        "TICKWORK_STACK_ID": "3",
    }


def _daemon(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("w") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "tickwork", *args],
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


@pytest.fixture
def api(env: dict[str, str], tmp_path: Path) -> Iterator[Client]:
    port = free_port()
    env["TICKWORK_API_URL"] = f"http://127.0.0.1:{port}"
    process = _daemon(env, tmp_path / "api.log", "api", "--port", str(port))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield Client(env["TICKWORK_API_URL"], TOKEN, 3)
    finally:
        _stop(process)


@pytest.fixture
def worker(api: Client, env: dict[str, str], tmp_path: Path) -> Iterator[None]:
    process = _daemon(env, tmp_path / "worker.log", "worker")
    try:
        yield
    finally:
        _stop(process)


@pytest.fixture
def scheduler(api: Client, env: dict[str, str], tmp_path: Path) -> Iterator[None]:
    process = _daemon(env, tmp_path / "scheduler.log", "scheduler", "--health-port", "0")
    try:
        yield
    finally:
        _stop(process)


def _load_test(client: Client, script: str = "export default function () {}") -> int:
    project = client.call("POST", "/cloud/v6/projects", {"name": f"p{uuid.uuid4().hex[:6]}"})
    test = client.call(
        "POST",
        f"/cloud/v6/projects/{project['id']}/load_tests",
        {"name": "checkout", "script": script},
    )
    load_test_id: int = test["id"]
    return load_test_id


def _wait_for(predicate: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


def _table(text: str) -> list[list[str]]:
    """A table's rows as cells (cells are split on two or more spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines()]


# projects and load tests


def test_projects_and_load_tests_are_managed_without_curl(
    api: Client, env: dict[str, str], tmp_path: Path
) -> None:
    script = tmp_path / "hello.js"
    script.write_text(PASSING)
    project = tickwork(env, "projects", "create", "--name", "shop")
    assert project.returncode == 0, project.stderr
    project_id = re.search(r"^id:\s+(\d+)$", project.stdout, re.MULTILINE)
    assert project_id is not None
    assert _table(tickwork(env, "projects", "list").stdout)[1][:2] == [project_id[1], "shop"]

    created = tickwork(
        env, "load-tests", "create", "--project", "shop", "--name", "hello", "--script", str(script)
    )
    assert created.returncode == 0, created.stderr
    test_id = re.search(r"^id:\s+(\d+)$", created.stdout, re.MULTILINE)
    assert test_id is not None
    assert "name:       hello" in created.stdout
    assert 'runner:     {"type": "k6"}' in created.stdout
    assert api.call("GET", f"/cloud/v6/load_tests/{test_id[1]}")["project_id"] == int(project_id[1])

    script.write_text("export default function () { /* v2 */ }")
    updated = tickwork(
        env,
        "load-tests",
        "update",
        test_id[1],
        "--name",
        "hello v2",
        "--script",
        str(script),
        "--runner",
        '{"type": "k6", "env": {"TARGET": "x"}}',
    )
    assert updated.returncode == 0, updated.stderr
    assert "name:       hello v2" in updated.stdout
    request = urllib.request.Request(
        f"{api.base_url}/cloud/v6/load_tests/{test_id[1]}/script",
        headers={"Authorization": f"Bearer {TOKEN}", "X-Stack-Id": "3"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.read() == b"export default function () { /* v2 */ }"

    listing = _table(tickwork(env, "load-tests", "list", "--project", project_id[1]).stdout)
    assert listing[0][:4] == ["ID", "NAME", "PROJECT_ID", "RUNNER"]
    assert listing[1][:4] == [test_id[1], "hello v2", project_id[1], "k6"]
    shown = tickwork(env, "load-tests", "show", test_id[1], "--json")
    assert json.loads(shown.stdout)["runner"] == {"type": "k6", "env": {"TARGET": "x"}}

    deleted = tickwork(env, "load-tests", "delete", test_id[1])
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == (
        f"deleted load test {test_id[1]} (hello v2) with its script and schedule; its runs stay"
    )
    assert tickwork(env, "load-tests", "list").stdout.splitlines()[1:] == []


def test_load_test_commands_refuse_bad_input_with_one_line_per_problem(
    api: Client, env: dict[str, str], tmp_path: Path
) -> None:
    script = tmp_path / "hello.js"
    script.write_text(PASSING)
    tickwork(env, "projects", "create", "--name", "shop")
    unknown = tickwork(
        env, "load-tests", "create", "--project", "nope", "--name", "x", "--script", str(script)
    )
    assert (unknown.returncode, unknown.stderr.strip()) == (
        1,
        "tickwork: no project is named 'nope' (tickwork projects list)",
    )
    bad_runner = tickwork(
        env,
        "load-tests",
        "create",
        "--project",
        "shop",
        "--name",
        "x",
        "--script",
        str(script),
        "--runner",
        '{"type": "ssh"}',
    )
    assert bad_runner.returncode == 1
    first, *problems = bad_runner.stderr.splitlines()
    assert first.startswith("tickwork: ")
    assert [line.split(":")[0].strip() for line in problems] == ["runner.type"]
    missing = tickwork(
        env, "load-tests", "create", "--project", "shop", "--name", "x", "--script", "nope.js"
    )
    assert missing.returncode == 1
    assert "--script: cannot read nope.js" in missing.stderr
    assert api.all_pages("/cloud/v6/load_tests") == []


# schedules


def test_schedules_commands_set_list_deactivate_activate_delete(
    api: Client, env: dict[str, str]
) -> None:
    load_test_id = _load_test(api)
    body = json.dumps(
        {
            "starts": "2030-01-01T00:00:00.500Z",
            "cron": {"schedule": "0 7 * * 1", "time_zone": "UTC"},
        }
    )
    created = tickwork(env, "schedules", "set", str(load_test_id), body, "--json")
    assert created.returncode == 0, created.stderr
    schedule = json.loads(created.stdout)
    assert schedule["starts"] == "2030-01-01T00:00:00.500Z"
    assert schedule["next_run"] == "2030-01-07T07:00:00Z"

    listing = tickwork(env, "schedules", "list")
    assert listing.returncode == 0, listing.stderr
    header, row = _table(listing.stdout)
    assert header == ["ID", "LOAD_TEST", "ACTIVE", "WHEN", "NEXT_RUN", "LAST_RUN"]
    assert row == [
        str(schedule["id"]),
        f"{load_test_id} checkout",
        "yes",
        "0 7 * * 1 (UTC)",
        "2030-01-07T07:00:00Z",
        "-",
    ]

    off = tickwork(env, "schedules", "deactivate", str(schedule["id"]), "--json")
    assert json.loads(off.stdout)["deactivated"] is True
    on = tickwork(env, "schedules", "activate", str(schedule["id"]))
    assert re.search(r"^deactivated:\s+no$", on.stdout, re.MULTILINE)

    deleted = tickwork(env, "schedules", "delete", str(schedule["id"]))
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == (
        f"deleted schedule {schedule['id']} of load test {load_test_id}: it fires no more; "
        "its runs stay"
    )
    gone = tickwork(env, "schedules", "show", str(schedule["id"]))
    assert gone.returncode == 1
    assert "not found" in gone.stderr.lower()


def test_schedules_set_with_a_bad_body_prints_each_problem_and_changes_nothing(
    api: Client, env: dict[str, str]
) -> None:
    load_test_id = _load_test(api)
    bad = json.dumps(
        {"starts": "2030-01-01T00:00:00", "cron": {"schedule": "0 0 L * *", "time_zone": "UTC"}}
    )
    result = tickwork(env, "schedules", "set", str(load_test_id), bad)
    assert result.returncode == 1
    assert sorted(line.split(":")[0] for line in result.stderr.splitlines()[1:]) == [
        "  cron.schedule",
        "  starts",
    ]
    assert tickwork(env, "schedules", "list", "--json").stdout.strip() == "[]"


# runs without a worker: listing and aborting


def test_runs_commands_start_with_idempotency_list_and_abort(
    api: Client, env: dict[str, str]
) -> None:
    load_test_id = _load_test(api)
    first = tickwork(env, "runs", "start", str(load_test_id), "--idempotency-key", "k1", "--json")
    again = tickwork(env, "runs", "start", str(load_test_id), "--idempotency-key", "k1", "--json")
    assert first.returncode == 0, first.stderr
    run_id = json.loads(first.stdout)["id"]
    assert json.loads(again.stdout)["id"] == run_id

    listing = tickwork(env, "runs", "list", "--load-test", str(load_test_id))
    assert [row[0] for row in _table(listing.stdout)[1:]] == [str(run_id)]

    aborted = tickwork(env, "runs", "abort", str(run_id))
    assert aborted.returncode == 0, aborted.stderr
    assert aborted.stdout.strip() == f"aborted run {run_id}"  # no worker had started it
    assert api.call("GET", f"/cloud/v6/test_runs/{run_id}")["status"] == "aborted"
    again_aborted = tickwork(env, "runs", "abort", str(run_id))
    assert again_aborted.returncode == 1
    assert "already" in again_aborted.stderr


def test_runs_list_is_newest_first_with_names_and_filters(api: Client, env: dict[str, str]) -> None:
    checkout = _load_test(api)
    other = _load_test(api)
    runs = [api.call("POST", f"/cloud/v6/load_tests/{checkout}/start")["id"] for _ in range(3)]
    runs.append(api.call("POST", f"/cloud/v6/load_tests/{other}/start")["id"])
    api.call("POST", f"/cloud/v6/test_runs/{runs[1]}/abort")

    everything = _table(tickwork(env, "runs", "list").stdout)
    assert everything[0] == [
        "ID",
        "LOAD_TEST",
        "STATUS",
        "RESULT",
        "CREATED",
        "DURATION",
        "TRIGGER",
    ]
    assert [row[0] for row in everything[1:]] == [str(r) for r in reversed(runs)]
    newest = everything[1]
    assert (newest[1], newest[2], newest[3], newest[5], newest[6]) == (
        f"{other} checkout",
        "created",
        "-",
        "-",  # it never ran
        "me@example.com",
    )
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", newest[4])

    limited = tickwork(env, "runs", "list", "--limit", "2").stdout.splitlines()
    assert [row.split()[0] for row in limited[1:3]] == [str(runs[3]), str(runs[2])]
    assert limited[3] == "(the newest 2: --limit N lists more)"

    aborted = _table(tickwork(env, "runs", "list", "--status", "aborted").stdout)
    assert [row[0] for row in aborted[1:]] == [str(runs[1])]
    one_test = _table(tickwork(env, "runs", "list", "--load-test", str(other)).stdout)
    assert [row[0] for row in one_test[1:]] == [str(runs[3])]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert tickwork(env, "runs", "list", "--since", tomorrow).stdout.strip() == "no test runs"
    recent = _table(tickwork(env, "runs", "list", "--since", "1h").stdout)
    assert len(recent) == 5
    bad = tickwork(env, "runs", "list", "--since", "yesterday")
    assert bad.returncode == 1
    assert "--since: 'yesterday' is not an ISO-8601 date-time" in bad.stderr
    assert tickwork(env, "runs", "list", "--status", "lost").returncode == 2  # usage


def test_an_unknown_run_is_exit_1_or_2_when_following(api: Client, env: dict[str, str]) -> None:
    shown = tickwork(env, "runs", "show", "999")
    followed = tickwork(env, "runs", "show", "999", "--follow")
    assert (shown.returncode, followed.returncode) == (1, 2)
    assert shown.stderr == followed.stderr == "tickwork: Test run 999 not found.\n"


# runs with a real worker and k6


def test_runs_start_wait_follows_to_a_failed_result_and_shows_the_crossed_threshold(
    api: Client, env: dict[str, str], worker: None, target: str
) -> None:
    load_test_id = _load_test(api, CROSSING.replace("TARGET", target))

    result = tickwork(env, "runs", "start", str(load_test_id), "--wait", timeout_s=120)

    assert result.returncode == 1, result.stdout + result.stderr
    status = result.stderr.splitlines()
    run_id = int(status[0].removeprefix("started run "))
    assert status[-1].startswith(f"run {run_id}: completed, failed (ran ")
    shown = result.stdout
    assert re.search(r"^status:\s+completed, failed$", shown, re.MULTILINE)
    assert re.search(r"^reason:\s+k6 thresholds were crossed$", shown, re.MULTILINE)
    assert re.search(r"^k6:\s+v1\.\d+\.\d+, exit code 99$", shown, re.MULTILINE)
    crossed = re.search(
        r"^  ✗ http_req_duration  p\(95\)<0\.001\s+p\(95\) = ([\d.]+) (ms|s), "
        r"([\d.]+) (ms|s) over the limit$",
        shown,
        re.MULTILINE,
    )
    assert crossed is not None, shown
    assert re.search(r"^  ✓ http_req_failed\s+rate<0\.01\s+rate = 0\.00 %$", shown, re.MULTILINE)
    assert re.search(r"^  http_req_duration: p50 .* p95 .* p99 .* max ", shown, re.MULTILINE)
    assert re.search(r"^  http_req_failed:\s+0\.00 % of 5 requests$", shown, re.MULTILINE)
    assert re.search(r"^  iterations:\s+5$", shown, re.MULTILINE)
    assert "{'" not in shown  # no Python reprs

    raw = tickwork(env, "runs", "show", str(run_id), "--json")
    assert json.loads(raw.stdout)["result"] == "failed"
    summary = json.loads(tickwork(env, "runs", "summary", str(run_id), "--json").stdout)
    assert summary["thresholds"][0]["expression"] == "p(95)<0.001"
    output = tickwork(env, "runs", "output", str(run_id)).stdout
    assert "thresholds on metrics 'http_req_duration' have been crossed" in output


def test_runs_start_wait_exits_0_when_passed_and_2_on_error(
    api: Client, env: dict[str, str], worker: None
) -> None:
    passed = tickwork(env, "runs", "start", str(_load_test(api, PASSING)), "--wait", timeout_s=120)
    broken = _load_test(api, "export default function ( {")
    error = tickwork(env, "runs", "start", str(broken), "--wait", timeout_s=120)
    error_id = error.stderr.splitlines()[0].removeprefix("started run ")

    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert re.search(r"^  ✓ checks\s+rate==1\s+rate = 100\.00 %$", passed.stdout, re.MULTILINE)
    assert re.search(r"^  http:\s+no HTTP requests$", passed.stdout, re.MULTILINE)
    assert error.returncode == 2, error.stdout + error.stderr
    assert re.search(r"^status:\s+completed, error$", error.stdout, re.MULTILINE)
    assert re.search(r"^reason:\s+k6 exited with 107$", error.stdout, re.MULTILINE)
    assert "note: k6 wrote no end-of-test summary" in error.stdout
    lines = error.stdout.splitlines()
    tail = lines[
        lines.index(f"output (its last lines; tickwork runs output {error_id} for more):") :
    ]
    assert any("Unexpected end of input" in line for line in tail[1:]), error.stdout


def test_a_failed_scheduled_run_is_followed_and_its_p95_is_in_the_trend(
    api: Client,
    env: dict[str, str],
    worker: None,
    scheduler: None,
    target: str,
    spawned: list[subprocess.Popen[str]],
) -> None:
    load_test_id = _load_test(api, CROSSING.replace("TARGET", target))
    args = ("runs", "show", "--load-test", str(load_test_id), "--follow")
    following = _popen(spawned, env, *args)
    waiting = _stderr_line(following, "line saying it waits")  # before the schedule exists
    # Set from here, in milliseconds: a CLI process starting slowly on a loaded host could
    # set it after its instant, which then never fires (a schedule fires nothing from before
    # it was set). `schedules set` itself is tested above.
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    path = f"/cloud/v6/load_tests/{load_test_id}/schedule"
    assert api.call("POST", path, {"starts": format_instant(due)})["next_run"] == (
        format_instant(due)
    )

    stdout, stderr = following.communicate(timeout=120)

    assert following.returncode == 1, stdout + stderr
    assert waiting == (
        f"load test {load_test_id} has no runs and no schedule: waiting for one to be started "
        "(Ctrl-C stops waiting)\n"
    )
    assert re.search(r"^trigger:\s+schedule \d+, occurrence ", stdout, re.MULTILINE)
    assert re.search(
        r"^  ✗ http_req_duration  p\(95\)<0\.001 .* over the limit$", stdout, re.MULTILINE
    )
    followed = subprocess.CompletedProcess(following.args, following.returncode, stdout, stderr)
    run_id = re.search(r"^run:\s+(\d+)$", followed.stdout, re.MULTILINE)
    assert run_id is not None
    p95 = api.call("GET", f"/cloud/v6/test_runs/{run_id[1]}/summary")["metrics"][
        "http_req_duration"
    ]["p95"]

    trend = _table(tickwork(env, "runs", "trend", str(load_test_id)).stdout)

    assert trend[0] == [
        "RUN",
        "CREATED",
        "RESULT",
        "DURATION",
        "P95",
        "P99",
        "MAX",
        "HTTP_FAILED",
        "ITERATIONS",
        "CROSSED",
    ]
    row = trend[1]
    assert (row[0], row[2], row[-1]) == (run_id[1], "failed", "http_req_duration: p(95)<0.001")
    assert float(row[4].split()[0]) == pytest.approx(p95 if p95 < 1000 else p95 / 1000, rel=0.01)
    schedules = _table(tickwork(env, "schedules", "list").stdout)
    assert schedules[1][-1] == f"{run_id[1]} failed"


def test_ctrl_c_stops_following_not_the_run_and_abort_says_what_it_did(
    api: Client, env: dict[str, str], worker: None, spawned: list[subprocess.Popen[str]]
) -> None:
    run_id = api.call("POST", f"/cloud/v6/load_tests/{_load_test(api, LONG)}/start")["id"]
    _wait_for(lambda: api.call("GET", f"/cloud/v6/test_runs/{run_id}")["status"] == "running")
    following = _popen(spawned, env, "runs", "show", str(run_id), "--follow", at_a_terminal=True)
    first = _stderr_line(following, "status line")  # following: the run's status is printed
    following.send_signal(signal.SIGINT)
    try:
        stdout, stderr = following.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        state = _signal_state(following.pid)
        following.kill()
        stdout, stderr = following.communicate(timeout=30)
        raise AssertionError(
            f"still following 30 s after SIGINT; first line {first!r}, /proc: {state}, "
            f"stdout {stdout!r}, stderr {stderr!r}"
        ) from None

    assert first.startswith(f"run {run_id}: running, ")
    assert following.returncode == 130
    assert stdout == ""
    assert f"stopped following run {run_id}; it goes on (tickwork runs abort {run_id} " in stderr
    assert api.call("GET", f"/cloud/v6/test_runs/{run_id}")["status"] == "running"

    aborted = tickwork(env, "runs", "abort", str(run_id))
    assert aborted.returncode == 0, aborted.stderr
    # What it did: stopped it, or (usually, the worker taking a moment) asked its worker to.
    assert aborted.stdout.startswith(
        (f"asked run {run_id} to stop: it is running, ", f"aborted run {run_id}\n")
    ), aborted.stdout
    _wait_for(lambda: api.call("GET", f"/cloud/v6/test_runs/{run_id}")["status"] == "aborted")


def _signal_state(pid: int) -> str:
    """The signal masks and state /proc gives for a process ("" when it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return ""
    wanted = ("State", "Threads", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
    lines = [line for line in status.splitlines() if line.startswith(wanted)]
    return "; ".join([*lines, f"wchan {wchan}"])


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_status_line_is_rewritten_in_place(
    api: Client, env: dict[str, str], worker: None
) -> None:
    run_id = api.call("POST", f"/cloud/v6/load_tests/{_load_test(api, PASSING)}/start")["id"]
    terminal = _Terminal()

    run = follow(api, run_id, out=terminal, poll_s=0.05)

    assert run["result"] == "passed"
    updates = terminal.getvalue().split("\r\033[K")
    assert updates[0] == ""
    assert all(u.startswith(f"run {run_id}: ") and "\n" not in u for u in updates[1:-1])
    assert re.fullmatch(rf"run {run_id}: completed, passed \(ran \d+ s\)\n", updates[-1])


# no token, doctor, settings


def test_client_without_a_token_says_how_to_give_one(env: dict[str, str]) -> None:
    del env["TICKWORK_API_TOKEN"]
    result = tickwork(env, "schedules", "list")
    assert result.returncode == 2
    assert "TICKWORK_API_TOKEN" in result.stderr


def test_doctor_passes_on_good_settings(env: dict[str, str]) -> None:
    result = tickwork(env, "doctor")
    assert result.returncode == 0, result.stdout
    assert "[ok] redis:" in result.stdout
    assert "[ok] clock:" in result.stdout


def test_doctor_fails_on_unreachable_redis_and_says_what_to_fix(env: dict[str, str]) -> None:
    env["TICKWORK_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    result = tickwork(env, "doctor")
    assert result.returncode == 1
    assert "[fail] redis:" in result.stdout
    assert "fix: start Redis or correct TICKWORK_REDIS_URL" in result.stdout


def test_doctor_names_each_invalid_setting(env: dict[str, str]) -> None:
    env["TICKWORK_LEASE_TTL_SECONDS"] = "soon"
    result = tickwork(env, "doctor")
    assert result.returncode == 1
    assert "TICKWORK_LEASE_TTL_SECONDS" in result.stdout


def test_invalid_settings_stop_a_daemon_at_start_with_one_line_per_problem(
    env: dict[str, str],
) -> None:
    env["TICKWORK_LEASE_TTL_SECONDS"] = "0"
    env["TICKWORK_REDIS_URL"] = "http://nope"
    result = tickwork(env, "scheduler", "--health-port", "0")
    assert result.returncode == 2
    problems = [line for line in result.stderr.splitlines() if line.startswith("TICKWORK_")]
    assert [p.split(":")[0] for p in problems] == [
        "TICKWORK_REDIS_URL",
        "TICKWORK_LEASE_TTL_SECONDS",
    ]


def test_schedules_occurrences_health_and_audit_show_what_happened_and_who_did_it(
    api: Client, env: dict[str, str], scheduler: None
) -> None:
    # Given a schedule set through the CLI, due in two seconds and hourly after that
    load_test = _load_test(api)
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    body = json.dumps(
        {"starts": format_instant(starts), "recurrence_rule": {"frequency": "HOURLY"}}
    )
    set_ = tickwork(env, "schedules", "set", str(load_test), body, "--json")
    assert set_.returncode == 0, set_.stderr
    sid = json.loads(set_.stdout)["id"]
    _wait_for(
        lambda: len(api.call("GET", f"/cloud/v6/load_tests/{load_test}/test_runs")["value"]) == 1
    )

    # Then its occurrences say the first fired, its health counts it, and its audit names us
    after = format_instant(starts - timedelta(seconds=1))
    shown = tickwork(env, "schedules", "occurrences", str(sid), "--after", after, "--limit", "2")
    assert shown.returncode == 0, shown.stderr
    header, first, second = _table(shown.stdout)
    assert header[:3] == ["INSTANT", "LOCAL", "OUTCOME"]
    assert first[0] == format_instant(starts)
    assert first[2] == "fired"
    assert second[2] == "upcoming"

    health = tickwork(env, "schedules", "health", str(sid))
    assert health.returncode == 0, health.stderr
    lines = dict(line.split(":", 1) for line in health.stdout.splitlines())
    assert lines["missed"].strip() == "0"
    assert lines["fired"].strip() in ("1 on time, 0 late", "0 on time, 1 late")

    audit = tickwork(env, "schedules", "audit", str(sid))
    assert audit.returncode == 0, audit.stderr
    (_, created) = _table(audit.stdout)
    assert created[1:4] == ["created", "me@example.com", "cli"]


def test_schedules_pause_with_a_note_and_bulk_resume_say_what_changed(
    api: Client, env: dict[str, str]
) -> None:
    load_test = _load_test(api)
    body = json.dumps({"starts": "2030-01-01T00:00:00Z", "recurrence_rule": {"frequency": "DAILY"}})
    sid = json.loads(tickwork(env, "schedules", "set", str(load_test), body, "--json").stdout)["id"]

    paused = tickwork(
        env,
        "schedules",
        "deactivate",
        str(sid),
        "--note",
        "freeze",
        "--resume-at",
        "2030-02-01",
        "--json",
    )
    assert paused.returncode == 0, paused.stderr
    assert json.loads(paused.stdout)["paused"]["note"] == "freeze"
    assert json.loads(paused.stdout)["paused"]["resume_at"] == "2030-02-01T00:00:00Z"

    project = api.call("GET", f"/cloud/v6/load_tests/{load_test}")["project_id"]
    resumed = tickwork(env, "schedules", "resume", "--project", str(project))
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines() == [f"re-activated: {sid}", "unchanged: none"]


def test_blackouts_add_list_show_and_delete_and_the_preview_marks_what_they_skip(
    api: Client, env: dict[str, str]
) -> None:
    load_test = _load_test(api)
    body = json.dumps({"starts": "2030-01-01T00:00:00Z", "recurrence_rule": {"frequency": "DAILY"}})
    sid = json.loads(tickwork(env, "schedules", "set", str(load_test), body, "--json").stdout)["id"]

    added = tickwork(
        env,
        "blackouts",
        "add",
        "--schedule",
        str(sid),
        "--cron",
        "0 0 1 1 *",
        "--duration",
        "7200",
        "--policy",
        "skip",
        "--note",
        "new year",
    )
    assert added.returncode == 0, added.stderr
    lines = dict(line.split(":", 1) for line in added.stdout.splitlines())
    window_id = lines["id"].strip()
    assert lines["when"].strip() == "0 0 1 1 * UTC for 7200 s"
    assert lines["next"].strip().startswith("2027-01-01T00:00:00Z - 2027-01-01T02:00:00Z")

    listed = tickwork(env, "blackouts", "list", "--schedule", str(sid))
    (header, row) = _table(listed.stdout)
    assert (header[0], row[0], row[1]) == ("ID", window_id, "skip")
    assert tickwork(env, "blackouts", "list").stdout.strip() == "no blackout windows"

    shown = tickwork(
        env, "schedules", "occurrences", str(sid), "--after", "2029-12-31", "--limit", "2"
    )
    (_, first, second) = _table(shown.stdout)
    assert first[2:4] == ["blackout", f"window {window_id}"]
    assert second[2] == "upcoming"

    bad = tickwork(env, "blackouts", "add", "--from", "2030-01-01", "--schedule", str(sid))
    assert bad.returncode == 1
    assert "to" in bad.stderr

    deleted = tickwork(env, "blackouts", "delete", window_id, "--schedule", str(sid))
    assert deleted.stdout.strip() == f"deleted blackout window {window_id}"
    assert tickwork(env, "blackouts", "show", window_id, "--schedule", str(sid)).returncode == 1
