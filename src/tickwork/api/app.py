"""``create_app``: the ASGI app from plain values (never from Settings), so tests and the
standalone mode build it without touching the environment."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI

from tickwork import __version__, console
from tickwork.api import errors_http, openapi
from tickwork.api.auth import ApiToken, TokenBook
from tickwork.api.deps import ApiContext, Clock
from tickwork.api.limits import BodyLimit
from tickwork.api.metrics import ApiMetrics, MetricsMiddleware
from tickwork.api.rate_limits import RateLimit
from tickwork.api.routes import (
    audit,
    backfill,
    health,
    kragle,
    ledger,
    load_tests,
    notifications,
    projects,
    reports,
    run_results,
    runs,
    schedules,
    windows,
)
from tickwork.store import Rate, Store
from tickwork.store.queue import DEFAULT_QUEUE, queue
from tickwork.store.quotas import Limits

DEFAULT_MAX_BODY_BYTES = 1_048_576
"""Largest request body accepted (a k6 script or archive included); larger ones get 413."""
DEFAULT_KRAGLE_PREFIX = "/kragle"

DESCRIPTION = """\
The k6 Cloud REST API v6 (projects, load tests, schedules, test runs), served by tickwork.

Every /cloud route needs `Authorization: Bearer <token>` and `X-Stack-Id: <stack>`. Errors
are `ErrorResponseApiModel` bodies with stable codes. tickwork extensions are marked as such
in the field descriptions.

Two more dialects drive the same engine, with the same tokens and stacks: Kragle-style
schedules (timing templates, and jobs binding them to load tests) and report schedules
(digests of test runs, by e-mail or webhook) under /api/v1/reports.
"""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _App(FastAPI):
    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = openapi.build(self)
        return self.openapi_schema


def create_app(
    store: Store,
    *,
    tokens: Iterable[ApiToken],
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    queue_name: str = DEFAULT_QUEUE,
    public_url: str | None = None,
    clock: Clock = _utc_now,
    kragle_prefix: str = DEFAULT_KRAGLE_PREFIX,
    kragle_public_listing: bool = False,
    rate_limit: Rate | None = None,
    stack_rate_limit: Rate | None = None,
    default_jitter_s: int = 0,
    limits: Limits | None = None,
) -> FastAPI:
    """The API over ``store``. ``tokens`` are the accepted bearer tokens; ``queue_name`` the
    RQ queue that receives started runs; ``public_url`` the base of absolute links (else
    each request's own); ``clock`` gives "now" (tests pass their own); ``kragle_prefix``
    where the Kragle-style API is mounted ("" for the root), and ``kragle_public_listing``
    whether its schedule reads answer without a token. ``rate_limit`` is each token's (and
    each anonymous client address's) request rate, ``stack_rate_limit`` each stack's, shared
    by every process on the store; None: not limited. ``default_jitter_s`` is the jitter of a
    schedule set without ``jitter_seconds``. ``limits`` are the stacks' quotas and the
    minimum spacing of runs (None: ``Limits()``, the generous defaults)."""
    token_list = tuple(tokens)
    token_book = TokenBook(token_list)
    app = _App(
        title="tickwork — k6 Cloud REST API v6",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # the console serves /docs and /redoc from local assets
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.context = ApiContext(
        store=store,
        tokens=token_book,
        rq_queue=queue(store.rq_connection, queue_name),
        public_url=public_url.rstrip("/") if public_url else None,
        clock=clock,
        default_jitter_s=default_jitter_s,
    )
    metrics = ApiMetrics(store, frozenset(s for token in token_list for s in token.stacks))
    app.state.metrics = metrics
    app.state.kragle_public_listing = kragle_public_listing
    app.state.limits = limits if limits is not None else Limits()
    errors_http.install(app)
    # The ledger before the k6 schedules: /schedules/health is its list, not a schedule id.
    for module in (
        health,
        projects,
        load_tests,
        ledger,
        schedules,
        backfill,
        windows,
        audit,
        runs,
        reports,
    ):
        app.include_router(module.router)
    app.include_router(run_results.router)
    app.include_router(notifications.router)
    app.include_router(kragle.router, prefix=kragle_prefix.rstrip("/"))
    console.install(app, tokens=token_list, queue_name=queue_name)
    # Last added runs first: metrics see every response, the 429s and 413s included; a
    # limited request is refused before its body is read.
    app.state.reshape_error = reports.enveloped
    app.add_middleware(BodyLimit, max_body_bytes=max_body_bytes, reshape=reports.enveloped)
    if rate_limit is not None or stack_rate_limit is not None:
        app.add_middleware(
            RateLimit,
            limits=store.rate_limits,
            tokens=token_book,
            per_token=rate_limit,
            per_stack=stack_rate_limit,
            reshape=reports.enveloped,
            registry=metrics.registry,
        )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
