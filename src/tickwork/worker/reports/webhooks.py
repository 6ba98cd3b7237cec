"""Sending a report as JSON to webhooks, signed like the webhook runner's calls.

Each URL of ``send_to`` gets the same body, with ``X-Tickwork-Signature-256: sha256=<hex>``
(HMAC-SHA256 of the body under TICKWORK_WEBHOOK_SECRET). A 2xx answer is delivered; another
answer is refused; a connection error or a 5xx is retried (three attempts, backoff) within
the time left. Redirects are not followed.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from tickwork import __version__
from tickwork.worker.runners.webhook import SIGNATURE_HEADER, signature

ATTEMPTS = 3
BACKOFF_FIRST_S = 0.5
KEPT_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Posted:
    url: str
    status: int | None  # the last answer's status; None when no answer came
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def as_json(self) -> dict[str, Any]:
        return {"url": self.url, "status": self.status, "error": self.error}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def post_all(
    urls: list[str],
    body: bytes,
    *,
    secret: str,
    deadline: float,
    cancel: threading.Event,
    backoff_first_s: float = BACKOFF_FIRST_S,
) -> list[Posted]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"tickwork/{__version__}",
        SIGNATURE_HEADER: signature(secret, body),
    }
    return [
        _post(url, body, headers, deadline=deadline, cancel=cancel, backoff_s=backoff_first_s)
        for url in urls
    ]


def _post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    deadline: float,
    cancel: threading.Event,
    backoff_s: float,
) -> Posted:
    last = Posted(url, None, "no time left to send")
    for attempt in range(ATTEMPTS):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or cancel.is_set():
            break
        last = _once(url, body, headers, remaining)
        if last.delivered or (last.status is not None and last.status < 500):
            break
        if attempt + 1 < ATTEMPTS and cancel.wait(backoff_s * 2**attempt):
            break
    return last


def _once(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Posted:
    request = urllib.request.Request(  # noqa: S310  (the dialect admits http(s) URLs only)
        url, data=body, headers=headers, method="POST"
    )
    try:
        with _opener.open(request, timeout=timeout_s) as response:
            response.read(KEPT_BYTES)
            return Posted(url, int(response.status))
    except urllib.error.HTTPError as exc:
        return Posted(url, exc.code)
    # HTTPException: a malformed answer or URL; ValueError: a URL urllib cannot parse
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return Posted(url, None, str(reason))
