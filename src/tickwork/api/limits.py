"""The request-body limit, as plain ASGI middleware (BaseHTTPMiddleware would buffer and
break streaming; starlette #1678).

A declared Content-Length over the limit is refused before the app runs. A body without one
(chunked) is counted as it is received, and the read that crosses the limit raises
PayloadTooLarge, which the app's error handlers turn into the same 413.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tickwork.api.errors_http import PayloadTooLarge
from tickwork.dialects.k6 import render_error
from tickwork.dialects.wire import ErrorParts

Reshape = Callable[[str, str, int, ErrorParts], dict[str, Any]]
"""(method, path, status, the error's parts) -> the error body in the path's dialect."""


def _as_is(method: str, path: str, status: int, parts: ErrorParts) -> dict[str, Any]:
    return render_error(parts)


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, reshape: Reshape = _as_is) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.reshape = reshape

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._refuse(scope, send)
            return
        received = 0
        limit = self.max_body_bytes

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"The request body is over {limit} bytes.")
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        parts = ErrorParts(
            PayloadTooLarge.code, f"The request body is over {self.max_body_bytes} bytes."
        )
        body = json.dumps(self.reshape(scope["method"], scope["path"], 413, parts)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    # the unread body stays on the socket: do not reuse the connection
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server rejects a malformed length before we see it
    return None
