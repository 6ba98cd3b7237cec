"""The Redis store: every key and every transaction lives in this package."""

from __future__ import annotations

import redis

from tickwork.store.connection import connect, translated
from tickwork.store.keys import Keys
from tickwork.store.leases import Lease, Leases
from tickwork.store.runs import RunRecord, Runs, StatusEntry
from tickwork.store.schedules import ScheduleRecord, Schedules

__all__ = [
    "Keys",
    "Lease",
    "Leases",
    "RunRecord",
    "Runs",
    "ScheduleRecord",
    "Schedules",
    "StatusEntry",
    "Store",
    "connect",
]


class Store:
    """The repositories over one Redis client and one key prefix."""

    def __init__(self, client: redis.Redis, prefix: str = "tw") -> None:
        self.client = client
        self.keys = Keys(prefix)
        self.schedules = Schedules(client, self.keys)
        self.runs = Runs(client, self.keys)
        self.leases = Leases(client, self.keys)

    def ping(self) -> bool:
        with translated():
            return bool(self.client.ping())
