"""One page of records through a sorted-set index: O(page), whatever the total."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import redis

from tickwork.store.connection import text_of, translated


def read_page(
    client: redis.Redis, index: str, key_of: Callable[[int], str], *, skip: int, top: int
) -> tuple[list[Mapping[Any, Any]], int]:
    """The hashes of the index's members ``skip`` .. ``skip + top - 1`` (by score, which is
    the id), with members whose record is gone left out, and the index's size."""
    with translated():
        total = int(client.zcard(index))
        if top <= 0 or skip >= total:
            return [], total
        ids = client.zrange(index, skip, skip + top - 1)
        pipe = client.pipeline(transaction=False)
        for member in ids:
            pipe.hgetall(key_of(int(text_of(member))))
        rows = pipe.execute()
    return [row for row in rows if row], total
