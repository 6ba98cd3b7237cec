"""The due index: every active schedule that has an occurrence left, scored by its next
fire instant (ms). The leader reads what is due and what is coming; it never scans all
schedules. A nudge list wakes a leader that sleeps on it when a schedule changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import redis

from tickwork.core.instants import to_ms
from tickwork.store.connection import text_of, translated
from tickwork.store.keys import Keys


class DueIndex:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    def due(self, *, now: datetime, limit: int) -> list[int]:
        """Ids of up to ``limit`` schedules due at ``now``, earliest first."""
        with translated():
            raw = self._client.zrangebyscore(self._keys.due, "-inf", to_ms(now), 0, limit)
        return [int(text_of(member)) for member in raw]

    def window(
        self, low_ms: int, high_ms: int, *, offset: int, limit: int
    ) -> list[tuple[int, int]]:
        """(schedule id, due ms) of schedules due in [low_ms, high_ms], from ``offset``
        among them, earliest first."""
        with translated():
            rows: list[tuple[bytes, float]] = self._client.zrangebyscore(
                self._keys.due, low_ms, high_ms, start=offset, num=limit, withscores=True
            )  # type: ignore[assignment]  # redis-py types replies loosely
        return [(int(text_of(member)), int(score)) for member, score in rows]

    def earliest(self) -> int | None:
        """The earliest due instant (ms), or None when nothing is due ever."""
        with translated():
            first = self._client.zrange(self._keys.due, 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    def forget(self, schedule_ids: Iterable[int]) -> None:
        """Drop entries whose schedule no longer exists."""
        members = [str(sid) for sid in schedule_ids]
        if members:
            with translated():
                self._client.zrem(self._keys.due, *members)

    def wait(self, timeout_s: float) -> None:
        """Block until a nudge (a schedule changed, or ``wake``) or ``timeout_s`` passes.
        Redis times blocked clients out at its ``hz`` tick (100 ms by default): callers that
        need a precise wake-up wait a little less and sleep the rest themselves."""
        with translated():
            self._client.blpop([self._keys.nudge], timeout=timeout_s)

    def wake(self) -> None:
        """Wake whoever waits (a stopping leader)."""
        with translated():
            self._client.lpush(self._keys.nudge, "stop")
