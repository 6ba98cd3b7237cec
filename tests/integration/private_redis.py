"""A redis-server of a test's own, for configurations the shared server must not get (a tiny
maxmemory, an evicting policy, a pause): on a Unix socket, so there is no port to race for."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tickwork.embedded import find_server_binary


@contextmanager
def private_redis(*config: str) -> Iterator[str]:
    """A redis-server started with ``config``; its URL."""
    # Short: a Unix socket path is limited to about 100 bytes.
    directory = Path(tempfile.mkdtemp(prefix="twpr", dir="/tmp"))
    path = directory / "redis.sock"
    argv = [find_server_binary(), "--port", "0", "--unixsocket", str(path), "--dir", str(directory)]
    process = subprocess.Popen(
        [*argv, "--save", "", *config],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not _answers(path):
            assert process.poll() is None, f"redis-server {config} exited"
            assert time.monotonic() < deadline, "redis-server did not answer in 30 s"
            time.sleep(0.02)
        yield f"unix://{path}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


def _answers(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(0.5)
            conn.connect(str(path))
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False
