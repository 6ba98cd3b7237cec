"""Redis clients from settings values, and the one place driver errors become ours."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from tickwork.errors import StoreUnavailable


def connect(url: str, *, timeout_s: float = 5.0) -> redis.Redis:
    """A client for ``url`` (redis://, rediss:// or unix://). Connects lazily."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
        retry_on_timeout=False,
    )


def text_of(value: object) -> str:
    """A reply value as text (the clients do not decode: RQ needs bytes replies)."""
    return value.decode() if isinstance(value, bytes) else str(value)


@contextmanager
def translated() -> Iterator[None]:
    """Map connection-level driver errors to StoreUnavailable."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
