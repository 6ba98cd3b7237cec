"""Serving the API with uvicorn, from Settings (this module is the only one here that reads
them)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import uvicorn
from fastapi import FastAPI

from tickwork.api.app import create_app
from tickwork.api.auth import ApiToken
from tickwork.store import Rate, Store, connect
from tickwork.store.quotas import Limits, Quotas

if TYPE_CHECKING:
    from tickwork.settings import Settings, TokenSpec


def api_token(spec: TokenSpec) -> ApiToken:
    """The in-memory form of a configured token: a plain token is hashed here, at start."""
    if spec.token is not None:
        return ApiToken.from_plain(spec.token, email=spec.email, stacks=spec.stacks)
    assert spec.token_sha256 is not None  # TokenSpec guarantees exactly one of the two
    return ApiToken.from_hex(spec.token_sha256, email=spec.email, stacks=spec.stacks)


REDIS_TIMEOUT_S = 1.5
"""How long a request waits on Redis: during an outage the API answers 503 within ~2 s,
rather than after a client's patience (or its own 5 s) runs out."""


def app_from_settings(settings: Settings) -> FastAPI:
    store = Store(connect(settings.redis_url, timeout_s=REDIS_TIMEOUT_S), settings.key_prefix)
    return create_app(
        store,
        tokens=[api_token(spec) for spec in settings.tokens],
        max_body_bytes=settings.max_body_bytes,
        queue_name=settings.queues[0],
        public_url=settings.public_url,
        kragle_prefix=settings.kragle_prefix,
        kragle_public_listing=settings.kragle_public_listing,
        rate_limit=_rate(settings.rate_limit_per_second, settings.rate_limit_burst),
        stack_rate_limit=_rate(
            settings.stack_rate_limit_per_second, settings.stack_rate_limit_burst
        ),
        default_jitter_s=settings.default_jitter_seconds,
        limits=limits_of(settings),
    )


def limits_of(settings: Settings) -> Limits:
    """The quotas and minimums settings as create_app takes them: a stack named in
    TICKWORK_STACK_QUOTAS has the defaults with the quotas it names replaced."""
    default = Quotas(
        schedules=settings.quota_schedules,
        load_tests=settings.quota_load_tests,
        kragle_templates=settings.quota_kragle_templates,
        kragle_jobs=settings.quota_kragle_jobs,
        report_schedules=settings.quota_report_schedules,
        script_bytes=settings.quota_script_bytes,
    )
    return Limits(
        quotas=default,
        stack_quotas={
            stack: replace(default, **given.model_dump(exclude_none=True))
            for stack, given in settings.stack_quotas.items()
        },
        min_interval_s=settings.min_schedule_interval_seconds,
        min_kragle_period_s=settings.min_kragle_period_seconds,
    )


def _rate(per_second: float, burst: int) -> Rate | None:
    """A rate setting as create_app takes it: 0 requests per second is no limit."""
    return Rate(per_second, burst) if per_second > 0 else None


def app_from_environment() -> FastAPI:
    """For ``uvicorn --factory tickwork.api.server:app_from_environment``."""
    from tickwork.settings import load_settings

    return app_from_settings(load_settings())


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the API until SIGINT or SIGTERM (uvicorn handles both and drains requests)."""
    app = app_from_settings(settings)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, proxy_headers=True)
