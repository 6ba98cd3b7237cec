"""The one optimistic-transaction loop every store write uses (WATCH, read, MULTI, EXEC).

``attempt(pipe)`` reads in immediate mode (it may WATCH more keys as it learns them), then
either calls ``pipe.multi()`` and queues its writes, or returns without writing. The writes
commit only if no watched key changed since it was watched; otherwise the attempt is made
again on fresh reads, until one commits. An error raised by the attempt (NotFound, Conflict)
ends the transaction with nothing written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import redis
from redis.client import Pipeline

from tickwork.store.connection import translated

T = TypeVar("T")


def transact(client: redis.Redis, attempt: Callable[[Pipeline], T], *watched: str) -> T:
    """What ``attempt`` returned, once its writes (if any) committed unraced."""
    with translated(), client.pipeline() as pipe:
        while True:
            try:
                if watched:
                    pipe.watch(*watched)
                result = attempt(pipe)
                if pipe.explicit_transaction:
                    pipe.execute()
                return result
            except redis.WatchError:
                continue
            finally:
                pipe.reset()
