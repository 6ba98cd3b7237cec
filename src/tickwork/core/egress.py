"""Where outgoing requests (webhooks) may go: the egress policy, as pure functions.

Every address falls in one class:

- **always refused**: link-local (169.254.0.0/16, fe80::/10) and cloud metadata addresses
  (169.254.169.254, fd00:ec2::254, Alibaba's 100.100.100.200, ...). No setting allows them:
  a webhook that reaches the metadata service hands out the host's cloud credentials.
- **refused unless allowed**: loopback, private (RFC 1918, fc00::/7), shared (CGNAT,
  100.64.0.0/10), unspecified (0.0.0.0, ::, which connect to this host), multicast and
  reserved ranges (documentation, benchmarking, 240.0.0.0/4, IPv6 outside 2000::/3, ...).
  ``EgressPolicy.allow_private`` allows them all; ``EgressPolicy.allowed`` allows the
  networks it lists (e.g. 127.0.0.0/8 for a receiver on the same host).
- **public**: allowed.

An IPv6 address carrying an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``, NAT64
``64:ff9b::a.b.c.d``, 6to4 ``2002:AABB:CCDD::``, IPv4-compatible ``::a.b.c.d``) is in the
class of the IPv4 address when that one is not public: ``::ffff:127.0.0.1`` is loopback.

The worker checks the addresses a name resolves to when it connects (tickwork.egress); the
API refuses a URL whose host is a literal address in a refused class when it is written
(``url_refusal``), which needs no I/O. Host literals are read as the C library reads them,
so ``0x7f.1``, ``2130706433`` and ``0177.0.0.1`` are the address 127.0.0.1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from urllib.parse import urlsplit

from tickwork.errors import Problem

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

ALLOW_HINT = "allow it with TICKWORK_EGRESS_ALLOW_PRIVATE or TICKWORK_EGRESS_ALLOWED_CIDRS"


class AddressClass(Enum):
    """The value is the word used in messages ("10.0.0.5 is a private address")."""

    METADATA = "cloud metadata"
    LINK_LOCAL = "link-local"
    LOOPBACK = "loopback"
    UNSPECIFIED = "unspecified"
    PRIVATE = "private"
    SHARED = "shared (carrier-grade NAT)"
    MULTICAST = "multicast"
    RESERVED = "reserved"
    PUBLIC = "public"

    @property
    def always_refused(self) -> bool:
        return self in (AddressClass.METADATA, AddressClass.LINK_LOCAL)


# Instance metadata and platform endpoints of the clouds, reachable from their VMs. Most are
# link-local anyway; the others are not, and are listed for that reason.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ip_address(text)
    for text in (
        "169.254.169.254",  # AWS, GCP, Azure, OCI, DigitalOcean, Hetzner, OpenStack, ...
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "169.254.170.23",  # AWS EKS Pod Identity credentials
        "169.254.0.23",  # Tencent Cloud
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "fd00:ec2::23",  # AWS EKS Pod Identity over IPv6
        "100.100.100.200",  # Alibaba Cloud (inside 100.64.0.0/10)
        "192.0.0.192",  # Oracle Cloud (legacy)
        "168.63.129.16",  # Azure WireServer (a public address, served by the host)
    )
)

_LINK_LOCAL_V4 = IPv4Network("169.254.0.0/16")
_LINK_LOCAL_V6 = IPv6Network("fe80::/10")
_V4: tuple[tuple[AddressClass, tuple[IPv4Network, ...]], ...] = (
    (AddressClass.LINK_LOCAL, (_LINK_LOCAL_V4,)),
    (AddressClass.UNSPECIFIED, (IPv4Network("0.0.0.0/32"),)),
    (AddressClass.LOOPBACK, (IPv4Network("127.0.0.0/8"),)),
    (
        AddressClass.PRIVATE,
        (IPv4Network("10.0.0.0/8"), IPv4Network("172.16.0.0/12"), IPv4Network("192.168.0.0/16")),
    ),
    (AddressClass.SHARED, (IPv4Network("100.64.0.0/10"),)),
    (AddressClass.MULTICAST, (IPv4Network("224.0.0.0/4"),)),
    (
        AddressClass.RESERVED,
        tuple(
            IPv4Network(text)
            for text in (
                "0.0.0.0/8",  # "this network": connects to this host on Linux
                "192.0.0.0/24",  # IETF protocol assignments
                "192.0.2.0/24",  # documentation (TEST-NET-1)
                "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
                "198.18.0.0/15",  # benchmarking
                "198.51.100.0/24",  # documentation (TEST-NET-2)
                "203.0.113.0/24",  # documentation (TEST-NET-3)
                "240.0.0.0/4",  # reserved, and the broadcast address 255.255.255.255
            )
        ),
    ),
)
_V6: tuple[tuple[AddressClass, tuple[IPv6Network, ...]], ...] = (
    (AddressClass.LINK_LOCAL, (_LINK_LOCAL_V6,)),
    (AddressClass.UNSPECIFIED, (IPv6Network("::/128"),)),
    (AddressClass.LOOPBACK, (IPv6Network("::1/128"),)),
    # Unique local addresses, and NAT64 prefixes for local use (RFC 8215).
    (AddressClass.PRIVATE, (IPv6Network("fc00::/7"), IPv6Network("64:ff9b:1::/48"))),
    (AddressClass.MULTICAST, (IPv6Network("ff00::/8"),)),
    (
        AddressClass.RESERVED,
        (
            IPv6Network("2001::/23"),  # IETF protocol assignments (Teredo, ORCHID, ...)
            IPv6Network("2001:db8::/32"),  # documentation
            IPv6Network("3fff::/20"),  # documentation (RFC 9637)
        ),
    ),
)
_GLOBAL_UNICAST = IPv6Network("2000::/3")
_MAPPED = IPv6Network("::ffff:0:0/96")
_NAT64 = IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = IPv6Network("2002::/16")
_COMPATIBLE = IPv6Network("::/96")
# A part of a C-library IPv4 literal: hex (0x...), octal (0...) or decimal.
_PART = re.compile(r"(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\Z")


def classify(address: IPAddress) -> AddressClass:
    """The class of ``address`` (see the module's docstring)."""
    if isinstance(address, IPv6Address):
        address = IPv6Address(int(address))  # without a zone (%eth0): the same destination
    if address in METADATA_ADDRESSES:
        return AddressClass.METADATA
    if isinstance(address, IPv4Address):
        for found, v4_networks in _V4:
            if any(address in network for network in v4_networks):
                return found
        return AddressClass.PUBLIC
    carried = embedded_ipv4(address)
    if carried is not None:
        inner = classify(carried)
        if inner is not AddressClass.PUBLIC:
            return inner
        if address in _MAPPED or address in _NAT64:
            return AddressClass.PUBLIC  # the public IPv4 address, reached another way
    for found, v6_networks in _V6:
        if any(address in network for network in v6_networks):
            return found
    # Outside 2000::/3 nothing is assigned for global unicast.
    return AddressClass.PUBLIC if address in _GLOBAL_UNICAST else AddressClass.RESERVED


def embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4, compatible), if any."""
    if address in _MAPPED or address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return IPv4Address((int(address) >> 80) & 0xFFFFFFFF)
    if address in _COMPATIBLE and int(address) > 1:  # not :: or ::1
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def parse_host(host: str) -> IPAddress | None:
    """The address ``host`` (a URL's host, without brackets) is a literal of, else None.

    Besides the usual forms, IPv4 is read as inet_aton(3) (which getaddrinfo uses) reads it:
    one to four parts, each decimal, octal (leading 0) or hex (0x), the last filling the
    remaining bytes: ``127.1``, ``0x7f000001``, ``2130706433`` and ``0177.0.0.1`` are all
    127.0.0.1."""
    try:
        return ip_address(host)
    except ValueError:
        pass
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_PART.match(part) for part in parts):
        return None
    try:
        values = [_part_value(part) for part in parts]
    except ValueError:  # thousands of decimal digits: past int()'s limit, and not an address
        return None
    value = 0
    for index, part in enumerate(values[:-1]):
        if part > 0xFF:
            return None
        value |= part << (8 * (3 - index))
    last_bits = 8 * (4 - len(values[:-1]))
    if values[-1] >= 1 << last_bits:
        return None
    return IPv4Address(value | values[-1])


def _is_ip(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


def _part_value(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:], 16)
    if part.startswith("0"):
        return int(part, 8)
    return int(part)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the policy refuses ``address``: the URL's host itself, or what the name ``host``
    resolved to, or (``resolved`` False) what the literal ``host`` is written for."""

    address: IPAddress
    address_class: AddressClass
    host: str | None = None
    resolved: bool = True

    def __str__(self) -> str:
        # The host as written when it is the usual spelling of the address (::ffff:1.2.3.4).
        written = self.host is not None and (
            self.host == str(self.address) or (not self.resolved and _is_ip(self.host))
        )
        shown = self.host if written and self.host is not None else str(self.address)
        if isinstance(self.address, IPv6Address):
            carried = embedded_ipv4(self.address)
            if carried is not None and classify(carried) is self.address_class:
                shown += f" ({carried})"
        what = self.address_class.value
        article = "an" if what[0] in "aeiou" else "a"
        if self.host is not None and not written:
            verb = "resolved to" if self.resolved else "is"
            said = f"{self.host} {verb} {shown}, {article} {what} address"
        else:
            said = f"{shown} is {article} {what} address"
        if self.address_class.always_refused:
            return f"egress refused: {said}, which webhooks may never reach"
        return f"egress refused: {said}; {ALLOW_HINT}"


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """What may be reached besides public addresses. The default refuses every address
    that is not public; nothing allows link-local or cloud metadata addresses."""

    allow_private: bool = False
    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, *, allow_private: bool, allowed_cidrs: list[str]) -> EgressPolicy:
        """The policy of the settings' values (already checked with ``cidr_problem``)."""
        return cls(allow_private, tuple(ip_network(text) for text in allowed_cidrs))

    def refusal(
        self, address: IPAddress, host: str | None = None, *, resolved: bool = True
    ) -> Refusal | None:
        """Why ``address`` (what ``host`` resolved to, if given) may not be reached, or None
        when it may."""
        found = classify(address)
        if found is AddressClass.PUBLIC:
            return None
        if not found.always_refused and (self.allow_private or self._listed(address)):
            return None
        return Refusal(address, found, host, resolved)

    def _listed(self, address: IPAddress) -> bool:
        candidates: list[IPAddress] = [address]
        if isinstance(address, IPv6Address):
            address = candidates[0] = IPv6Address(int(address))  # without a zone
            carried = embedded_ipv4(address)
            if carried is not None:
                candidates.append(carried)
        return any(
            candidate in network
            for candidate in candidates
            for network in self.allowed
            if candidate.version == network.version
        )


