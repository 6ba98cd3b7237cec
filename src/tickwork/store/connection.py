"""Redis clients from settings values, and the one place driver errors become ours."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit

import redis

from tickwork.errors import StoreOutOfMemory, StoreUnavailable


def connect(url: str, *, timeout_s: float = 5.0) -> redis.Redis:
    """A client for ``url``. Connects lazily.

    redis://, rediss:// (TLS) and unix:// as redis-py reads them, and
    ``redis+sentinel://[:password@]host:port[,host:port...]/service[/db]``: the current
    primary of ``service`` as the Sentinels name it, followed across failovers.
    """
    if url.startswith("redis+sentinel://"):
        return _sentinel(url, timeout_s)
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


def _sentinel(url: str, timeout_s: float) -> redis.Redis:
    from redis.sentinel import Sentinel

    parsed = urlsplit(url)
    password = unquote(parsed.password) if parsed.password else None
    hosts = []
    for part in parsed.netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = part.rpartition(":")
        hosts.append((host or part, int(port) if host else 26379))
    path = [p for p in parsed.path.split("/") if p]
    if not path:
        raise ValueError("a redis+sentinel:// URL names the service: .../service[/db]")
    db = int(path[1]) if len(path) > 1 else 0
    sentinel = Sentinel(
        hosts,
        socket_timeout=timeout_s,
        sentinel_kwargs={"password": password, "socket_timeout": timeout_s},
    )
    client: redis.Redis = sentinel.master_for(
        path[0],
        db=db,
        password=password,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )
    return client


@contextmanager
def translated() -> Iterator[None]:
    """Map the driver's errors of an unavailable store to ours: connection errors and
    timeouts to StoreUnavailable; a write refused for memory (maxmemory under noeviction) to
    StoreOutOfMemory; a read-only replica (after a failover) to StoreUnavailable."""
    try:
        yield
    except redis.exceptions.OutOfMemoryError as exc:
        raise StoreOutOfMemory(
            "Redis is out of memory (maxmemory reached): writes are refused until memory is "
            "freed or maxmemory raised"
        ) from exc
    except redis.exceptions.ReadOnlyError as exc:
        raise StoreUnavailable(f"Redis is a read-only replica: {exc}") from exc
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
