"""The leader lease is owner-checked: a renew or release by anyone but its holder changes
nothing — not the lease, not its time to live, and no "released" notice wakes a standby.

rq's queue scheduler extends and deletes its locks without checking who owns them (see the
style guide); these tests fail if tickwork's Lua scripts ever lose their token check.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
import redis

from tickwork.errors import LeaseLost
from tickwork.store import Lease, Store

NAME = "scheduler"
TTL_MS = 60_000


@pytest.fixture
def store(redis_client: redis.Redis) -> Store:
    return Store(redis_client, f"lease{uuid.uuid4().hex[:8]}")


@dataclass(frozen=True)
class LeaseState:
    """What a renew or release could change: the value, the time to live (to the second:
    the clock runs between two readings), the term counter and the "released" notices."""

    value: bytes | None
    ttl_s: int
    term: bytes | None
    released: list[bytes]


def _state(store: Store) -> LeaseState:
    client, keys = store.client, store.keys
    value = client.get(keys.lease(NAME))
    return LeaseState(
        value=value if isinstance(value, bytes) else None,
        ttl_s=round(int(client.pttl(keys.lease(NAME))) / 1000),
        term=client.get(keys.lease_term(NAME)),  # type: ignore[arg-type]
        released=list(client.lrange(keys.lease_released(NAME), 0, -1)),  # type: ignore[arg-type]
    )


def _held(store: Store, token: str = "holder") -> Lease:
    lease = store.leases.acquire(NAME, token, TTL_MS)
    assert lease is not None
    return lease


def _strangers(lease: Lease) -> list[Lease]:
    """Callers that are not the holder: another token in the same term, the holder's token
    in another term (a lease it held before), and both wrong."""
    return [
        Lease(NAME, "intruder", lease.term),
        Lease(NAME, lease.token, lease.term - 1),
        Lease(NAME, lease.token, lease.term + 1),
        Lease(NAME, "intruder", lease.term + 1),
    ]


def test_a_renew_by_anyone_but_the_holder_raises_and_changes_nothing(store: Store) -> None:
    lease = _held(store)
    store.client.pexpire(store.keys.lease(NAME), 30_000)  # so an extension would show
    before = _state(store)

    for stranger in _strangers(lease):
        with pytest.raises(LeaseLost):
            store.leases.renew(stranger, TTL_MS)

    assert _state(store) == before
    assert before.ttl_s == 30


def test_a_release_by_anyone_but_the_holder_keeps_the_lease_and_wakes_no_standby(
    store: Store,
) -> None:
    lease = _held(store)
    before = _state(store)

    released = [store.leases.release(stranger) for stranger in _strangers(lease)]

    assert released == [False] * 4
    assert _state(store) == before
    assert before.released == []  # no "released" notice was pushed
    assert store.leases.acquire(NAME, "standby", TTL_MS) is None  # still held


def test_the_holder_renews_and_releases_and_only_its_release_wakes_a_standby(
    store: Store,
) -> None:
    lease = _held(store)
    store.client.pexpire(store.keys.lease(NAME), 30_000)

    store.leases.renew(lease, TTL_MS)
    assert _state(store).ttl_s == TTL_MS // 1000

    assert store.leases.release(lease) is True
    after = _state(store)
    assert after.value is None
    assert after.released == [str(lease.term).encode()]
    successor = store.leases.acquire(NAME, "standby", TTL_MS)
    assert successor is not None
    assert successor.term == lease.term + 1


def test_a_holder_whose_lease_expired_and_was_taken_cannot_renew_or_release_the_new_one(
    store: Store,
) -> None:
    old = _held(store, "first")
    store.client.delete(store.keys.lease(NAME))  # its lease ran out
    new = _held(store, "second")
    before = _state(store)

    with pytest.raises(LeaseLost):
        store.leases.renew(old, TTL_MS)
    assert store.leases.release(old) is False

    assert _state(store) == before
    assert before.value == new.value.encode()


def test_the_same_token_taking_the_lease_again_after_it_lapsed_fences_its_earlier_term(
    store: Store,
) -> None:
    earlier = _held(store, "same-process")
    store.client.delete(store.keys.lease(NAME))
    later = _held(store, "same-process")
    assert later.term == earlier.term + 1
    before = _state(store)

    with pytest.raises(LeaseLost):
        store.leases.renew(earlier, TTL_MS)
    assert store.leases.release(earlier) is False

    assert _state(store) == before
