"""At run time: a webhook run whose target the worker's egress policy refuses ends in error
with the reason, and its receiver gets nothing; allowed, the same run passes."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis

from tickwork.core.egress import EgressPolicy
from tickwork.store import Store
from tickwork.worker.executor import WorkerConfig, execute
from tickwork.worker.runners import RunnerOptions

from .seeding import created_run, load_test

SECRET = "egress-runs-secret-0123"


@pytest.fixture
def store(redis_client: redis.Redis) -> Store:
    return Store(redis_client, f"t{uuid.uuid4().hex[:8]}")


@pytest.fixture
def receiver() -> Iterator[tuple[int, list[str]]]:
    """A local receiver answering 200: its port and the paths it was posted."""
    posted: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            posted.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server.server_address[1], posted
    server.shutdown()
    server.server_close()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the webhook receiver's server thread did not stop"


def _config(policy: EgressPolicy) -> WorkerConfig:
    return WorkerConfig(
        runners=RunnerOptions(webhook_secret=SECRET, egress=policy),
        heartbeat_s=0.2,
        abort_poll_s=0.05,
        name="worker-egress",
    )


def test_a_webhook_run_to_a_refused_address_ends_in_error_with_the_reason(
    store: Store, receiver: tuple[int, list[str]]
) -> None:
    port, posted = receiver
    load_test(store, 1, runner={"type": "webhook", "url": f"http://localhost:{port}/hook"})
    run_id = created_run(store, 1)

    ended = execute(store, run_id, _config(EgressPolicy()))

    assert ended is not None
    assert (ended.status, ended.result) == ("completed", "error")
    message = ended.status_history[-1].message or ""
    assert message.startswith("error: egress refused: localhost resolved to ")
    assert "a loopback address; allow it with TICKWORK_EGRESS_ALLOW_PRIVATE" in message
    assert posted == []


def test_the_same_run_passes_where_the_policy_allows_loopback(
    store: Store, receiver: tuple[int, list[str]]
) -> None:
    port, posted = receiver
    load_test(store, 1, runner={"type": "webhook", "url": f"http://localhost:{port}/hook"})
    run_id = created_run(store, 1)
    loopback = EgressPolicy.from_settings(
        allow_private=False, allowed_cidrs=["127.0.0.0/8", "::1/128"]
    )

    ended = execute(store, run_id, _config(loopback))

    assert ended is not None
    assert (ended.status, ended.result) == ("completed", "passed")
    assert posted == ["/hook"]


def test_a_stored_webhook_at_a_metadata_address_ends_in_error_naming_it(store: Store) -> None:
    # Written before the API refused it: the worker still refuses it, without a request.
    load_test(store, 1, runner={"type": "webhook", "url": "http://169.254.169.254/latest/"})
    run_id = created_run(store, 1)

    ended = execute(store, run_id, _config(EgressPolicy(allow_private=True)))

    assert ended is not None
    assert ended.result == "error"
    assert "169.254.169.254 is a cloud metadata address" in (ended.status_history[-1].message or "")
