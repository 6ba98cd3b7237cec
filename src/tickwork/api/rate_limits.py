"""Request rate limits, as plain ASGI middleware (BaseHTTPMiddleware would buffer bodies and
break streaming; starlette #1678).

Who is limited, decided from the headers alone, the way the routes' auth reads them:

- a known bearer token: its own bucket (by the token's SHA-256, never the token), and the
  bucket of the X-Stack-Id stack when the token may act there. A stack's bucket is shared
  by every token of the stack; a token cannot spend a stack it has no right to.
- no bearer token: the bucket of the client's address, at the per-token rate. Only the
  Kragle reads answer anonymous callers (when public listing is on); the rest answer 401,
  but an anonymous flood is held to one rate per address either way.
- an unknown token: nothing here. Auth answers 401 without touching the store, and a
  bucket per made-up token would let anyone fill Redis with keys.

A limited request gets 429 ``rate_limited`` with ``Retry-After`` (whole seconds, rounded up)
before anything else runs: no route, no body read, nothing written. The buckets live in
Redis (``store.rate_limits``: one script per request, on the Redis clock), so every API
process shares them. A refusal is also remembered here until its wait ends (no request can
pass sooner: waits only grow), and while a bucket has been refused lately, this process asks
Redis about it one request at a time, the others waiting for that answer (a refusal then
answers them all): a flood costs Redis a few scripts per emission interval, not one per
request, and the API's thread pool is not filled with checks.

When Redis does not answer (or refuses the script for memory), requests pass unlimited
rather than the limiter making the API unavailable a second time; the state change is
logged once, and Redis is tried again after ``STORE_RETRY_S``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.security import HTTPBearer
from prometheus_client import CollectorRegistry, Counter
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from tickwork.api.auth import TokenBook, parse_stack
from tickwork.api.limits import Reshape
from tickwork.dialects.wire import ErrorParts
from tickwork.errors import StoreUnavailable, Unauthenticated, ValidationError
from tickwork.store.limits import Bucket, Rate, RateLimits, Verdict

log = logging.getLogger("tickwork.api")

CODE = "rate_limited"
EXEMPT = frozenset(
    {"/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
"""Paths never limited: probes, scrapes and the API's own documentation."""
STORE_RETRY_S = 5.0
"""After Redis failed a check, requests pass unchecked for this long before it is tried."""
HOT_S = 1.0
"""A bucket refused less than this long ago is checked one request at a time."""
_REMEMBERED_MAX = 4096
"""Past this many remembered refusals, the cold ones (ended over HOT_S ago) are dropped."""
_bearer = HTTPBearer(auto_error=False)  # the routes' own parsing (deps.py), so both agree


@dataclass(frozen=True, slots=True)
class _Limit:
    bucket: Bucket
    per: str  # what the bucket counts: "token", "stack" or "client address"


def retry_after_s(wait_s: float) -> int:
    """The Retry-After value of a wait: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(wait_s))


def refusal_message(rate: Rate, per: str, retry_after: int) -> str:
    return (
        f"Too many requests: the limit is {rate.per_second:g} requests per second per {per} "
        f"(bursts of up to {rate.burst}); retry in {retry_after} s."
    )


class Refusals:
    """Refusals remembered until their wait ends, on this process's monotonic clock."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, *, hot_s: float = HOT_S
    ) -> None:
        self._clock = clock
        self._hot_s = hot_s
        self._until: dict[str, float] = {}

    def remember(self, buckets: Sequence[Bucket], verdict: Verdict, *, asked_at: float) -> None:
        # From when the question was asked, not answered: Redis read its clock in between,
        # so the bucket has room no later than this, and a refusal is never held too long.
        for bucket, wait in zip(buckets, verdict.waits_s, strict=True):
            if wait > 0:
                self._until[bucket.key] = max(self._until.get(bucket.key, 0.0), asked_at + wait)
        if len(self._until) > _REMEMBERED_MAX:
            cold = self._clock() - self._hot_s
            self._until = {key: until for key, until in self._until.items() if until > cold}

    def verdict(self, buckets: Sequence[Bucket]) -> Verdict | None:
        """A refusal when one of ``buckets`` is known to have no room yet, else None."""
        now = self._clock()
        waits = tuple(max(self._until.get(bucket.key, 0.0) - now, 0.0) for bucket in buckets)
        return Verdict(waits) if any(waits) else None

    def hot(self, buckets: Sequence[Bucket]) -> str | None:
        """The key of the first of ``buckets`` refused less than ``hot_s`` ago, else None."""
        cold = self._clock() - self._hot_s
        return next((b.key for b in buckets if self._until.get(b.key, 0.0) > cold), None)


