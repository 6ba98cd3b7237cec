"""The webhook runner against a local receiver that checks the HMAC-SHA256 signature, and
the egress policy it connects under (the receiver is on loopback, so the tests allow it)."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tickwork import egress
from tickwork.core.egress import EgressPolicy
from tickwork.core.lifecycle import Outcome
from tickwork.core.runner_specs import WebhookSpec
from tickwork.worker.runners import RunInput, RunnerOptions, WebhookRunner
from tickwork.worker.runners.webhook import SIGNATURE_HEADER

SECRET = "s3cret-s3cret-s3cret"
LOOPBACK = EgressPolicy.from_settings(allow_private=False, allowed_cidrs=["127.0.0.0/8"])


@dataclass
class Receiver:
    """Answers with ``statuses`` in turn (the last one repeats), after ``delay_s``; answers
    401 to a request whose signature does not verify under ``secret``."""

    statuses: list[int] = field(default_factory=lambda: [200])
    delay_s: float = 0.0
    secret: str = SECRET
    calls: list[tuple[float, dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0
    server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append((time.monotonic(), dict(self.headers), body))
                time.sleep(receiver.delay_s)
                expected = (
                    "sha256=" + hmac.new(receiver.secret.encode(), body, hashlib.sha256).hexdigest()
                )
                given = self.headers.get(SIGNATURE_HEADER, "")
                status = receiver.statuses[min(len(receiver.calls), len(receiver.statuses)) - 1]
                if not hmac.compare_digest(expected, given):
                    status = 401
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    for receiver in started:
        receiver.stop()


def _start(receivers: list[Receiver], **kwargs: Any) -> Receiver:
    receiver = Receiver(**kwargs).start()
    receivers.append(receiver)
    return receiver


def _input(tmp_path: Path, limit_s: float = 10.0) -> RunInput:
    return RunInput(
        run_id=41,
        load_test_id=7,
        project_id=3,
        stack=1,
        schedule_id=9,
        created=datetime(2026, 11, 23, 12, tzinfo=UTC),
        work_dir=tmp_path,
        time_limit_s=limit_s,
    )


def _runner(
    url: str,
    *,
    attempts: int = 4,
    secret: str | None = SECRET,
    policy: EgressPolicy = LOOPBACK,
    resolve: egress.Resolver = egress.system_resolver,
) -> WebhookRunner:
    spec = WebhookSpec(url=url, max_attempts=attempts, headers={"X-Team": "perf"})
    options = RunnerOptions(webhook_secret=secret, egress=policy)
    return WebhookRunner(spec, options, backoff_first_s=0.1, resolve=resolve)


def test_signed_post_answered_2xx_passes(tmp_path: Path, receivers: list[Receiver]) -> None:
    receiver = _start(receivers)
    verdict = _runner(receiver.url).run(_input(tmp_path), threading.Event())
    assert verdict.outcome is Outcome.PASSED
    [(_, headers, body)] = receiver.calls
    assert json.loads(body) == {
        "event": "test_run",
        "run_id": 41,
        "load_test_id": 7,
        "project_id": 3,
        "stack": 1,
        "schedule_id": 9,
        "scheduled_for": None,
        "created": "2026-11-23T12:00:00Z",
        "time_limit_s": 10.0,
    }
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Team"] == "perf"
    assert headers["X-Tickwork-Run-Id"] == "41"
    assert verdict.details["attempts"][0]["status"] == 200


def test_wrong_secret_fails_without_retry(tmp_path: Path, receivers: list[Receiver]) -> None:
    receiver = _start(receivers, secret="another-secret-entirely")
    verdict = _runner(receiver.url).run(_input(tmp_path), threading.Event())
    assert verdict.outcome is Outcome.FAILED
    assert verdict.detail == "the webhook answered 401"
    assert len(receiver.calls) == 1


def test_5xx_is_retried_with_growing_backoff_and_same_signed_body(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    receiver = _start(receivers, statuses=[500, 502, 503, 204])
    verdict = _runner(receiver.url).run(_input(tmp_path), threading.Event())
    assert verdict.outcome is Outcome.PASSED
    times = [at for at, _, _ in receiver.calls]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 3
    assert gaps[0] >= 0.05  # first backoff: 0.1 s with jitter down to half
    assert gaps[2] > gaps[0]  # 0.4 s (jittered to >= 0.2) after the third attempt
    assert len({body for _, _, body in receiver.calls}) == 1
    assert [h["X-Tickwork-Attempt"] for _, h, _ in receiver.calls] == ["1", "2", "3", "4"]
    assert [a["status"] for a in verdict.details["attempts"]] == [500, 502, 503, 204]


def test_5xx_on_every_attempt_fails(tmp_path: Path, receivers: list[Receiver]) -> None:
    receiver = _start(receivers, statuses=[503])
    verdict = _runner(receiver.url, attempts=3).run(_input(tmp_path), threading.Event())
    assert verdict.outcome is Outcome.FAILED
    assert verdict.detail == "the webhook answered 503 after 3 attempts"
    assert len(receiver.calls) == 3


def test_connection_errors_are_retried_until_the_receiver_is_up(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    with socket.socket() as probe:  # a port with nobody listening, for now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    late = Receiver(port=port)
    timer = threading.Timer(0.25, lambda: receivers.append(late.start()))
    timer.start()
    verdict = _runner(f"http://127.0.0.1:{port}/hook", attempts=6).run(
        _input(tmp_path), threading.Event()
    )
    timer.join(timeout=30)
    assert not timer.is_alive(), "the late receiver was never started"
    assert verdict.outcome is Outcome.PASSED
    attempts = verdict.details["attempts"]
    assert "error" in attempts[0]
    assert attempts[-1]["status"] == 200


def test_unreachable_receiver_is_an_error(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    verdict = _runner(f"http://127.0.0.1:{port}/", attempts=2).run(
        _input(tmp_path), threading.Event()
    )
    assert verdict.outcome is Outcome.ERROR
    assert "could not be reached after 2 attempts" in verdict.detail


def test_slow_receiver_times_out(tmp_path: Path, receivers: list[Receiver]) -> None:
    receiver = _start(receivers, delay_s=2.0)
    started = time.monotonic()
    verdict = _runner(receiver.url).run(_input(tmp_path, limit_s=0.5), threading.Event())
    assert verdict.outcome is Outcome.TIMED_OUT
    assert time.monotonic() - started < 1.5


def test_cancel_stops_the_retries(tmp_path: Path, receivers: list[Receiver]) -> None:
    receiver = _start(receivers, statuses=[500])
    cancel = threading.Event()
    cancel.set()
    verdict = _runner(receiver.url).run(_input(tmp_path), cancel)
    assert verdict.outcome is Outcome.ABORTED_BY_USER
    assert len(receiver.calls) == 1


def test_no_secret_configured_is_an_error_and_sends_nothing(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    receiver = _start(receivers)
    verdict = _runner(receiver.url, secret=None).run(_input(tmp_path), threading.Event())
    assert verdict.outcome is Outcome.ERROR
    assert receiver.calls == []


def test_redirect_is_not_followed(tmp_path: Path, receivers: list[Receiver]) -> None:
    receiver = _start(receivers, statuses=[302])
    verdict = _runner(receiver.url).run(_input(tmp_path), threading.Event())
    assert verdict.outcome is Outcome.FAILED
    assert len(receiver.calls) == 1


def test_a_receiver_answering_garbage_is_an_error_not_a_crash(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def answer_garbage() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")

    server = threading.Thread(target=answer_garbage, daemon=True)
    server.start()
    try:
        verdict = _runner(f"http://127.0.0.1:{port}/", attempts=2).run(
            _input(tmp_path), threading.Event()
        )
    finally:
        server.join(timeout=30)
        listener.close()
    assert not server.is_alive(), "the garbage answerer was not reached twice"
    assert verdict.outcome is Outcome.ERROR
    assert "after 2 attempts" in verdict.detail


def test_a_loopback_receiver_is_refused_by_default_and_gets_nothing(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    receiver = _start(receivers)

    verdict = _runner(receiver.url, policy=EgressPolicy()).run(_input(tmp_path), threading.Event())

    assert verdict.outcome is Outcome.ERROR
    assert verdict.detail == (
        "egress refused: 127.0.0.1 is a loopback address; allow it with "
        "TICKWORK_EGRESS_ALLOW_PRIVATE or TICKWORK_EGRESS_ALLOWED_CIDRS"
    )
    assert receiver.calls == []
    [attempt] = verdict.details["attempts"]  # refused is final: no retry
    assert attempt["refused"] is True


def test_allow_private_lets_a_loopback_receiver_be_reached(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    receiver = _start(receivers)
    policy = EgressPolicy(allow_private=True)

    verdict = _runner(receiver.url, policy=policy).run(_input(tmp_path), threading.Event())

    assert verdict.outcome is Outcome.PASSED
    assert len(receiver.calls) == 1


def test_localhost_resolves_to_loopback_and_is_refused_by_default(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    receiver = _start(receivers)
    url = f"http://localhost:{receiver.port}/hook"

    verdict = _runner(url, policy=EgressPolicy()).run(_input(tmp_path), threading.Event())

    assert verdict.outcome is Outcome.ERROR
    assert verdict.detail.startswith("egress refused: localhost resolved to ")
    assert "a loopback address" in verdict.detail
    assert receiver.calls == []


class Rebinding:
    """A name server whose answer changes between lookups, as a DNS-rebinding attacker's
    does: each lookup gets the next answer (the last one repeats)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.answers[min(len(self.lookups), len(self.answers)) - 1]


