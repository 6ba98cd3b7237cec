"""What the fault suite shares: a private Redis, real schedulers (one of them behind a TCP
proxy), a watch on the lease, and the count of what fired.

The count is the suite's verdict, as in test_scheduler_failover.py: per (schedule,
occurrence) at most one run, and every occurrence up to a moment after the fault accounted
for, fired or recorded skipped. Runs do not record which process wrote them; what an old
leader committed is judged by the lease term it committed under, which the proxy reads off
each fire commit, against the terms the watch saw Redis give out.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis

from tickwork.core import Once, Schedule
from tickwork.core.runs import RunRecord
from tickwork.embedded import EmbeddedServer
from tickwork.scheduler.loop import LEASE_NAME
from tickwork.store import Store
from tickwork.store.fires import SCRIPT
from tickwork.store.queue import queue

from .processes import Process, Processes
from .tcp_proxy import CommitSeen

LEASE_TTL_S = 2.0
COMMIT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()  # what EVALSHA names
PREFIX = "fault"
QUEUE = "fault-runs"


def fault_env(redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "TICKWORK_REDIS_URL": redis_url,
        "TICKWORK_KEY_PREFIX": PREFIX,
        "TICKWORK_LEASE_TTL_SECONDS": str(LEASE_TTL_S),
        "TICKWORK_QUEUES": json.dumps([QUEUE]),
        **extra,
    }


@contextlib.contextmanager
def private_redis(data_dir: Path) -> Iterator[EmbeddedServer]:
    """A redis-server of the test's own (the shared one is never paused, filled or
    reconfigured), stopped at the end even if the test left it paused."""
    server = EmbeddedServer(data_dir).start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.send_signal(signal.SIGCONT)
        server.stop()


def scheduler_via(processes: Processes, name: str, redis_url: str) -> Process:
    """A scheduler of ``processes`` (stopped with them) whose Redis is ``redis_url``."""
    via = Processes({**processes.env, "TICKWORK_REDIS_URL": redis_url}, processes.logs)
    via.started = processes.started
    return via.scheduler(name)


def events(process: Process) -> list[dict[str, Any]]:
    """The process's JSON log lines (tickwork logs JSON off a terminal)."""
    found = []
    for line in process.log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
    return found


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll until ``predicate`` holds; the seconds it took. AssertionError naming ``what``."""
    began = time.monotonic()
    while not predicate():
        if time.monotonic() - began > timeout_s:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - began


def sleep_until(instant: datetime) -> None:
    delay = (instant - datetime.now(UTC)).total_seconds()
    if delay > 0:
        time.sleep(delay)


def role_of(process: Process) -> tuple[str | None, int | None]:
    health = process.health() or {}
    role, term = health.get("role"), health.get("term")
    return (str(role) if role else None, int(str(term)) if term is not None else None)


def one_shots(store: Store, count: int, at: datetime) -> None:
    """``count`` schedules (load tests 1..count), each firing once, all at ``at``."""
    now = datetime.now(UTC)
    for load_test_id in range(1, count + 1):
        store.client.hset(store.keys.load_test(load_test_id), mapping={"stack": 1, "project_id": 1})
        store.schedules.put(
            stack=1,
            load_test_id=load_test_id,
            schedule=Schedule(at, Once()),
            request="{}",
            created_by=None,
            now=now,
            overlap="allow",
        )


def wait_settled(store: Store, schedule_ids: range, through: datetime, timeout_s: float) -> float:
    """Wait until every schedule's occurrences through ``through`` are settled (fired or
    recorded skipped): firing has resumed after the fault. The seconds it took."""

    def settled() -> bool:
        records = store.schedules.read_many(list(schedule_ids))
        return len(records) == len(schedule_ids) and all(
            r.fired_through >= through for r in records.values()
        )

    return wait_for(settled, timeout_s, f"every schedule settled through {through}")


class LeaseWatch:
    """Polls the lease key every few ms: each term Redis gave out, and when it was first seen
    (monotonic). A term seen at t was granted at or before t."""

    def __init__(self, redis_url: str, key: str) -> None:
        self._client = redis.Redis.from_url(redis_url, socket_timeout=1)
        self._key = key
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._terms: list[tuple[int, float]] = []
        self._thread = threading.Thread(target=self._poll, name="lease-watch", daemon=True)

    def __enter__(self) -> LeaseWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._client.close()
        assert not self._thread.is_alive(), "the lease watch did not stop"

    @property
    def terms(self) -> list[tuple[int, float]]:
        with self._lock:
            return list(self._terms)

    def wait_above(self, term: int, timeout_s: float) -> tuple[int, float]:
        """The first term above ``term`` and when it was seen."""
        found: list[tuple[int, float]] = []

        def seen() -> bool:
            found[:] = [t for t in self.terms if t[0] > term]
            return bool(found)

        wait_for(seen, timeout_s, f"a lease term above {term}")
        return found[0]

    def _poll(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(redis.RedisError):
                value = self._client.get(self._key)
                if isinstance(value, bytes):
                    term = int(value.split(b":", 1)[0])
                    now = time.monotonic()
                    with self._lock:
                        if not self._terms or self._terms[-1][0] != term:
                            self._terms.append((term, now))
            self._stop.wait(0.005)


def lease_key(store: Store) -> str:
    return store.keys.lease(LEASE_NAME)


def superseded_commits(commits: list[CommitSeen], terms: list[tuple[int, float]]) -> list[str]:
    """Commits under a term that reached Redis after a later term had been granted and were
    not refused: what a superseded leader wrote. Must be none."""
    wrong = []
    for commit in commits:
        if commit.forwarded_at is None:
            continue
        later = [seen for term, seen in terms if term > commit.term and seen < commit.forwarded_at]
        if later and commit.reply != b":-1":
            wrong.append(f"term {commit.term} commit answered {commit.reply!r}")
    return wrong


@dataclass
class Tally:
    """What the runs say, per (schedule, occurrence)."""

    runs: list[RunRecord]
    fired: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> occurrences
    duplicates: list[tuple[int, str, int]] = field(default_factory=list)
    unaccounted: list[tuple[int, str]] = field(default_factory=list)
    max_lag_s: float = 0.0

    def line(self) -> str:
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
        return (
            f"fires {self.fired}, skipped {sum(self.skipped.values())} ({skipped or 'none'}), "
            f"duplicates {len(self.duplicates)}, unaccounted {len(self.unaccounted)}, "
            f"max fire lag {self.max_lag_s:.2f} s"
        )


def tally(store: Store, expected: dict[int, set[datetime]]) -> Tally:
    """Count the runs of stack 1 against the occurrences each schedule must account for."""
    runs, _ = store.runs.page(1, skip=0, top=1_000_000)
    result = Tally(runs)
    per: dict[int, Counter[datetime]] = {sid: Counter() for sid in expected}
    for run in runs:
        assert run.schedule_id is not None
        assert run.scheduled_for is not None
        per.setdefault(run.schedule_id, Counter())[run.scheduled_for] += 1
        if run.status == "skipped":
            more = int(run.details.get("more", 0))
            result.skipped[str(run.details.get("skip_reason"))] += 1 + more
        else:
            result.fired += 1
            lag = (run.created - run.scheduled_for).total_seconds()
            result.max_lag_s = max(result.max_lag_s, lag)
    for sid, counts in sorted(per.items()):
        result.duplicates += [(sid, w.isoformat(), n) for w, n in sorted(counts.items()) if n > 1]
        missing = sorted(expected.get(sid, set()) - set(counts))
        result.unaccounted += [(sid, w.isoformat()) for w in missing]
    return result


def every_second_through(
    start: datetime, through: datetime, schedule_ids: range
) -> dict[int, set[datetime]]:
    """The occurrences of schedules firing every second from ``start``, through ``through``."""
    seconds = int((through - start).total_seconds())
    instants = {start + timedelta(seconds=s) for s in range(seconds + 1)}
    return dict.fromkeys(schedule_ids, instants)


def rq_job_ids(client: redis.Redis) -> list[str]:
    """The jobs waiting on the suite's RQ queue (no worker runs in most scenarios)."""
    return [str(job_id) for job_id in queue(client, QUEUE).job_ids]
