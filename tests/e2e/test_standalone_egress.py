"""`tickwork standalone` lets webhooks reach this host (a first try's receiver runs here) and
still refuses private addresses elsewhere, as a worker does by default."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .test_standalone import _api, _call, _env, _stop, start_standalone

pytestmark = pytest.mark.slow


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[str]]]:
    posted: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            posted.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", posted
    server.shutdown()
    server.server_close()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the webhook receiver's server thread did not stop"


def _ended(base: str, token: str, run_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        run: dict[str, Any] = _call(f"{base}/cloud/v6/test_runs/{run_id}", token)
        if run["status"] == "completed":
            return run
        assert time.monotonic() < deadline, f"run {run_id} never ended: {run}"
        time.sleep(0.1)


def _webhook_run(base: str, token: str, name: str, url: str) -> dict[str, Any]:
    test = _call(
        f"{base}/cloud/v6/projects/1/load_tests",
        token,
        "POST",
        {"name": name, "runner": {"type": "webhook", "url": url, "max_attempts": 1}},
    )
    run = _call(f"{base}/cloud/v6/load_tests/{test['id']}/start", token, "POST")
    return _ended(base, token, run["id"])


@pytest.mark.timeout(180)
def test_the_standalone_s_webhooks_reach_loopback_but_not_a_private_address(
    tmp_path: Path, receiver: tuple[str, list[str]]
) -> None:
    url, posted = receiver
    env = _env(TICKWORK_WEBHOOK_SECRET="standalone-egress-secret")
    process, banner = start_standalone(tmp_path, env=env)
    try:
        base, token = _api(banner)
        local = _webhook_run(base, token, "local", f"{url}/hook")
        private = _webhook_run(base, token, "private", "http://10.0.0.5:8080/hook")
    finally:
        _stop(process)

    assert local["result"] == "passed", local
    assert posted == ["/hook"]
    assert private["result"] == "error", private
    assert private["status_details"]["extra"]["message"] == (
        "error: egress refused: 10.0.0.5 is a private address; allow it with "
        "TICKWORK_EGRESS_ALLOW_PRIVATE or TICKWORK_EGRESS_ALLOWED_CIDRS"
    )
