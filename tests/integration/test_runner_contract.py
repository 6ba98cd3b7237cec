"""One contract over every runner, then what only k6 does. k6 is the real binary.

Each runner passes a passing test, fails a failing one, stops at its time limit, and gives up
promptly when cancelled.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tickwork.core.egress import EgressPolicy
from tickwork.core.lifecycle import Outcome
from tickwork.core.runner_specs import CommandSpec, K6Spec, RunnerSpec, WebhookSpec
from tickwork.worker.runners import RunInput, RunnerOptions, Verdict, runner_for
from tickwork.worker.runners.k6 import find_k6
from tickwork.worker.runners.webhook import SIGNATURE_HEADER

SECRET = "contract-secret-0123"
OPTIONS = RunnerOptions(
    command_allowed=("sh",),
    webhook_secret=SECRET,
    # The webhook receiver is on loopback, which the egress policy refuses unless allowed.
    egress=EgressPolicy.from_settings(allow_private=False, allowed_cidrs=["127.0.0.0/8"]),
    stop_grace_s=2.0,
)

K6_PASS = b"""
import { sleep } from 'k6';
export const options = { iterations: 1, thresholds: { checks: ['rate==1'] } };
export default function () { sleep(0.1); }
"""
K6_FAIL = b"""
import { check } from 'k6';
export const options = { iterations: 2, thresholds: { checks: ['rate>0.99'] } };
export default function () { check(1, { 'is two': (v) => v === 2 }); }
"""
K6_LONG = b"""
import { sleep } from 'k6';
export const options = { vus: 1, duration: '30s' };
export default function () { sleep(0.1); }
"""


class _Hook(BaseHTTPRequestHandler):
    """/pass answers 200, /fail 422, /slow sleeps 3 s; all check the signature first."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        status = {"/pass": 200, "/fail": 422, "/slow": 200, "/down": 503}[self.path]
        if not hmac.compare_digest(expected, self.headers.get(SIGNATURE_HEADER, "")):
            status = 401
        if self.path == "/slow":
            time.sleep(3)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def hook_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@dataclass(frozen=True)
class Case:
    """A runner's spec (and script) for each behaviour of the contract."""

    passing: tuple[RunnerSpec, bytes | None]
    failing: tuple[RunnerSpec, bytes | None]
    slow: tuple[RunnerSpec, bytes | None]  # longer than any limit below
    retrying: tuple[RunnerSpec, bytes | None]  # what a cancel interrupts


def _case(kind: str, hook_url: str) -> Case:
    if kind == "k6":
        return Case(
            (K6Spec(), K6_PASS), (K6Spec(), K6_FAIL), (K6Spec(), K6_LONG), (K6Spec(), K6_LONG)
        )
    if kind == "command":
        return Case(
            (CommandSpec(argv=("sh", "-c", "exit 0")), None),
            (CommandSpec(argv=("sh", "-c", "exit 1")), None),
            (CommandSpec(argv=("sh", "-c", "sleep 30")), None),
            (CommandSpec(argv=("sh", "-c", "sleep 30")), None),
        )
    return Case(
        (WebhookSpec(url=f"{hook_url}/pass"), None),
        (WebhookSpec(url=f"{hook_url}/fail"), None),
        (WebhookSpec(url=f"{hook_url}/slow"), None),
        (WebhookSpec(url=f"{hook_url}/down", max_attempts=10), None),
    )


@pytest.fixture(params=["k6", "command", "webhook"])
def case(request: pytest.FixtureRequest, hook_url: str) -> Case:
    return _case(request.param, hook_url)


def _run(
    spec: tuple[RunnerSpec, bytes | None],
    work_dir: Path,
    *,
    limit_s: float = 30.0,
    cancel: threading.Event | None = None,
) -> Verdict:
    run = RunInput(
        run_id=1,
        load_test_id=2,
        project_id=3,
        stack=1,
        created=datetime.now(UTC),
        script=spec[1],
        work_dir=work_dir,
        time_limit_s=limit_s,
    )
    return runner_for(spec[0], OPTIONS).run(run, cancel or threading.Event())


