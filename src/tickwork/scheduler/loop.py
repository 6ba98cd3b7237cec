"""The daemon: hold or wait for the lease, and while leading, fire what is due.

Single-threaded on purpose: lease renewal, firing and sleeping happen in one loop, so no
renewal can race a commit. The loop sleeps until the earliest due instant, a nudge from the
API, or the next renewal, whichever comes first; it never scans all schedules. Standbys
block on the "released" list and the lease's remaining TTL, so a graceful hand-over is taken
at once and a crashed leader's lease within one TTL.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tickwork.core.instants import to_ms
from tickwork.errors import LeaseLost, StoreUnavailable
from tickwork.scheduler.firing import Firer
from tickwork.scheduler.housekeeping import Housekeeping, RetentionPolicy
from tickwork.scheduler.metrics import SchedulerMetrics
from tickwork.scheduler.notices import FireNotices
from tickwork.store import Lease, Store

log = logging.getLogger("tickwork.scheduler")

LEASE_NAME = "scheduler"
_BLOCK_SLACK_S = 0.15
_BACKOFF_MIN_S = 0.5  # retries while Redis is down or full, doubling up to the max
_BACKOFF_MAX_S = 5.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    def __init__(
        self,
        store: Store,
        firer: Firer,
        *,
        lease_ttl: timedelta,
        retention: RetentionPolicy | None = None,
        metrics: SchedulerMetrics | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._store = store
        self._firer = firer
        self._housekeeping = Housekeeping(store, retention or RetentionPolicy(), clock=clock)
        self._notices = FireNotices(store, clock=clock)  # skips and expiries, after a batch
        self._ttl_ms = int(lease_ttl.total_seconds() * 1000)
        self._renew_every_s = lease_ttl.total_seconds() / 3
        self._clock = clock
        self._token = store.leases.new_token()
        self._stop = threading.Event()
        self.metrics = metrics or SchedulerMetrics()
        self.lease: Lease | None = None
        self.last_loop_at: datetime | None = None
        self._renewed_at = 0.0
        self._store_problem: str | None = None

    @property
    def role(self) -> str:
        return "leader" if self.lease is not None else "standby"

    def stop(self) -> None:
        """Ask the loop to end; safe from a signal handler or another thread."""
        self._stop.set()
        if self.lease is not None:
            with contextlib.suppress(StoreUnavailable):
                self._store.due.wake()

    @property
    def store_problem(self) -> str | None:
        """What kept the loop from Redis on its last attempt (None: it got through)."""
        return self._store_problem

    def run(self) -> None:
        log.info("scheduler_started")
        backoff_s = _BACKOFF_MIN_S
        try:
            while not self._stop.is_set():
                self.last_loop_at = self._clock()
                self.metrics.last_loop.set(time.time())
                try:
                    if self.lease is None:
                        self._wait_for_lease()
                    else:
                        self._lead()
                except StoreUnavailable as exc:
                    lease = self.lease
                    if lease is not None:
                        self._step_down(f"store unavailable: {exc}")
                        # A full Redis still takes the release (DEL): then nobody, this process
                        # included, leads again until it takes writes (a new term is a write).
                        with contextlib.suppress(StoreUnavailable):
                            self._store.leases.release(lease)
                    if self._store_problem is None or type(exc).__name__ not in self._store_problem:
                        # One line per change of state, not one per retry.
                        log.warning(
                            "store_unavailable",
                            extra={"error": str(exc), "code": exc.code, "retry_s": backoff_s},
                        )
                    self._store_problem = f"{type(exc).__name__}: {exc}"
                    self._stop.wait(backoff_s)
                    backoff_s = min(backoff_s * 2, _BACKOFF_MAX_S)
                    continue
                if self._store_problem is not None:
                    log.info("store_available", extra={"after": self._store_problem})
                    self._store_problem = None
                    backoff_s = _BACKOFF_MIN_S
        finally:
            self._release()
            log.info("scheduler_stopped")

    def _wait_for_lease(self) -> None:
        lease = self._store.leases.acquire(LEASE_NAME, self._token, self._ttl_ms)
        if lease is not None:
            self.lease = lease
            self._renewed_at = time.monotonic()
            self.metrics.leader.set(1)
            self.metrics.term.set(lease.term)
            log.info("lease_acquired", extra={"term": lease.term})
            return
        self._store.leases.wait(LEASE_NAME, at_most_s=0.5)

    def _lead(self) -> None:
        assert self.lease is not None
        try:
            if time.monotonic() - self._renewed_at >= self._renew_every_s:
                self._store.leases.renew(self.lease, self._ttl_ms)
                self._renewed_at = time.monotonic()
                self.metrics.renewals.inc()
                self._housekeeping.reap()
            resumed = self._firer.resume_due(self.lease)
            if resumed:
                log.info("schedules_resumed", extra={"schedule_ids": resumed})
            result = self._firer.fire_ahead(self.lease) or self._firer.fire_due(self.lease)
        except LeaseLost as exc:
            self._step_down(str(exc))
            return
        if result.conflicts:
            self.metrics.conflicts.inc(result.conflicts)
        self._housekeeping.touched(result.load_tests)
        self._notices.after_batch(result)
        if result.fired or result.skipped:
            for lag in result.lags_s:
                self.metrics.fire_lag.observe(lag)
            self.metrics.fires.inc(len(result.fired))
            for reason, count in result.skipped.items():
                self.metrics.skipped.labels(reason).inc(count)
            log.info(
                "fire_batch_committed",
                extra={
                    "term": self.lease.term,
                    "fired": len(result.fired),
                    "skipped": sum(result.skipped.values()),
                    "max_lag_s": round(max(result.lags_s, default=0.0), 4),
                },
            )
        if result.full:
            return  # more is due right now
        prepared = self._firer.prepare()
        self.metrics.ahead.set(self._firer.ahead)
        if prepared:
            return  # one step of work ahead done: look at what is due again
        if self._housekeeping.step():
            return  # more to remove: look at what is due first, then go on
        self._sleep_until_due()

    def _sleep_until_due(self) -> None:
        timeout = self._renew_every_s - (time.monotonic() - self._renewed_at)
        for earliest in (self._store.due.earliest(), self._store.schedules.earliest_resume()):
            if earliest is not None:
                timeout = min(timeout, (earliest - to_ms(self._clock())) / 1000)
        if timeout <= 0.001:
            return
        if timeout <= _BLOCK_SLACK_S:
            time.sleep(timeout)  # the last stretch, timed here rather than by Redis
            return
        # A nudge (a schedule changed) wakes the wait; Redis times blocked clients out at
        # its `hz` tick (100 ms by default), so wake early and sleep the rest locally.
        self._store.due.wait(timeout - _BLOCK_SLACK_S)

    def _step_down(self, reason: str) -> None:
        if self.lease is not None:
            log.warning("lease_lost", extra={"term": self.lease.term, "reason": reason})
            self.metrics.losses.inc()
        self.lease = None
        self._firer.discard_ahead()
        self.metrics.ahead.set(0)
        self.metrics.leader.set(0)
        self.metrics.term.set(0)

    def _release(self) -> None:
        lease, self.lease = self.lease, None
        self.metrics.leader.set(0)
        if lease is None:
            return
        try:
            if self._store.leases.release(lease):
                log.info("lease_released", extra={"term": lease.term})
        except StoreUnavailable:
            log.warning("lease_release_failed", extra={"term": lease.term})
