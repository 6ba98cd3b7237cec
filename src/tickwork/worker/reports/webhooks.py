"""Sending a report as JSON to webhooks, signed like the webhook runner's calls.

Each URL of ``send_to`` gets the same body, with ``X-Tickwork-Signature-256: sha256=<hex>``
(HMAC-SHA256 of the body under TICKWORK_WEBHOOK_SECRET). A 2xx answer is delivered; another
answer is refused; a connection error or a 5xx is retried (three attempts, backoff) within
the time left. Redirects are not followed. Only addresses the egress policy allows are
reached (tickwork.egress): a refused URL is not retried, and its error says why.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass
from typing import Any

from tickwork import __version__, egress
from tickwork.core.egress import EgressPolicy
from tickwork.worker.runners.webhook import SIGNATURE_HEADER, signature

ATTEMPTS = 3
BACKOFF_FIRST_S = 0.5
KEPT_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Posted:
    url: str
    status: int | None  # the last answer's status; None when no answer came
    error: str | None = None
    refused: bool = False  # the egress policy refused the address: nothing was sent

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def as_json(self) -> dict[str, Any]:
        return {"url": self.url, "status": self.status, "error": self.error}


def post_all(
    urls: list[str],
    body: bytes,
    *,
    secret: str,
    deadline: float,
    cancel: threading.Event,
    policy: EgressPolicy,
    backoff_first_s: float = BACKOFF_FIRST_S,
    resolve: egress.Resolver = egress.system_resolver,
) -> list[Posted]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"tickwork/{__version__}",
        SIGNATURE_HEADER: signature(secret, body),
    }
    return [
        _post(
            url,
            body,
            headers,
            deadline=deadline,
            cancel=cancel,
            backoff_s=backoff_first_s,
            policy=policy,
            resolve=resolve,
        )
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
    policy: EgressPolicy,
    resolve: egress.Resolver,
) -> Posted:
    last = Posted(url, None, "no time left to send")
    for attempt in range(ATTEMPTS):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or cancel.is_set():
            break
        last = _once(url, body, headers, remaining, policy=policy, resolve=resolve)
        if last.delivered or last.refused or (last.status is not None and last.status < 500):
            break
        if attempt + 1 < ATTEMPTS and cancel.wait(backoff_s * 2**attempt):
            break
    return last


def _once(
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
    *,
    policy: EgressPolicy,
    resolve: egress.Resolver,
) -> Posted:
    try:
        answer = egress.post(
            url,
            body,
            headers,
            timeout_s=timeout_s,
            policy=policy,
            resolve=resolve,
            keep_bytes=KEPT_BYTES,
        )
    except egress.EgressRefused as exc:
        return Posted(url, None, str(exc), refused=True)
    # HTTPException: a malformed answer or URL; ValueError: a URL that cannot be parsed
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return Posted(url, None, str(exc))
    return Posted(url, answer.status)
