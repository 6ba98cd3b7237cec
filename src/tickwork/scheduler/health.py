"""The scheduler's own /healthz, /readyz and /metrics, served from a background thread.

A stdlib server is enough here: three read-only routes, no request bodies, and no event loop
to share with the synchronous fire loop.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tickwork.core.instants import format_instant

if TYPE_CHECKING:
    from tickwork.scheduler.loop import Scheduler
    from tickwork.store import Store


def serve_health(scheduler: Scheduler, store: Store, host: str, port: int) -> ThreadingHTTPServer:
    """Start the health server in a daemon thread and return it (``shutdown()`` stops it)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                lease = scheduler.lease
                self._json(
                    200,
                    {
                        "status": "ok",
                        "role": scheduler.role,
                        "term": lease.term if lease else None,
                        "last_loop_at": format_instant(scheduler.last_loop_at)
                        if scheduler.last_loop_at
                        else None,
                    },
                )
            elif self.path == "/readyz":
                problem = scheduler.store_problem or store.readiness_problem()
                if problem is not None:
                    self._json(503, {"status": "unavailable", "error": problem})
                else:
                    self._json(200, {"status": "ready", "role": scheduler.role})
            elif self.path == "/metrics":
                body = generate_latest(scheduler.metrics.registry)
                self._send(200, CONTENT_TYPE_LATEST, body)
            else:
                self._json(404, {"error": {"code": "not_found", "message": "No such route."}})

        def _json(self, status: int, payload: object) -> None:
            self._send(status, "application/json", json.dumps(payload).encode())

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # probes every few seconds would drown the log

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
