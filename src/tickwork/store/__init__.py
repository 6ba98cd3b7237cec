"""The Redis store: every key and every transaction lives in this package."""

from __future__ import annotations

from collections.abc import Iterable

import redis

from tickwork.store.connection import connect, translated
from tickwork.store.executions import Executions
from tickwork.store.fires import Fires
from tickwork.store.keys import Keys
from tickwork.store.leases import Lease, Leases
from tickwork.store.load_tests import LoadTestRecord, LoadTests
from tickwork.store.projects import ProjectRecord, Projects
from tickwork.store.run_requests import RunRequests
from tickwork.store.runs import RunRecord, Runs, StatusEntry
from tickwork.store.schedules import ScheduleRecord, Schedules

__all__ = [
    "Executions",
    "Keys",
    "Lease",
    "Leases",
    "LoadTestRecord",
    "LoadTests",
    "ProjectRecord",
    "Projects",
    "RunRecord",
    "RunRequests",
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
        self.fires = Fires(client, self.keys)
        self.load_tests = LoadTests(client, self.keys, self.schedules)
        self.projects = Projects(client, self.keys, self.load_tests)
        self.run_requests = RunRequests(client, self.keys, self.runs)
        self.executions = Executions(client, self.keys, self.runs)

    def ping(self) -> bool:
        with translated():
            return bool(self.client.ping())

    def schedule_counts(self, stacks: Iterable[int]) -> tuple[int, int]:
        """(active, total): schedules in the due index, and all schedules of ``stacks``.
        O(stacks): one ZCARD each, never a scan."""
        with translated():
            pipe = self.client.pipeline(transaction=False)
            pipe.zcard(self.keys.due)
            for stack in stacks:
                pipe.zcard(self.keys.stack_index(stack, "schedules"))
            active, *totals = pipe.execute()
        return int(active), sum(int(count) for count in totals)
