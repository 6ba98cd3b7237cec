"""Outgoing HTTP that reaches only where the egress policy allows (see tickwork.core.egress).

Every webhook (the webhook runner, report webhooks, and the notification channels to come)
posts through ``post``. The URL's host is resolved once, when the connection is made; every
address it resolves to is checked, and the socket connects to a checked address, never to
the name again. So a name that answers a public address to one lookup and a private one to
the next (DNS rebinding) cannot slip past: there is no second lookup. The Host header, the
TLS server name (SNI) and the certificate check still use the name.

Redirects are not followed (a 3xx is an answer). Proxies from the environment (http_proxy,
https_proxy) are not used: through a proxy, the address finally reached could not be checked.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from urllib.parse import urlsplit

from tickwork.core.egress import EgressPolicy, IPAddress, Refusal
from tickwork.errors import TickworkError

Resolver = Callable[[str, int], Sequence[str]]
"""(host, port) -> the addresses it resolves to, as text. A seam for tests; by default the
system's resolver (getaddrinfo)."""


class EgressRefused(TickworkError):
    """The policy refuses an address the URL's host is (or resolves to). Not retried: the
    same name gives the same answer, or one that must not be trusted."""

    code = "egress_refused"

    def __init__(self, refusal: Refusal | str) -> None:
        super().__init__(str(refusal))


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes  # its first ``keep_bytes``


def system_resolver(host: str, port: int) -> list[str]:
    found: list[str] = []
    for family, _, _, _, sockaddr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    ):
        text = str(sockaddr[0])
        if family in (socket.AF_INET, socket.AF_INET6) and text not in found:
            found.append(text)
    return found


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout_s: float,
    policy: EgressPolicy,
    resolve: Resolver = system_resolver,
    keep_bytes: int = 4096,
) -> Answer:
    """POST ``body`` to ``url`` and the answer, whatever its status.

    Raises EgressRefused when the policy refuses the host's addresses; OSError when it cannot
    be reached (name unknown, refused, timed out); http.client.HTTPException when the answer
    is not HTTP; ValueError when ``url`` is not an http(s) URL with a host."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = _CheckedTLSConnection(
            host,
            port,
            timeout_s=timeout_s,
            policy=policy,
            resolve=resolve,
            tls=ssl.create_default_context(),
        )
    else:
        connection = _CheckedConnection(
            host, port, timeout_s=timeout_s, policy=policy, resolve=resolve
        )
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        return Answer(status=response.status, body=response.read(keep_bytes))
    finally:
        connection.close()


def checked_addresses(
    host: str, port: int, policy: EgressPolicy, resolve: Resolver = system_resolver
) -> list[IPAddress]:
    """The addresses ``host`` resolves to, once; EgressRefused if the policy refuses any
    (a name answering one public and one private address is refused, not half-trusted)."""
    found: list[IPAddress] = []
    for text in resolve(host, port):
        try:
            address = ip_address(text)
        except ValueError:
            message = f"egress refused: {host} resolved to {text!r}, not an address"
            raise EgressRefused(message) from None
        refusal = policy.refusal(address, host)
        if refusal is not None:
            raise EgressRefused(refusal)
        found.append(address)
    if not found:
        raise OSError(f"{host} resolved to no address")
    return found


def _connect(addresses: list[IPAddress], port: int, timeout_s: float | None) -> socket.socket:
    """A TCP connection to the first of ``addresses`` that answers (as
    socket.create_connection does, but to these addresses, not to a name)."""
    error: OSError | None = None
    for address in addresses:
        family = socket.AF_INET if address.version == 4 else socket.AF_INET6
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect((str(address), port))
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError("no address to connect to")


class _CheckedConnection(http.client.HTTPConnection):
    def __init__(
        self, host: str, port: int, *, timeout_s: float, policy: EgressPolicy, resolve: Resolver
    ) -> None:
        super().__init__(host, port, timeout=timeout_s)
        self._policy = policy
        self._resolve = resolve

    def connect(self) -> None:
        addresses = checked_addresses(self.host, self.port, self._policy, self._resolve)
        self.sock = _connect(addresses, self.port, self.timeout)


class _CheckedTLSConnection(http.client.HTTPSConnection):
    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout_s: float,
        policy: EgressPolicy,
        resolve: Resolver,
        tls: ssl.SSLContext,
    ) -> None:
        super().__init__(host, port, timeout=timeout_s, context=tls)
        self._policy = policy
        self._resolve = resolve
        self._tls = tls

    def connect(self) -> None:
        addresses = checked_addresses(self.host, self.port, self._policy, self._resolve)
        sock = _connect(addresses, self.port, self.timeout)
        try:
            # The name, not the address: SNI and the certificate are the name's.
            self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
