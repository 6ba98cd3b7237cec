"""Redis URLs the settings accept reach a real server: plain and through Sentinel."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tickwork.embedded import EmbeddedServer, find_server_binary, free_port
from tickwork.errors import StoreUnavailable
from tickwork.store import Store, connect


def _wait_listening(process: subprocess.Popen[bytes], port: int, what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, f"{what} exited at start"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"{what} did not start"
            time.sleep(0.05)


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
        _wait_listening(process, port, "sentinel")
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


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A redis-server speaking only TLS, with a certificate from a CA made here."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make the test certificates")

    def run(*argv: str) -> None:
        subprocess.run([openssl, *argv], cwd=tmp_path, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test CA",
        "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "1", "-extfile", "san.ext", "-out", "server.crt")  # fmt: skip
    port = free_port()
    options = f"--port 0 --tls-port {port} --bind 127.0.0.1 --save '' --tls-auth-clients no"
    process = subprocess.Popen(
        [
            find_server_binary(),
            *shlex.split(options),
            *("--tls-cert-file", str(tmp_path / "server.crt")),
            *("--tls-key-file", str(tmp_path / "server.key")),
            *("--tls-ca-cert-file", str(tmp_path / "ca.crt")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(process, port, "TLS server (a redis-server without TLS support?)")
        yield port, tmp_path / "ca.crt"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_rediss_url_reaches_a_tls_server_and_checks_its_certificate(
    tls_server: tuple[int, Path],
) -> None:
    port, ca = tls_server
    client = connect(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}")
    store = Store(client, "tls")
    assert store.ping()
    client.set("written-over-tls", "yes")
    assert client.get("written-over-tls") == b"yes"

    untrusted = Store(connect(f"rediss://127.0.0.1:{port}/0", timeout_s=2), "tls")
    with pytest.raises(StoreUnavailable, match="certificate verify failed"):
        untrusted.ping()


def _doctor(redis_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickwork", "doctor"],
        env={**os.environ, "TICKWORK_REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow  # waits out a TLS redis-server's start (~1 s)
def test_doctor_passes_over_tls_and_names_the_certificate_failure(
    tls_server: tuple[int, Path],
) -> None:
    port, ca = tls_server
    trusted = _doctor(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}")
    assert "[ok] redis" in trusted.stdout, trusted.stdout + trusted.stderr
    untrusted = _doctor(f"rediss://127.0.0.1:{port}/0")
    assert untrusted.returncode != 0
    assert "certificate verify failed" in untrusted.stdout, untrusted.stdout
    assert "ssl_ca_certs=" in untrusted.stdout
