"""How a test session claims its database on a shared Redis (tests/redis_claims.py), tried on
a private server of this module's own, so no other session's database is touched."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redis_claims import (
    CLAIM_KEY,
    CLAIM_TTL_MS,
    MARKER_KEY,
    Renewal,
    claim_database,
    describe_server,
    release,
    reset,
    try_claim,
)
from tickwork.embedded import EmbeddedServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private server's base URL (no database), every database empty for each test."""
    private = EmbeddedServer(Path(tmp_path_factory.mktemp("claims")))
    private.start()
    try:
        yield private.url.rsplit("/", 1)[0]
    finally:
        private.stop()


_clients: list[redis.Redis] = []


@pytest.fixture(autouse=True)
def _empty(server: str) -> Iterator[None]:
    _db(server, 0).flushall()  # the module's own private server
    yield
    while _clients:
        _clients.pop().close()


def _db(server: str, number: int) -> redis.Redis:
    client = redis.Redis.from_url(f"{server}/{number}")
    _clients.append(client)
    return client


def test_sessions_racing_for_one_empty_database_leave_it_to_exactly_one(server: str) -> None:
    start = threading.Barrier(8)
    won: list[str] = []

    def contend(token: str) -> None:
        client = _db(server, 15)
        start.wait(timeout=10)
        if try_claim(client, token):
            won.append(token)

    threads = [threading.Thread(target=contend, args=(f"session-{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a contending session never finished"

    assert len(won) == 1
    assert _db(server, 15).get(CLAIM_KEY) == won[0].encode()


def test_each_session_gets_a_database_of_its_own_from_15_down(server: str) -> None:
    assert claim_database(server, "a") == f"{server}/15"
    assert claim_database(server, "b") == f"{server}/14"


def test_a_database_with_other_data_is_never_claimed_nor_flushed(server: str) -> None:
    _db(server, 15).set("someones-data", "1")
    assert claim_database(server, "a") == f"{server}/14"
    assert _db(server, 15).get("someones-data") == b"1"


def test_a_crashed_sessions_claim_expires_and_its_database_is_claimed_again(
    server: str,
) -> None:
    crashed = _db(server, 15)
    assert try_claim(crashed, "crashed")
    crashed.set("leftover", "1")
    assert 0 < crashed.pttl(CLAIM_KEY) <= CLAIM_TTL_MS
    assert claim_database(server, "next") == f"{server}/14"  # still held: left alone

    crashed.pexpire(CLAIM_KEY, 1)  # the TTL running out, without the minute's wait
    time.sleep(0.05)

    assert claim_database(server, "next") == f"{server}/15"
    assert crashed.get("leftover") is None
    assert crashed.get(CLAIM_KEY) == b"next"


def test_a_live_session_renews_its_claim(server: str) -> None:
    client = _db(server, 15)
    assert try_claim(client, "live")
    client.pexpire(CLAIM_KEY, 2_000)
    with Renewal(f"{server}/15", "live", every_s=0.05):
        deadline = time.monotonic() + 30
        while client.pttl(CLAIM_KEY) <= 2_000:
            assert time.monotonic() < deadline, "the claim was not renewed"
            time.sleep(0.02)
    assert client.get(CLAIM_KEY) == b"live"


def test_renewal_never_extends_another_sessions_claim(server: str) -> None:
    client = _db(server, 15)
    assert try_claim(client, "owner")
    client.pexpire(CLAIM_KEY, 2_000)
    with Renewal(f"{server}/15", "intruder", every_s=0.01):
        time.sleep(0.3)
    assert client.pttl(CLAIM_KEY) <= 2_000


def test_reset_flushes_the_sessions_own_database_and_keeps_the_claim(server: str) -> None:
    client = _db(server, 15)
    assert try_claim(client, "mine")
    client.set("from-a-test", "1")
    reset(client, "mine")
    assert set(client.keys()) == {CLAIM_KEY.encode(), MARKER_KEY.encode()}
    assert client.get(CLAIM_KEY) == b"mine"
    assert 0 < client.pttl(CLAIM_KEY) <= CLAIM_TTL_MS


def test_a_session_that_lost_its_claim_flushes_nothing(server: str) -> None:
    client = _db(server, 15)
    assert try_claim(client, "first")
    client.pexpire(CLAIM_KEY, 1)
    time.sleep(0.05)
    assert try_claim(client, "second")
    client.set("seconds-data", "1")

    with pytest.raises(RuntimeError, match="claim on Redis database 15 is gone"):
        reset(client, "first")
    assert not release(client, "first")
    assert client.get("seconds-data") == b"1"
    assert release(client, "second")
    assert client.dbsize() == 0


def test_a_named_database_is_taken_with_its_data_but_not_from_a_live_session(
    server: str,
) -> None:
    client = _db(server, 3)
    client.set("old-test-data", "1")
    assert not try_claim(client, "a")  # the shared-server rule: not empty
    assert try_claim(client, "a", any_unclaimed=True)
    assert client.get("old-test-data") is None
    assert not try_claim(client, "b", any_unclaimed=True)


def test_the_header_names_the_version_and_the_eviction_policy(server: str) -> None:
    client = _db(server, 0)
    info = client.info("server")
    version = info.get("valkey_version") or info["redis_version"]
    assert describe_server(f"{server}/0").endswith(f" {version}, maxmemory-policy noeviction")
    client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        assert describe_server(f"{server}/0").endswith("maxmemory-policy allkeys-lru")
    finally:
        client.config_set("maxmemory-policy", "noeviction")


def test_a_database_reset_between_tests_is_never_taken_by_another_session(
    server: str,
) -> None:
    owner = _db(server, 15)
    assert try_claim(owner, "owner")
    done = threading.Event()
    intruder_won: list[bool] = []

    def intrude() -> None:
        client = _db(server, 15)
        while not done.is_set():
            if try_claim(client, "intruder"):
                intruder_won.append(True)
                return

    thread = threading.Thread(target=intrude)
    thread.start()
    try:
        for _ in range(300):
            reset(owner, "owner")
    finally:
        done.set()
        thread.join(timeout=30)
    assert not thread.is_alive(), "the intruder did not stop"

    assert not intruder_won
    assert owner.get(CLAIM_KEY) == b"owner"