ALWAYS_REFUSING = EgressPolicy(allow_private=True)
"""Refuses only what no setting allows: what every URL is checked against when written."""


def cidr_problem(text: str) -> str | None:
    """What is wrong with ``text`` as an allowed network, or None."""
    try:
        network = ip_network(text)
    except ValueError as exc:
        return f"{text!r} is not a network in CIDR notation: {exc}"
    if isinstance(network, IPv4Network):
        inside = network.subnet_of(_LINK_LOCAL_V4)
    else:
        inside = network.subnet_of(_LINK_LOCAL_V6)
    if inside or (network.num_addresses == 1 and network[0] in METADATA_ADDRESSES):
        return (
            f"{text} holds only link-local or cloud metadata addresses, which are always "
            "refused; no setting allows them"
        )
    return None


def host_refusal(host: str, policy: EgressPolicy = ALWAYS_REFUSING) -> Refusal | None:
    """Why the URL host ``host`` is refused without resolving it: a literal address the
    policy refuses, or a name of loopback (``localhost``, RFC 6761). None for other names:
    they are checked when the worker connects."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return policy.refusal(IPv4Address("127.0.0.1"), host, resolved=False)
    address = parse_host(host)
    return None if address is None else policy.refusal(address, host, resolved=False)


def url_refusal(url: str, policy: EgressPolicy = ALWAYS_REFUSING) -> str | None:
    """Why ``url`` is refused when it is written (pure: literal hosts only), or None. Used
    for a webhook runner's ``runner.url`` and a report schedule's webhook ``send_to``."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None  # not a URL: the caller's own check says so
    if not host:
        return None
    refusal = host_refusal(host, policy)
    return None if refusal is None else str(refusal)


def url_problem(url: str, target: str, policy: EgressPolicy = ALWAYS_REFUSING) -> Problem | None:
    """The Problem (code ``egress_refused``, naming ``target``) of a URL refused when it is
    written, or None. Pure, for the dialects' checks."""
    reason = url_refusal(url, policy)
    if reason is None:
        return None
    return Problem("egress_refused", target, f"{target}: {reason}.")
