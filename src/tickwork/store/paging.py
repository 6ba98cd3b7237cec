"""One page of records through a sorted-set index: O(page), whatever the total."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import redis

from tickwork.store.connection import text_of, translated


def read_page(
    client: redis.Redis,
    index: str,
    key_of: Callable[[int], str],
    *,
    skip: int,
    top: int,
    low: int | None = None,
    below: int | None = None,
    descending: bool = False,
) -> tuple[list[Mapping[Any, Any]], int]:
    """The hashes of the index's members ``skip`` .. ``skip + top - 1`` in score order (or
    its reverse), among those scored in [low, below) when given, with members whose record
    is gone left out, and how many members are in that range. Members are integer ids."""
    return read_text_page(
        client,
        index,
        lambda member: key_of(int(member)),
        skip=skip,
        top=top,
        low=low,
        below=below,
        descending=descending,
    )


def read_text_page(
    client: redis.Redis,
    index: str,
    key_of: Callable[[str], str],
    *,
    skip: int,
    top: int,
    low: int | None = None,
    below: int | None = None,
    descending: bool = False,
) -> tuple[list[Mapping[Any, Any]], int]:
    """``read_page`` of an index whose members are any text (report ids are UUIDs)."""
    ranged = low is not None or below is not None
    lo = "-inf" if low is None else str(low)
    hi = "+inf" if below is None else f"({below}"
    with translated():
        total = int(client.zcount(index, lo, hi) if ranged else client.zcard(index))
        if top <= 0 or skip >= total:
            return [], total
        if ranged and descending:
            ids = client.zrevrangebyscore(index, hi, lo, start=skip, num=top)
        elif ranged:
            ids = client.zrangebyscore(index, lo, hi, start=skip, num=top)
        else:
            ids = client.zrange(index, skip, skip + top - 1, desc=descending)
        pipe = client.pipeline(transaction=False)
        for member in ids:
            pipe.hgetall(key_of(text_of(member)))
        rows = pipe.execute()
    return [row for row in rows if row], total
