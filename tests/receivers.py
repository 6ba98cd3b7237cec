"""A real HTTP receiver on loopback for the notification tests: it plays a webhook, a Slack
or a Teams endpoint, records every POST (path, headers, body), and answers each with the
next status scripted for its path (then 200). ``down_url`` gives a URL where nothing
listens."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def signed_with(self, secret: str) -> bool:
        mac = hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(f"sha256={mac}", self.header("X-Tickwork-Signature-256") or "")


@dataclass
class Receiver:
    base: str = ""
    statuses: dict[str, list[int]] = field(default_factory=dict)  # path -> answers to come
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return self.base + path

    def answer(self, path: str, *statuses: int) -> None:
        """The next requests to ``path`` get these statuses, in order; then 200."""
        with self.lock:
            self.statuses[path] = list(statuses)

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def wait(
        self, count: int, *, path: str | None = None, timeout_s: float = 30.0
    ) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while True:
            with self.lock:
                found = [r for r in self.received if path is None or r.path == path]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} requests arrived at {path or '*'}")
            time.sleep(0.02)


@contextmanager
def receiving() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state.lock:
                state.received.append(Received(self.path, dict(self.headers.items()), body))
                script = state.statuses.get(self.path)
                status = script.pop(0) if script else 200
            payload = b"ok" if status < 300 else b"not now"
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the receiver did not stop"


def down_url(path: str = "/hook") -> str:
    """A loopback URL where nothing listens (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
