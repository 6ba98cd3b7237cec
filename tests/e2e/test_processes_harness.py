"""The end-to-end harness starts each process on a free port; another process can be given
the same port before it binds (seen once in CI: a scheduler died with EADDRINUSE while
another test's server answered on its port, and the failover test ran a scheduler short)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .processes import running, scheduler_env

pytestmark = pytest.mark.slow


class _Impostor(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # answers /healthz as a tickwork process would
        body = json.dumps({"status": "ok", "role": "standby"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def impostor() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Impostor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        thread.join(timeout=10)
        assert not thread.is_alive()


def test_a_process_whose_port_was_taken_answers_on_another_and_not_the_taker(
    redis_url: str, tmp_path: Path, impostor: int
) -> None:
    with running(scheduler_env(redis_url, lease_ttl_s=2), tmp_path) as processes:
        scheduler = processes._start(
            "scheduler", ("scheduler", "--health-port", "{port}"), impostor
        )
        processes.wait_healthy(scheduler)
        assert scheduler.port != impostor
        assert scheduler.alive
        assert "Address already in use" in scheduler.log.read_text()
        health = scheduler.health()
        assert health is not None
        assert "term" in health  # the scheduler's own answer, not the impostor's