def test_passing_test_passes(case: Case, tmp_path: Path) -> None:
    assert _run(case.passing, tmp_path).outcome is Outcome.PASSED


def test_failing_test_fails(case: Case, tmp_path: Path) -> None:
    assert _run(case.failing, tmp_path).outcome is Outcome.FAILED


@pytest.mark.slow  # waits out a run's time limit (1 s)
def test_time_limit_is_kept(case: Case, tmp_path: Path) -> None:
    started = time.monotonic()
    verdict = _run(case.slow, tmp_path, limit_s=1.0)
    assert verdict.outcome is Outcome.TIMED_OUT
    assert time.monotonic() - started < 3.0


def test_cancel_stops_the_runner_promptly(case: Case, tmp_path: Path) -> None:
    cancel = threading.Event()
    threading.Timer(0.7, cancel.set).start()
    started = time.monotonic()
    verdict = _run(case.retrying, tmp_path, cancel=cancel)
    assert verdict.outcome is Outcome.ABORTED_BY_USER
    assert time.monotonic() - started < 2.5


def test_k6_keeps_its_summary_and_output_tail(tmp_path: Path) -> None:
    verdict = _run((K6Spec(), K6_FAIL), tmp_path)
    details = verdict.details
    assert details["exit_code"] == 99
    assert details["summary"]["metrics"]["checks"]["fails"] == 2
    assert "is two" in details["output_tail"]
    assert verdict.detail == "k6 thresholds were crossed"


@pytest.mark.slow  # waits out a run's time limit (1 s)
def test_k6_stopped_at_its_limit_still_keeps_its_summary(tmp_path: Path) -> None:
    verdict = _run((K6Spec(), K6_LONG), tmp_path, limit_s=1.0)
    assert verdict.outcome is Outcome.TIMED_OUT
    assert verdict.details["summary"]["metrics"]["iterations"]["count"] > 0


def test_k6_script_error_is_an_error(tmp_path: Path) -> None:
    verdict = _run((K6Spec(), b"export default function ( {"), tmp_path)
    assert verdict.outcome is Outcome.ERROR
    assert verdict.details["exit_code"] == 107  # k6's "script exception"


def test_k6_env_reaches_the_script(tmp_path: Path) -> None:
    script = b"""
    export const options = { iterations: 1 };
    export default function () { if (__ENV.WANTED !== 'yes') { throw new Error('no env'); } }
    export function handleSummary() { return { stdout: 'wanted=' + __ENV.WANTED + '\\n' }; }
    """
    verdict = _run((K6Spec(env={"WANTED": "yes"}), script), tmp_path)
    assert verdict.outcome is Outcome.PASSED
    assert "wanted=yes" in verdict.details["output_tail"]


def test_k6_without_script_or_binary_is_an_error(tmp_path: Path) -> None:
    assert _run((K6Spec(), None), tmp_path).outcome is Outcome.ERROR
    broken = RunnerOptions(k6_path=str(tmp_path / "no-k6"))
    run = RunInput(
        run_id=1,
        load_test_id=2,
        project_id=3,
        stack=1,
        created=datetime.now(UTC),
        script=K6_PASS,
        work_dir=tmp_path,
        time_limit_s=5,
    )
    verdict = runner_for(K6Spec(), broken).run(run, threading.Event())
    assert verdict.outcome is Outcome.ERROR
    assert verdict.detail == f"TICKWORK_K6_PATH ({tmp_path / 'no-k6'}) is not an executable file"


def test_the_k6_wheel_binary_is_found(tmp_path: Path) -> None:
    found = find_k6(None)
    assert found is not None
    assert Path(found).name == "k6"
    configured = tmp_path / "k6"
    configured.write_text("#!/bin/sh\n")
    configured.chmod(0o755)
    assert find_k6(str(configured)) == str(configured)  # a configured executable wins
    assert find_k6(str(tmp_path / "missing")) is None  # and a configured path that is none