# In these tests 127.0.0.1 (where the receiver is, and what the policy allows) stands for a
# public address: a test cannot reach a real one.
ONLY_RECEIVER = EgressPolicy.from_settings(allow_private=False, allowed_cidrs=["127.0.0.1/32"])


def test_a_name_that_rebinds_to_a_private_address_is_refused_at_connect_time(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    receiver = _start(receivers, statuses=[503, 200])
    resolve = Rebinding(["127.0.0.1"], ["10.0.0.5"])
    url = f"http://hooks.example:{receiver.port}/hook"

    verdict = _runner(url, policy=ONLY_RECEIVER, resolve=resolve).run(
        _input(tmp_path), threading.Event()
    )

    assert verdict.outcome is Outcome.ERROR
    assert verdict.detail == (
        "egress refused: hooks.example resolved to 10.0.0.5, a private address; allow it "
        "with TICKWORK_EGRESS_ALLOW_PRIVATE or TICKWORK_EGRESS_ALLOWED_CIDRS"
    )
    # The first attempt reached the address it was checked at, under the name; the second
    # never connected anywhere.
    [(_, headers, _)] = receiver.calls
    assert headers["Host"] == f"hooks.example:{receiver.port}"
    assert resolve.lookups == ["hooks.example", "hooks.example"]  # once per attempt
    assert [a.get("status") for a in verdict.details["attempts"]] == [503, None]


def test_a_name_answering_an_allowed_and_a_metadata_address_is_refused_whole(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    receiver = _start(receivers)
    resolve = Rebinding(["127.0.0.1", "169.254.169.254"])
    url = f"http://hooks.example:{receiver.port}/hook"

    verdict = _runner(url, policy=EgressPolicy(allow_private=True), resolve=resolve).run(
        _input(tmp_path), threading.Event()
    )

    assert verdict.outcome is Outcome.ERROR
    assert verdict.detail == (
        "egress refused: hooks.example resolved to 169.254.169.254, a cloud metadata "
        "address, which webhooks may never reach"
    )
    assert receiver.calls == []


def test_a_checked_name_is_reached_at_its_address_with_its_name_as_host(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    receiver = _start(receivers)
    resolve = Rebinding(["127.0.0.1"])
    url = f"http://hooks.example:{receiver.port}/hook"

    verdict = _runner(url, policy=ONLY_RECEIVER, resolve=resolve).run(
        _input(tmp_path), threading.Event()
    )

    assert verdict.outcome is Outcome.PASSED
    [(_, headers, _)] = receiver.calls
    assert headers["Host"] == f"hooks.example:{receiver.port}"
