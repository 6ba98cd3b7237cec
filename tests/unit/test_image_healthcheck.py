"""deploy/docker/healthcheck.py, the image's one HEALTHCHECK for every role, run for real.

Docker cannot run here, but the check needs only what a test has: /proc and loopback. Real
``tickwork api``, ``scheduler`` and ``worker`` processes are started with their health and
metrics flags, the script is pointed at each process as it finds PID 1 in a container, and it
must pass by asking the port that role serves. Processes standing in for a broken role (a port
that answers 503, a port nobody listens on) must fail it. The script's reading of a command
line is held to the CLI's own parser, and each process's real /metrics to the dashboard.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tickwork.embedded import free_port

from .test_deploy import (
    HEALTHCHECK_SCRIPT,
    dashboard_queries,
    http_listener,
    image_check_asks,
    loopback,
    readme_metrics,
)

# Slow: each case starts the roles as real processes.
pytestmark = pytest.mark.slow

START_TIMEOUT_S = 60  # three interpreters importing FastAPI and RQ on a busy 2-core host


@dataclass
class Check:
    returncode: int
    output: str


def healthcheck(pid: int) -> Check:
    """The image's HEALTHCHECK, as Docker runs it, for the tickwork process ``pid``."""
    done = subprocess.run(
        [sys.executable, str(HEALTHCHECK_SCRIPT), str(pid)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return Check(done.returncode, done.stdout + done.stderr)


# --- the script reads a command line as the CLI does ----------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["api"],
        ["api", "--port", "9000"],
        ["api", "--host=0.0.0.0", "--port=9001"],
        ["standalone", "--port", "9002"],
        ["scheduler"],
        ["scheduler", "--health-port", "0"],
        ["scheduler", "--health-host", "::", "--health-port", "9003"],
        ["worker"],
        ["worker", "--queue", "a", "--metrics-port", "9004", "--burst"],
        ["worker", "--metrics-port", "9005", "--metrics-port", "9006"],
        ["worker", "--metrics-host", "0.0.0.0", "--metrics-port", "9007"],
        ["doctor"],
    ],
    ids=" ".join,
)
def test_healthcheck_asks_where_the_cli_would_listen(command: list[str]) -> None:
    listener = http_listener(command, f"`tickwork {' '.join(command)}`")
    expected = None
    if listener is not None:
        expected = (loopback(listener.host), listener.port, listener.health)
    assert image_check_asks(command) == expected


# --- real processes -------------------------------------------------------------------------


@dataclass
class Role:
    command: list[str]
    popen: subprocess.Popen[bytes]
    port: int
    log: Path

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as r:
            body: bytes = r.read()
        return body.decode()


