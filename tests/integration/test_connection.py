"""Redis URLs the settings accept reach a real server: plain and through Sentinel."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tickwork.embedded import EmbeddedServer, find_server_binary, free_port
from tickwork.store import Store, connect


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[tuple[int, EmbeddedServer]]:
    primary = EmbeddedServer(tmp_path / "primary").start()
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor tickwork 127.0.0.1 {primary.port} 1\n"
    )
    process = subprocess.Popen(
        [find_server_binary(), str(conf), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "sentinel did not start"
                time.sleep(0.05)
        yield port, primary
    finally:
        process.terminate()
        process.wait(timeout=10)
        primary.stop()


def test_a_sentinel_url_reaches_the_primary_it_names(
    sentinel: tuple[int, EmbeddedServer],
) -> None:
    port, primary = sentinel
    client = connect(f"redis+sentinel://127.0.0.1:{port}/tickwork/2")
    store = Store(client, "sentinel")
    assert store.ping()
    client.set("written-through-sentinel", "yes")
    direct = connect(f"redis://127.0.0.1:{primary.port}/2")
    assert direct.get("written-through-sentinel") == b"yes"


def test_a_sentinel_url_without_a_service_is_refused() -> None:
    with pytest.raises(ValueError, match="names the service"):
        connect("redis+sentinel://127.0.0.1:26379")


def test_settings_refuse_a_sentinel_url_without_a_service_at_start() -> None:
    from tickwork.errors import SettingsError
    from tickwork.settings import load_settings

    with pytest.raises(SettingsError, match=r"TICKWORK_REDIS_URL: .*names the service"):
        load_settings(redis_url="redis+sentinel://127.0.0.1:26379")
    assert load_settings(redis_url="redis+sentinel://h1:26379,h2/primary/1").redis_url
