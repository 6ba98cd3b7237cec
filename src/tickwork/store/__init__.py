"""The Redis store: every key and every transaction lives in this package."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from rq import Worker

from tickwork.core.runs import RunRecord, StatusEntry
from tickwork.errors import StoreUnavailable, StoreUnsafe
from tickwork.store.audit import Audit
from tickwork.store.backfill import Backfills
from tickwork.store.connection import connect, text_of, translated
from tickwork.store.due import DueIndex
from tickwork.store.executions import Executions
from tickwork.store.fires import Fires
from tickwork.store.keys import Keys
from tickwork.store.kragle import KragleSchedules, TemplateRecord
from tickwork.store.leases import Lease, Leases
from tickwork.store.ledger import Ledger
from tickwork.store.limits import Rate, RateLimits
from tickwork.store.load_tests import LoadTestRecord, LoadTests
from tickwork.store.manual_runs import ManualRuns
from tickwork.store.notifications import Notifications
from tickwork.store.projects import ProjectRecord, Projects
from tickwork.store.queue import queue
from tickwork.store.reports import ReportRecord, Reports
from tickwork.store.retention import Retention
from tickwork.store.run_requests import RunRequests
from tickwork.store.runs import Runs
from tickwork.store.schedules import ScheduleRecord, Schedules
from tickwork.store.server import ServerFacts, eviction_problem, server_facts
from tickwork.store.sessions import Session, Sessions
from tickwork.store.windows import Windows

__all__ = [
    "Backfills",
    "DueIndex",
    "Executions",
    "Keys",
    "KragleSchedules",
    "Lease",
    "Leases",
    "Ledger",
    "LoadTestRecord",
    "LoadTests",
    "ManualRuns",
    "Notifications",
    "ProjectRecord",
    "Projects",
    "Rate",
    "RateLimits",
    "ReportRecord",
    "Reports",
    "Retention",
    "RunRecord",
    "RunRequests",
    "Runs",
    "ScheduleRecord",
    "Schedules",
    "ServerFacts",
    "Session",
    "Sessions",
    "StatusEntry",
    "Store",
    "TemplateRecord",
    "WorkerSeen",
    "connect",
]


@dataclass(frozen=True, slots=True)
class WorkerSeen:
    """An RQ worker as its own registry shows it (the console's overview)."""

    name: str
    hostname: str | None
    pid: int | None
    state: str
    last_heartbeat: datetime | None
    queues: tuple[str, ...]


class Store:
    """The repositories over one Redis client and one key prefix."""

    def __init__(self, client: redis.Redis, prefix: str = "tw") -> None:
        self.client = client
        self.keys = Keys(prefix)
        self.audit = Audit(client, self.keys)
        self.schedules = Schedules(client, self.keys, self.audit)
        self.due = DueIndex(client, self.keys)
        self.ledger = Ledger(client, self.keys)
        self.runs = Runs(client, self.keys)
        self.leases = Leases(client, self.keys)
        self.fires = Fires(client, self.keys)
        self.kragle = KragleSchedules(client, self.keys, self.schedules)
        self.load_tests = LoadTests(
            client, self.keys, self.schedules, dependents=[self.kragle.prepare_load_test_delete]
        )
        self.reports = Reports(client, self.keys, self.schedules, self.load_tests)
        self.projects = Projects(client, self.keys, self.load_tests)
        self.notifications = Notifications(client, self.keys)
        self.run_requests = RunRequests(client, self.keys, self.runs, self.notifications)
        self.manual_runs = ManualRuns(client, self.keys, self.runs)
        self.backfills = Backfills(client, self.keys, self.runs, self.schedules, self.ledger)
        self.executions = Executions(client, self.keys, self.runs, self.notifications)
        self.retention = Retention(client, self.keys)
        self.rate_limits = RateLimits(client, self.keys)
        self.sessions = Sessions(client, self.keys)
        self.windows = Windows(client, self.keys, self.audit)

    @property
    def prefix(self) -> str:
        """The key prefix (RQ jobs carry it, so a worker finds the runs they name)."""
        return self.keys.prefix

    @property
    def rq_connection(self) -> redis.Redis:
        """The client RQ's queues and workers use: RQ is a Redis library, and its keys live
        beside ours in the same database."""
        return self.client

    def ping(self) -> bool:
        with translated():
            return bool(self.client.ping())

    def server_facts(self) -> ServerFacts:
        return server_facts(self.client)

    def readiness_problem(self) -> str | None:
        """Why a process on this store should not take traffic, or None: Redis does not
        answer, refuses writes for memory, or may evict keys."""
        try:
            facts = self.server_facts()
        except StoreUnavailable as exc:
            return str(exc)
        if facts.out_of_memory:
            return (
                f"Redis is out of memory ({facts.used_memory} of {facts.maxmemory} bytes used): "
                "writes are refused"
            )
        return eviction_problem(facts)

    def refuse_if_unsafe(self, *, allow_evicting: bool) -> str | None:
        """At a daemon's start: StoreUnsafe on a server that may evict keys, unless
        ``allow_evicting`` (then the problem, for the caller to log loudly: it runs, never
        ready). None when safe, or when Redis does not answer yet (readiness will say)."""
        try:
            problem = eviction_problem(self.server_facts())
        except StoreUnavailable:
            return None
        if problem is not None and not allow_evicting:
            raise StoreUnsafe(problem)
        return problem

    def schedule_counts(self, stacks: Iterable[int]) -> tuple[int, int]:
        """(active, total): schedules in the due index, and all schedules of ``stacks`` (k6
        schedules, Kragle jobs, report schedules). O(stacks): a few ZCARDs each, no scan."""
        with translated():
            pipe = self.client.pipeline(transaction=False)
            pipe.zcard(self.keys.due)
            for stack in stacks:
                for kind in ("schedules", "kragle_jobs", "reports"):
                    pipe.zcard(self.keys.stack_index(stack, kind))
            active, *totals = pipe.execute()
        return int(active), sum(int(count) for count in totals)

    def lease_holder(self, name: str) -> tuple[int, int] | None:
        """(term, milliseconds left) of the lease ``name`` as its holder published it in
        the store; None while nobody holds it."""
        with translated():
            pipe = self.client.pipeline(transaction=False)
            pipe.get(self.keys.lease(name))
            pipe.pttl(self.keys.lease(name))
            value, ttl_ms = pipe.execute()
        if value is None:
            return None
        return int(text_of(value).split(":", 1)[0]), max(0, int(ttl_ms))

    def queue_facts(self, queue_name: str) -> tuple[int, list[WorkerSeen]]:
        """How many jobs wait on the RQ queue, and the workers RQ's registry lists for it
        (each worker publishes itself there with a heartbeat; RQ drops the silent ones)."""
        rq_queue = queue(self.client, queue_name)
        with translated():
            depth = rq_queue.count
            workers = Worker.all(queue=rq_queue)
        return depth, [
            WorkerSeen(
                name=worker.name,
                hostname=worker.hostname,
                pid=worker.pid,
                state=str(worker.get_state()),
                # RQ writes naive UTC
                last_heartbeat=worker.last_heartbeat.replace(tzinfo=UTC)
                if worker.last_heartbeat is not None and worker.last_heartbeat.tzinfo is None
                else worker.last_heartbeat,
                queues=tuple(worker.queue_names()),
            )
            for worker in workers
        ]
