"""The rate-limit script on a real Redis: a burst, then one request per interval; all buckets
of a request or none; a refusal writes nothing; every key expires on its own."""

from __future__ import annotations

import hashlib
import time

import pytest
import redis

from tickwork.store import Rate, Store

# One request per 100 s: a refusal right after the burst cannot be undone by a slow host.
SLOW = Rate(0.01, 3)
DIGEST = hashlib.sha256(b"some-token").digest()


def _values(store: Store) -> dict[bytes, object]:
    client = store.client
    return {key: client.get(key) for key in sorted(client.scan_iter(match=f"{store.prefix}:*"))}


def test_a_bucket_allows_its_burst_then_refuses_with_the_wait_until_it_has_room(
    store: Store,
) -> None:
    bucket = store.rate_limits.token(DIGEST, SLOW)

    verdicts = [store.rate_limits.take([bucket]) for _ in range(4)]

    assert [v.allowed for v in verdicts] == [True, True, True, False]
    (wait,) = verdicts[-1].waits_s
    assert 0 < wait <= 100  # one interval, less what has passed since the first request


@pytest.mark.slow  # waits out a rate limit's interval (2 s)
def test_a_refused_caller_is_served_again_once_its_wait_has_passed(store: Store) -> None:
    bucket = store.rate_limits.token(DIGEST, Rate(0.5, 1))  # one request per 2 s
    assert store.rate_limits.take([bucket]).allowed

    refused = store.rate_limits.take([bucket])
    assert not refused.allowed
    time.sleep(refused.waits_s[0] + 0.01)

    assert store.rate_limits.take([bucket]).allowed


def test_a_request_takes_from_every_bucket_or_from_none(store: Store) -> None:
    token = store.rate_limits.token(DIGEST, SLOW)
    stack = store.rate_limits.stack(1, Rate(0.01, 1))
    assert store.rate_limits.take([token, stack]).allowed
    before = _values(store)

    # When the stack has no room left, the token's bucket is not spent either
    refused = store.rate_limits.take([token, stack])

    assert not refused.allowed
    assert refused.waits_s[0] == 0
    assert refused.waits_s[1] > 0  # the stack refused
    assert _values(store) == before
    assert [store.rate_limits.take([token]).allowed for _ in range(3)] == [True, True, False]


def test_buckets_are_kept_per_token_per_stack_and_per_client_address(store: Store) -> None:
    one = Rate(0.01, 1)
    buckets = [
        store.rate_limits.token(DIGEST, one),
        store.rate_limits.token(hashlib.sha256(b"another").digest(), one),
        store.rate_limits.stack(1, one),
        store.rate_limits.stack(2, one),
        store.rate_limits.client("192.0.2.1", one),
        store.rate_limits.client("2001:db8::1", one),
    ]

    assert all(store.rate_limits.take([bucket]).allowed for bucket in buckets)
    assert not any(store.rate_limits.take([bucket]).allowed for bucket in buckets)
    assert len(_values(store)) == len(buckets)


def test_a_bucket_is_named_by_the_tokens_digest_never_by_the_token(store: Store) -> None:
    store.rate_limits.take([store.rate_limits.token(DIGEST, SLOW)])

    (key,) = _values(store)
    assert key == f"{store.prefix}:rate:token:{DIGEST.hex()}".encode()
    assert b"some-token" not in key


def test_every_key_expires_when_its_bucket_is_full_again(
    store: Store, redis_client: redis.Redis
) -> None:
    slow = store.rate_limits.token(DIGEST, SLOW)
    fast = store.rate_limits.stack(1, Rate(100, 1))  # full again 10 ms after a request

    for _ in range(2):
        store.rate_limits.take([slow])
    store.rate_limits.take([fast])

    # Given two requests at one per 100 s with a burst of 3, the bucket is full again in
    # (at most) 200 s: so long, and no longer, is its key kept
    assert 0 < redis_client.pttl(slow.key) <= 200_000
    deadline = time.monotonic() + 30
    while redis_client.exists(fast.key):
        assert time.monotonic() < deadline, "the idle bucket's key was kept"
        time.sleep(0.01)


def test_the_state_is_the_redis_clocks_instant_in_microseconds(
    store: Store, redis_client: redis.Redis
) -> None:
    bucket = store.rate_limits.token(DIGEST, SLOW)
    seconds, micros = redis_client.time()
    before_us = seconds * 1_000_000 + micros

    store.rate_limits.take([bucket])

    stored = redis_client.get(bucket.key)
    assert isinstance(stored, bytes)
    assert stored.isdigit()
    # the bucket is one interval (100 s) past the Redis clock's now
    assert 0 <= int(stored) - 100_000_000 - before_us < 10_000_000
