"""The checked connection every webhook goes through (tickwork.egress), and the report
webhooks that use it: real local HTTP and HTTPS servers, the resolver as the only seam."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tickwork import egress
from tickwork.core.egress import EgressPolicy
from tickwork.worker.reports.webhooks import post_all

SECRET = "report-secret-0123456"
LOOPBACK = EgressPolicy.from_settings(allow_private=False, allowed_cidrs=["127.0.0.0/8"])


@dataclass
class Server:
    """Answers every POST 200 and notes its Host header (and, over TLS, the SNI name)."""

    tls: ssl.SSLContext | None = None
    hosts: list[str] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    httpd: ThreadingHTTPServer | None = None

    def start(self) -> Server:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                server.hosts.append(self.headers["Host"])
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if self.tls is not None:
            self.tls.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
            self.httpd.socket = self.tls.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    @property
    def port(self) -> int:
        assert self.httpd is not None
        return int(self.httpd.server_address[1])

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    started = Server().start()
    yield started
    started.stop()


def _resolving_to(*addresses: str) -> egress.Resolver:
    return lambda host, port: list(addresses)


def _post_all(urls: list[str], **kwargs: Any) -> list[Any]:
    return post_all(
        urls,
        b"{}",
        secret=SECRET,
        deadline=time.monotonic() + 10,
        cancel=threading.Event(),
        backoff_first_s=0.05,
        **kwargs,
    )


def test_a_report_webhook_on_loopback_is_refused_unless_allowed(server: Server) -> None:
    url = f"http://127.0.0.1:{server.port}/report"

    [refused] = _post_all([url], policy=EgressPolicy())
    [delivered] = _post_all([url], policy=LOOPBACK)

    assert (refused.status, refused.refused, refused.delivered) == (None, True, False)
    assert refused.error == (
        "egress refused: 127.0.0.1 is a loopback address; allow it with "
        "TICKWORK_EGRESS_ALLOW_PRIVATE or TICKWORK_EGRESS_ALLOWED_CIDRS"
    )
    assert delivered.delivered
    assert server.hosts == [f"127.0.0.1:{server.port}"]  # one POST: the allowed one


def test_a_report_webhook_never_reaches_metadata_whatever_the_policy(server: Server) -> None:
    url = f"http://hooks.example:{server.port}/report"

    [posted] = _post_all(
        [url], policy=EgressPolicy(allow_private=True), resolve=_resolving_to("169.254.169.254")
    )

    assert posted.refused
    assert posted.error is not None
    assert "hooks.example resolved to 169.254.169.254, a cloud metadata address" in posted.error
    assert server.hosts == []


def test_post_connects_to_the_checked_address_and_keeps_the_name() -> None:
    with_server = Server().start()
    lookups: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        lookups.append((host, port))
        return ["127.0.0.1"]

    try:
        answer = egress.post(
            f"http://hooks.example:{with_server.port}/x?y=1",
            b"{}",
            {"Content-Type": "application/json"},
            timeout_s=10,
            policy=LOOPBACK,
            resolve=resolve,
        )
    finally:
        with_server.stop()

    assert (answer.status, answer.body) == (200, b"ok")
    assert lookups == [("hooks.example", with_server.port)]
    assert with_server.hosts == [f"hooks.example:{with_server.port}"]


def test_an_unresolvable_name_is_a_connection_error_not_a_refusal() -> None:
    with pytest.raises(OSError, match="resolved to no address"):
        egress.post(
            "http://hooks.example/",
            b"{}",
            {},
            timeout_s=5,
            policy=LOOPBACK,
            resolve=_resolving_to(),
        )


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not on PATH: no certificate to serve TLS with")
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
            "-addext",
            f"subjectAltName=DNS:{name}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.mark.parametrize(
    ("certified", "reached"),
    [("hooks.example", True), ("other.example", False)],
)
def test_over_tls_the_name_is_the_server_name_and_the_certificate_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, certified: str, reached: bool
) -> None:
    cert, key = _certificate(tmp_path, certified)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this certificate only
    https = Server(tls=tls).start()
    try:
        if reached:
            answer = egress.post(
                f"https://hooks.example:{https.port}/hook",
                b"{}",
                {},
                timeout_s=10,
                policy=LOOPBACK,
                resolve=_resolving_to("127.0.0.1"),
            )
            assert answer.status == 200
        else:
            with pytest.raises(ssl.SSLCertVerificationError):
                egress.post(
                    f"https://hooks.example:{https.port}/hook",
                    b"{}",
                    {},
                    timeout_s=10,
                    policy=LOOPBACK,
                    resolve=_resolving_to("127.0.0.1"),
                )
    finally:
        https.stop()

    assert https.server_names == ["hooks.example"]  # SNI: the name, not 127.0.0.1
    assert https.hosts == ([f"hooks.example:{https.port}"] if reached else [])
