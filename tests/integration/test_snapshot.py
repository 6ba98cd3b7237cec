"""The "nothing changed" check many tests make (``api_support.snapshot``) compares data, not
its serialized form: a read that steps a large hash's incremental rehash reorders the hash's
DUMP (seen once in CI, a 404 audit read) without changing a thing."""

from __future__ import annotations

from tickwork.store import Store

from .api_support import snapshot


def test_a_read_leaves_the_snapshot_equal_even_when_it_reorders_the_dump(store: Store) -> None:
    client, key = store.client, f"{store.keys.prefix}:schedule:1"
    # A value over 64 bytes: a hashtable; the 17th field doubles its table, to rehash lazily.
    client.hset(key, mapping={f"f{i}": "v" * 70 if i == 0 else str(i) for i in range(16)})
    client.hset(key, "f16", "x")
    before = snapshot(store)

    for _ in range(20):  # each lookup moves a bucket: its DUMP is almost surely reordered
        client.hmget(key, ["f1", "f2"])

    assert snapshot(store) == before


def test_a_write_changes_the_snapshot(store: Store) -> None:
    key = f"{store.keys.prefix}:schedule:1"
    store.client.hset(key, mapping={"a": "1", "b": "2"})
    before = snapshot(store)
    store.client.hset(key, "b", "3")
    assert snapshot(store) != before
