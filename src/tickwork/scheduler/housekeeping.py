"""What the leader does between fires so that months of running stay healthy: end runs whose
worker died or whose job was lost, and remove what retention no longer keeps.

Each duty runs in small steps (a few ms), never within ``GUARD_MS`` of a due instant, so it
never holds up a fire:

- reap: runs whose worker stopped heartbeating end ``aborted`` (worker lost); workers reap
  each other too, but when none is left the leader does;
- backfill feeder: the next waiting run of a backfill under overlap ``skip`` gets its job
  once the run before it has ended (``store/backfill.py``);
- strand check: runs whose job no worker will run (lost between queue and worker, or not
  taken within ``max_queued``) end ``aborted`` with the reason;
- retention: finished runs older than ``run_retention``, or beyond ``runs_per_load_test`` of
  their load test, are removed with their indexes and RQ job (``store/retention.py``), audit
  entries older than ``audit_retention`` (``store/audit.py``), and notification deliveries
  older than ``notification_retention`` (``store/notifications.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from tickwork.core.instants import to_ms
from tickwork.store import Store

log = logging.getLogger("tickwork.scheduler")

GUARD_MS = 50
"""No step starts this close to the earliest due instant."""
STEP_RUNS = 200
"""Runs one retention step removes at most (~10 ms of Redis)."""
STEP_LOAD_TESTS = 20
"""Load tests one trim step looks at."""
RETENTION_EVERY_S = 1.0
"""How often a retention step runs while it finds nothing, or little, to do."""
FEED_EVERY_S = 0.5
"""How often the backfill feeder looks for a waiting run whose turn has come."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionPolicy:
    run_retention: timedelta | None = timedelta(days=30)
    """Finished runs created longer ago are removed (None: kept by age)."""
    runs_per_load_test: int | None = 1000
    """A load test keeps at most this many finished runs (None: no count limit)."""
    claim_within: timedelta = timedelta(seconds=60)
    """A queued run no worker has claimed after this, whose job is lost, is ended."""
    max_queued: timedelta = timedelta(days=1)
    """A queued run no worker has claimed after this is ended, job lost or not."""
    audit_retention: timedelta | None = timedelta(days=90)
    """Audit entries older than this are removed (None: kept)."""
    notification_retention: timedelta | None = timedelta(days=30)
    """Notification deliveries (the log) older than this are removed (None: kept)."""


class Housekeeping:
    def __init__(
        self, store: Store, policy: RetentionPolicy, *, clock: Callable[[], datetime]
    ) -> None:
        self._store = store
        self._policy = policy
        self._clock = clock
        self._touched: set[int] = set()
        self._next_retention = 0.0
        self._next_feed = 0.0

    def touched(self, load_test_ids: Iterable[int]) -> None:
        """Load tests that just got runs (their count may now be past the limit)."""
        self._touched.update(load_test_ids)

    def reap(self) -> None:
        """End runs of dead workers and runs whose job was lost."""
        now = self._clock()
        reaped = self._store.executions.reap(now=now, limit=100)
        if reaped:
            log.warning("runs_reaped", extra={"run_ids": [run.id for run in reaped]})
        stranded = self._store.executions.strand_check(
            now=now,
            claim_within=self._policy.claim_within,
            max_queued=self._policy.max_queued,
        )
        for run in stranded:
            log.warning(
                "run_stranded_ended",
                extra={"run_id": run.id, "reason": run.details.get("reason")},
            )

    def step(self) -> bool:
        """One retention step when one is due and no fire is near; whether there is more
        to do at once."""
        self._feed_backfills()
        if time.monotonic() < self._next_retention or self._fire_near():
            return False
        retention, policy = self._store.retention, self._policy
        removed = 0
        if self._touched:
            retention.mark(self._touched)
            self._touched.clear()
        if policy.runs_per_load_test is not None:
            removed += retention.trim(
                keep=policy.runs_per_load_test, load_tests=STEP_LOAD_TESTS, limit=STEP_RUNS
            )
        if policy.run_retention is not None and removed < STEP_RUNS:
            removed += retention.sweep(
                before=self._clock() - policy.run_retention, limit=STEP_RUNS - removed
            )
        if policy.audit_retention is not None and removed < STEP_RUNS:
            removed += self._store.audit.sweep(
                retention.stacks(),
                before=self._clock() - policy.audit_retention,
                limit=STEP_RUNS - removed,
            )
        if policy.notification_retention is not None and removed < STEP_RUNS:
            removed += self._store.notifications.sweep(
                before=self._clock() - policy.notification_retention, limit=STEP_RUNS - removed
            )
        if removed:
            log.info("records_retired", extra={"count": removed})
        more = removed >= STEP_RUNS
        self._next_retention = 0.0 if more else time.monotonic() + RETENTION_EVERY_S
        return more

    def _feed_backfills(self) -> None:
        """Queue the next waiting backfilled run of each load test whose run before it ended
        (a cheap read when no backfill waits)."""
        if time.monotonic() < self._next_feed or self._fire_near():
            return
        self._next_feed = time.monotonic() + FEED_EVERY_S
        queued = self._store.backfills.feed(now=self._clock(), limit=STEP_LOAD_TESTS)
        if queued:
            log.info("backfill_runs_queued", extra={"run_ids": queued})

    def _fire_near(self) -> bool:
        earliest = self._store.due.earliest()
        return earliest is not None and earliest - to_ms(self._clock()) < GUARD_MS
