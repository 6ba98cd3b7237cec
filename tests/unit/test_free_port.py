"""free_port chooses below the kernel's ephemeral range, so that no socket bound to port 0
meanwhile (another test's server, any client) can take the port before the child binds it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tickwork.embedded import free_port

RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


@pytest.mark.skipif(not RANGE.exists(), reason="the kernel does not say its ephemeral range")
def test_the_port_is_free_and_outside_the_range_port_0_draws_from() -> None:
    ephemeral_start = int(RANGE.read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert all(1024 < port < ephemeral_start for port in ports), ports
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        assert bound.getsockname()[1] >= ephemeral_start  # what port 0 gives: never ours
    for port in ports:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", port))
