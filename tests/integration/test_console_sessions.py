"""Console sessions in the store: the cookie's id opens its session until it expires or is
signed out; Redis keeps neither the id nor the token, only their digests."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

import redis

from tickwork.store import Store
from tickwork.store.connection import text_of

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TOKEN_SHA = hashlib.sha256(b"a-token").hexdigest()


def _store(client: redis.Redis) -> Store:
    return Store(client, f"t{uuid.uuid4().hex[:8]}")


def test_a_session_opens_with_its_id_and_ends_at_sign_out(redis_client: redis.Redis) -> None:
    store = _store(redis_client)
    session_id, session = store.sessions.create(
        email="a@example.com", token_sha256=TOKEN_SHA, stack=2, zone="Europe/Berlin", now=NOW
    )
    assert store.sessions.get(session_id) == session
    assert (session.email, session.stack, session.zone) == ("a@example.com", 2, "Europe/Berlin")
    assert store.sessions.get(session_id + "x") is None
    assert store.sessions.get("") is None

    store.sessions.switch_stack(session_id, 3)
    switched = store.sessions.get(session_id)
    assert switched is not None
    assert switched.stack == 3

    store.sessions.delete(session_id)
    assert store.sessions.get(session_id) is None


def test_redis_holds_digests_and_a_ttl_never_the_cookie(redis_client: redis.Redis) -> None:
    store = _store(redis_client)
    session_id, session = store.sessions.create(
        email="a@example.com", token_sha256=TOKEN_SHA, stack=1, zone="UTC", now=NOW, ttl_s=600
    )
    (key,) = redis_client.keys(f"{store.prefix}:session:*")
    assert text_of(key) == store.keys.session(hashlib.sha256(session_id.encode()).hexdigest())
    assert 0 < redis_client.ttl(key) <= 600
    dumped = b"".join(text_of(value).encode() for value in redis_client.hgetall(key).values())
    assert session_id.encode() not in dumped
    assert b"a-token" not in dumped
    assert session.csrf.encode() in dumped  # the CSRF token is a server-side secret


def test_switching_stack_does_not_revive_an_expired_session(redis_client: redis.Redis) -> None:
    store = _store(redis_client)
    session_id, _ = store.sessions.create(
        email="a@example.com", token_sha256=TOKEN_SHA, stack=1, zone="UTC", now=NOW
    )
    redis_client.delete(*redis_client.keys(f"{store.prefix}:session:*"))  # as when it expires
    store.sessions.switch_stack(session_id, 2)
    assert store.sessions.get(session_id) is None
    assert redis_client.keys(f"{store.prefix}:session:*") == []