@pytest.fixture(scope="module")
def roles(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Role]]:
    """A real API, scheduler and worker, each with the flags the deploy files give it (on
    loopback and free ports here), sharing one Redis key prefix of their own."""
    prefix = f"hc{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWORK_")} | {
        "TICKWORK_REDIS_URL": redis_url,
        "TICKWORK_KEY_PREFIX": prefix,
        "TICKWORK_QUEUES": json.dumps([f"{prefix}-runs"]),
        "TICKWORK_TOKENS": json.dumps(
            [
                {
                    "token": "healthcheck-test-token-0123456789",
                    "email": "hc@example.com",
                    "stacks": [1],
                }
            ]
        ),
    }
    logs = tmp_path_factory.mktemp("healthcheck")
    started: dict[str, Role] = {}
    flags = {
        "api": ("--host", "--port"),
        "scheduler": ("--health-host", "--health-port"),
        "worker": ("--metrics-host", "--metrics-port"),
    }
    try:
        for role, (host_flag, port_flag) in flags.items():
            port = free_port()
            command = [role, host_flag, "127.0.0.1", port_flag, str(port)]
            log = logs / f"{role}.log"
            with log.open("wb") as out:
                popen = subprocess.Popen(
                    [sys.executable, "-m", "tickwork", *command],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            started[role] = Role(command, popen, port, log)
        yield started
    finally:
        for process in started.values():
            process.popen.terminate()
        for process in started.values():
            try:
                process.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait(timeout=30)


def passes_in_time(role: Role) -> Check:
    """Poll the check, as Docker does during the start period, until it passes."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        check = healthcheck(role.popen.pid)
        if check.returncode == 0:
            return check
        assert role.popen.poll() is None, f"{role.command} exited:\n{role.log.read_text()}"
        assert time.monotonic() < deadline, (
            f"{role.command}: {check.output}\n{role.log.read_text()}"
        )
        time.sleep(0.2)


@pytest.mark.parametrize("name", ["api", "scheduler", "worker"])
def test_healthcheck_passes_by_asking_each_running_role_on_its_own_port(
    roles: dict[str, Role], name: str
) -> None:
    role = roles[name]
    check = passes_in_time(role)
    path = "/metrics" if name == "worker" else "/healthz"
    assert f"http://127.0.0.1:{role.port}{path}: 200" in check.output


@pytest.mark.parametrize("name", ["api", "scheduler", "worker"])
def test_each_role_exports_the_metrics_the_dashboard_charts_for_it(
    roles: dict[str, Role], name: str
) -> None:
    passes_in_time(roles[name])
    families = set(re.findall(r"^# TYPE (\w+) ", roles[name].metrics(), re.MULTILINE))
    charted = " ".join(expr for _, expr in dashboard_queries())
    expected = [
        metric
        for metric, process in readme_metrics().items()
        if process == name and metric in charted
    ]
    assert expected, f"the dashboard charts no {name} metric"
    missing = [
        m for m in expected if m not in families and m.removesuffix("_total") not in families
    ]
    assert not missing, f"`tickwork {name}` does not export {missing} (it has {sorted(families)})"


# --- what must fail the check ---------------------------------------------------------------

# Python standing in for a broken tickwork process: its command line names a role and a port
# (so the check finds it, as it finds PID 1), and it answers 503 there, or listens nowhere.
ANSWERS_503 = """
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503); self.end_headers()
    def log_message(self, *args): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[-1])), Handler).serve_forever()
"""
SILENT = "import time; time.sleep(120)"


@pytest.fixture
def stand_in() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        process.kill()
        process.wait(timeout=30)


def start_stand_in(processes: list[subprocess.Popen[bytes]], code: str, *command: str) -> int:
    popen = subprocess.Popen([sys.executable, "-c", code, "tickwork", *command])
    processes.append(popen)
    return popen.pid


def test_healthcheck_fails_when_the_role_answers_other_than_200(
    stand_in: list[subprocess.Popen[bytes]],
) -> None:
    port = free_port()
    pid = start_stand_in(stand_in, ANSWERS_503, "scheduler", "--health-port", str(port))
    deadline = time.monotonic() + START_TIMEOUT_S
    check = healthcheck(pid)
    while "503" not in check.output:  # until the stand-in listens
        assert time.monotonic() < deadline, check.output
        time.sleep(0.1)
        check = healthcheck(pid)
    assert check.returncode == 1
    assert f"http://127.0.0.1:{port}/healthz" in check.output


def test_healthcheck_fails_when_nothing_listens_on_the_roles_port(
    stand_in: list[subprocess.Popen[bytes]],
) -> None:
    port = free_port()
    pid = start_stand_in(stand_in, SILENT, "worker", "--metrics-port", str(port))
    check = healthcheck(pid)
    assert check.returncode == 1
    assert f"http://127.0.0.1:{port}/metrics" in check.output


def test_healthcheck_passes_a_worker_that_serves_nothing_while_it_runs(
    stand_in: list[subprocess.Popen[bytes]],
) -> None:
    pid = start_stand_in(stand_in, SILENT, "worker", "--queue", "q")
    check = healthcheck(pid)
    assert check.returncode == 0
    assert "serves nothing to ask" in check.output


def test_healthcheck_fails_where_no_tickwork_process_runs(
    stand_in: list[subprocess.Popen[bytes]],
) -> None:
    popen = subprocess.Popen([sys.executable, "-c", SILENT])
    stand_in.append(popen)
    check = healthcheck(popen.pid)
    assert check.returncode == 1
    assert "no tickwork process" in check.output