class RateLimit:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: RateLimits,
        tokens: TokenBook,
        per_token: Rate | None,
        per_stack: Rate | None,
        reshape: Reshape,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
        hot_s: float = HOT_S,
    ) -> None:
        self.app = app
        self._limits = limits
        self._tokens = tokens
        self._per_token = per_token
        self._per_stack = per_stack
        self._reshape = reshape
        self._clock = clock
        self._refusals = Refusals(clock, hot_s=hot_s)
        self._one_at_a_time: dict[str, asyncio.Lock] = {}
        self._store_down = False
        self._store_retry_at = 0.0
        self._refused = Counter(
            "tickwork_api_rate_limited_total",
            "Requests refused with 429, by the limit that refused them "
            "(token, stack or client address)",
            ["limit"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        limits = await self._limits_of(scope)
        verdict = await self._verdict([limit.bucket for limit in limits]) if limits else None
        if verdict is None or verdict.allowed:
            await self.app(scope, receive, send)
            return
        await self._refuse(scope, send, limits, verdict)

    async def _limits_of(self, scope: Scope) -> list[_Limit]:
        credentials = await _bearer(HTTPConnection(scope))
        if credentials is None:
            if self._per_token is None:
                return []
            client = scope.get("client")
            address = str(client[0]) if client else "unknown"
            return [_Limit(self._limits.client(address, self._per_token), "client address")]
        try:
            entry = self._tokens.identify(credentials.credentials)
        except Unauthenticated:
            return []
        limits = []
        if self._per_token is not None:
            limits.append(_Limit(self._limits.token(entry.sha256, self._per_token), "token"))
        if self._per_stack is not None:
            try:
                stack = parse_stack(Headers(scope=scope).getlist("x-stack-id"))
            except ValidationError:
                stack = None  # auth answers 400
            if stack is not None and stack in entry.stacks:
                limits.append(_Limit(self._limits.stack(stack, self._per_stack), "stack"))
        return limits

    async def _verdict(self, buckets: Sequence[Bucket]) -> Verdict | None:
        """The store's verdict (or a remembered refusal); None when the store cannot say."""
        remembered = self._refusals.verdict(buckets)
        if remembered is not None:
            return remembered
        hot = self._refusals.hot(buckets)
        if hot is None:
            return await self._ask(buckets)
        lock = self._one_at_a_time.get(hot)
        if lock is None:
            if len(self._one_at_a_time) > _REMEMBERED_MAX:
                self._one_at_a_time = {
                    key: held for key, held in self._one_at_a_time.items() if held.locked()
                }
            lock = self._one_at_a_time[hot] = asyncio.Lock()
        async with lock:
            # the request before this one may have been refused: then so is this one
            remembered = self._refusals.verdict(buckets)
            if remembered is not None:
                return remembered
            return await self._ask(buckets)

    async def _ask(self, buckets: Sequence[Bucket]) -> Verdict | None:
        asked_at = self._clock()
        if asked_at < self._store_retry_at:
            return None
        if self._store_down:  # one request tries Redis again; the others pass meanwhile
            self._store_retry_at = asked_at + STORE_RETRY_S
        try:
            verdict = await run_in_threadpool(self._limits.take, buckets)
        except StoreUnavailable as exc:
            self._store_retry_at = self._clock() + STORE_RETRY_S
            if not self._store_down:
                self._store_down = True
                log.warning("rate_limits_unchecked", extra={"error": str(exc)})
            return None
        if self._store_down:
            self._store_down = False
            self._store_retry_at = 0.0
            log.warning("rate_limits_checked_again")
        if not verdict.allowed:
            self._refusals.remember(buckets, verdict, asked_at=asked_at)
        return verdict

    async def _refuse(
        self, scope: Scope, send: Send, limits: Sequence[_Limit], verdict: Verdict
    ) -> None:
        wait, limit = max(zip(verdict.waits_s, limits, strict=True), key=lambda pair: pair[0])
        self._refused.labels(limit.per).inc()
        retry_after = retry_after_s(wait)
        parts = ErrorParts(CODE, refusal_message(limit.bucket.rate, limit.per, retry_after))
        body: dict[str, Any] = self._reshape(scope["method"], scope["path"], 429, parts)
        payload = json.dumps(body).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"retry-after", str(retry_after).encode()),
        ]
        if _has_body(scope):
            # the unread body stays on the socket: do not reuse the connection
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False
