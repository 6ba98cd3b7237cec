"""The egress policy's pure parts: the class of every kind of address, host literals read as
the C library reads them, what each policy refuses and why, and the allowed-network setting."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from tickwork.core.egress import (
    ALWAYS_REFUSING,
    AddressClass,
    EgressPolicy,
    cidr_problem,
    classify,
    parse_host,
    url_problem,
    url_refusal,
)
from tickwork.errors import SettingsError
from tickwork.settings import Settings, load_settings

C = AddressClass


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        # cloud metadata, whatever the range they sit in
        ("169.254.169.254", C.METADATA),
        ("169.254.170.2", C.METADATA),
        ("fd00:ec2::254", C.METADATA),
        ("100.100.100.200", C.METADATA),
        ("192.0.0.192", C.METADATA),
        ("168.63.129.16", C.METADATA),
        # link-local
        ("169.254.0.1", C.LINK_LOCAL),
        ("169.254.255.255", C.LINK_LOCAL),
        ("fe80::1", C.LINK_LOCAL),
        ("fe80::1%eth0", C.LINK_LOCAL),
        ("febf:ffff::1", C.LINK_LOCAL),
        # loopback, unspecified
        ("127.0.0.1", C.LOOPBACK),
        ("127.255.255.254", C.LOOPBACK),
        ("::1", C.LOOPBACK),
        ("0.0.0.0", C.UNSPECIFIED),
        ("::", C.UNSPECIFIED),
        # private, shared
        ("10.0.0.5", C.PRIVATE),
        ("172.16.0.1", C.PRIVATE),
        ("172.31.255.255", C.PRIVATE),
        ("192.168.1.1", C.PRIVATE),
        ("fc00::1", C.PRIVATE),
        ("fd12:3456::1", C.PRIVATE),
        ("64:ff9b:1::1", C.PRIVATE),
        ("100.64.0.1", C.SHARED),
        ("100.127.255.255", C.SHARED),
        # multicast, reserved
        ("224.0.0.1", C.MULTICAST),
        ("239.255.255.250", C.MULTICAST),
        ("ff02::1", C.MULTICAST),
        ("0.1.2.3", C.RESERVED),
        ("192.0.2.1", C.RESERVED),
        ("198.18.0.1", C.RESERVED),
        ("198.51.100.7", C.RESERVED),
        ("203.0.113.9", C.RESERVED),
        ("240.0.0.1", C.RESERVED),
        ("255.255.255.255", C.RESERVED),
        ("2001:db8::1", C.RESERVED),
        ("2001::1", C.RESERVED),  # Teredo
        ("3fff::1", C.RESERVED),
        ("100::1", C.RESERVED),  # discard-only
        ("fec0::1", C.RESERVED),  # site-local, deprecated: outside 2000::/3
        # IPv4 inside IPv6: the class of the IPv4 address when it is not public
        ("::ffff:127.0.0.1", C.LOOPBACK),
        ("::ffff:7f00:1", C.LOOPBACK),
        ("::ffff:10.0.0.5", C.PRIVATE),
        ("::ffff:169.254.169.254", C.METADATA),
        ("::ffff:0.0.0.0", C.UNSPECIFIED),
        ("64:ff9b::169.254.169.254", C.METADATA),
        ("64:ff9b::10.1.2.3", C.PRIVATE),
        ("2002:a9fe:a9fe::1", C.METADATA),  # 6to4 of 169.254.169.254
        ("2002:7f00:1::", C.LOOPBACK),
        ("::127.0.0.1", C.LOOPBACK),  # IPv4-compatible, deprecated
        ("::8.8.8.8", C.RESERVED),
        # public
        ("8.8.8.8", C.PUBLIC),
        ("1.1.1.1", C.PUBLIC),
        ("100.128.0.1", C.PUBLIC),  # just past 100.64.0.0/10
        ("172.32.0.1", C.PUBLIC),  # just past 172.16.0.0/12
        ("169.255.0.1", C.PUBLIC),
        ("::ffff:8.8.8.8", C.PUBLIC),
        ("64:ff9b::8.8.8.8", C.PUBLIC),
        ("2002:808:808::1", C.PUBLIC),
        ("2606:4700:4700::1111", C.PUBLIC),
        ("2a00:1450:4001::200e", C.PUBLIC),
    ],
)
def test_each_address_falls_in_its_class(address: str, expected: AddressClass) -> None:
    assert classify(ip_address(address)) is expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),  # the last part fills the remaining bytes
        ("127.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0X7F.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),  # decimal
        ("017700000001", "127.0.0.1"),  # octal
        ("0177.0.0.01", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("2852039166", "169.254.169.254"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("0251.0376.0251.0376", "169.254.169.254"),
        ("169.254.43518", "169.254.169.254"),
        ("4294967295", "255.255.255.255"),
        ("::1", "::1"),
        ("::ffff:169.254.169.254", "::ffff:a9fe:a9fe"),
        ("fe80::1%eth0", "fe80::1%eth0"),
        # not literals: names (resolved and checked when connecting), or nothing at all
        ("4294967296", None),
        ("256.0.0.1", None),
        ("1.2.3.4.5", None),
        ("08", None),  # not octal
        ("0x", None),
        ("0x.1", None),
        ("1..2", None),
        ("127.0.0.1.", None),
        ("hooks.example", None),
        ("1e3", None),
        ("0x7f.example", None),
        ("127.1\n", None),
        ("9" * 5000, None),  # past int()'s digit limit: not an address, and no crash
        ("0" * 40 + "177.1", "127.0.0.1"),
    ],
)
def test_host_literals_are_read_as_the_c_library_reads_them(
    host: str, expected: str | None
) -> None:
    found = parse_host(host)
    assert (None if found is None else str(found)) == expected


def test_the_default_policy_refuses_every_address_that_is_not_public() -> None:
    policy = EgressPolicy()
    assert policy.refusal(ip_address("8.8.8.8")) is None
    for text in ("127.0.0.1", "::1", "10.0.0.5", "100.64.0.1", "0.0.0.0", "224.0.0.1"):
        assert policy.refusal(ip_address(text)) is not None, text


def test_allow_private_never_allows_link_local_or_metadata() -> None:
    policy = EgressPolicy(allow_private=True)
    for text in ("127.0.0.1", "::1", "10.0.0.5", "fc00::1", "100.64.0.1", "::ffff:10.0.0.5"):
        assert policy.refusal(ip_address(text)) is None, text
    for text in (
        "169.254.169.254",
        "169.254.1.1",
        "fe80::1",
        "fd00:ec2::254",
        "100.100.100.200",
        "::ffff:169.254.169.254",
    ):
        refusal = policy.refusal(ip_address(text))
        assert refusal is not None, text
        assert refusal.address_class.always_refused


def test_allowed_networks_allow_only_what_they_hold_and_never_metadata() -> None:
    loopback = EgressPolicy.from_settings(allow_private=False, allowed_cidrs=["127.0.0.0/8"])
    assert loopback.refusal(ip_address("127.0.0.1")) is None
    assert loopback.refusal(ip_address("::ffff:127.0.0.1")) is None  # the same destination
    assert loopback.refusal(ip_address("::1")) is not None
    assert loopback.refusal(ip_address("10.0.0.5")) is not None

    everything = EgressPolicy.from_settings(
        allow_private=False, allowed_cidrs=["0.0.0.0/0", "::/0"]
    )
    assert everything.refusal(ip_address("10.0.0.5")) is None
    assert everything.refusal(ip_address("169.254.169.254")) is not None
    assert everything.refusal(ip_address("100.100.100.200")) is not None
    assert everything.refusal(ip_address("fe80::1")) is not None


@pytest.mark.parametrize(
    ("address", "host", "message"),
    [
        (
            "10.0.0.5",
            None,
            "egress refused: 10.0.0.5 is a private address; allow it with "
            "TICKWORK_EGRESS_ALLOW_PRIVATE or TICKWORK_EGRESS_ALLOWED_CIDRS",
        ),
        (
            "0.0.0.0",
            None,
            "egress refused: 0.0.0.0 is an unspecified address; allow it with "
            "TICKWORK_EGRESS_ALLOW_PRIVATE or TICKWORK_EGRESS_ALLOWED_CIDRS",
        ),
        (
            "169.254.169.254",
            "hooks.example",
            "egress refused: hooks.example resolved to 169.254.169.254, a cloud metadata "
            "address, which webhooks may never reach",
        ),
        (
            "::ffff:169.254.169.254",
            None,
            "egress refused: ::ffff:a9fe:a9fe (169.254.169.254) is a cloud metadata address, "
            "which webhooks may never reach",
        ),
    ],
)
def test_a_refusal_names_the_address_its_class_and_the_way_out(
    address: str, host: str | None, message: str
) -> None:
    refusal = EgressPolicy().refusal(ip_address(address), host)
    assert str(refusal) == message


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "https://169.254.169.254:443/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/latest/meta-data/",
        "http://2852039166/",
        "http://0xa9fea9fe/",
        "http://0251.0376.0251.0376/",
        "http://169.254.1.1:8080/x",
        "http://[fe80::1%25eth0]/",
        "http://user:pass@169.254.169.254/",
    ],
)
def test_a_url_at_a_link_local_or_metadata_literal_is_refused_when_written(url: str) -> None:
    assert url_refusal(url) is not None
    problem = url_problem(url, "runner.url")
    assert problem is not None
    assert (problem.code, problem.target) == ("egress_refused", "runner.url")
    assert problem.message.startswith("runner.url: egress refused: ")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379/",
        "http://[::1]/",
        "http://10.0.0.5/",
        "http://localhost/",
        "http://metadata.google.internal/",  # a name: checked where it resolves, at run time
        "https://hooks.example/x",
        "not a url",
        "http://[::1/",
    ],
)
def test_urls_the_worker_s_settings_may_allow_pass_when_written(url: str) -> None:
    assert url_refusal(url) is None
    assert url_problem(url, "runner.url") is None


def test_under_a_stricter_policy_loopback_and_private_literals_are_refused_when_written() -> None:
    strict = EgressPolicy()
    assert url_refusal("http://127.0.0.1:6379/", strict) == (
        "egress refused: 127.0.0.1 is a loopback address; allow it with "
        "TICKWORK_EGRESS_ALLOW_PRIVATE or TICKWORK_EGRESS_ALLOWED_CIDRS"
    )
    assert url_refusal("http://0x7f.1/", strict) is not None
    assert url_refusal("http://localhost:8080/", strict) is not None
    assert url_refusal("http://api.localhost/", strict) is not None
    assert url_refusal("http://hooks.example/", strict) is None
    assert url_refusal("http://8.8.8.8/", strict) is None
    assert ALWAYS_REFUSING.allow_private


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.0/8", None),
        ("::1/128", None),
        ("10.0.0.0/8", None),
        ("0.0.0.0/0", None),
        ("10.0.0.5", None),  # one address
        ("10.0.0.5/24", "'10.0.0.5/24' is not a network in CIDR notation"),
        ("ten", "'ten' is not a network in CIDR notation"),
        ("169.254.0.0/16", "169.254.0.0/16 holds only link-local or cloud metadata addresses"),
        ("169.254.169.254", "169.254.169.254 holds only link-local or cloud metadata"),
        ("fe80::/64", "fe80::/64 holds only link-local or cloud metadata addresses"),
        ("100.100.100.200/32", "100.100.100.200/32 holds only link-local or cloud metadata"),
    ],
)
def test_an_allowed_network_setting_is_checked(text: str, expected: str | None) -> None:
    problem = cidr_problem(text)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None
        assert problem.startswith(expected)


def test_the_settings_name_the_variable_of_a_wrong_allowed_network() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(egress_allowed_cidrs=["127.0.0.0/8", "169.254.169.254/32", "nope"])
    [line] = str(raised.value).splitlines()
    assert line.startswith("TICKWORK_EGRESS_ALLOWED_CIDRS: ")
    assert "169.254.169.254/32 holds only link-local" in line
    assert "'nope' is not a network" in line


def test_the_settings_build_the_worker_s_policy() -> None:
    settings = load_settings(egress_allowed_cidrs=["127.0.0.0/8"], egress_allow_private=False)
    policy = EgressPolicy.from_settings(
        allow_private=settings.egress_allow_private, allowed_cidrs=settings.egress_allowed_cidrs
    )
    assert policy.refusal(ip_address("127.0.0.1")) is None
    assert policy.refusal(ip_address("10.0.0.5")) is not None
    # Refused unless allowed:
    assert Settings.model_fields["egress_allow_private"].default is False
    assert Settings.model_fields["egress_allowed_cidrs"].default_factory() == []  # type: ignore[misc,call-arg]
