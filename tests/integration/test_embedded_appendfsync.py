"""The embedded server runs with the AOF fsync policy it is given.

``tests/e2e/test_redis_restart.py`` measures what a Redis crash loses under ``appendfsync
always`` and ``everysec`` (README, Durability) by starting ``EmbeddedServer(...,
appendfsync=...)``: a server that ignored the argument would measure ``everysec`` twice.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tickwork.embedded import EmbeddedServer


def _appendfsync_of(server: EmbeddedServer) -> str:
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        config: dict[str, str] = client.config_get("appendfsync")  # type: ignore[assignment]
        return config["appendfsync"]
    finally:
        client.close()


def test_an_embedded_server_keeps_its_aof_with_appendfsync_everysec_by_default(
    tmp_path: Path,
) -> None:
    server = EmbeddedServer(tmp_path / "redis").start()
    try:
        assert _appendfsync_of(server) == "everysec"
    finally:
        server.stop()


@pytest.mark.parametrize("appendfsync", ["always", "no"])
def test_an_embedded_server_runs_with_the_appendfsync_it_was_given(
    tmp_path: Path, appendfsync: str
) -> None:
    server = EmbeddedServer(tmp_path / "redis", appendfsync=appendfsync).start()
    try:
        assert _appendfsync_of(server) == appendfsync
    finally:
        server.stop()
