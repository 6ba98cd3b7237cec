"""Notifications of what the fire commit did: skipped occurrences and expired schedules.

The leader never sends anything. After a committed batch it records one event naming the
batch's load tests and the span in which their runs were created (after the previous
event's span, up to now), and queues its job: a worker then reads those runs and notifies
by the rules (``worker/notify.py``). It does so
only while some enabled rule names occurrence_skipped or schedule_expired, which it reads at
most every ``REFRESH_S`` seconds: with no such rule, a batch costs one comparison here and
no Redis command at all. A rule created just now may therefore miss the fires of its first
seconds.

Consecutive events of one leader cover back-to-back spans, so each run is looked at once. A
new leader's first span reaches ``FIRST_SPAN`` back: skips its predecessor committed in its
last seconds may then be looked at twice (an expiry yields the same event id, delivered
once; a skip may be told twice).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from tickwork.core.notices import EventKind
from tickwork.errors import StoreUnavailable
from tickwork.scheduler.firing import BatchResult
from tickwork.store import Store

log = logging.getLogger("tickwork.scheduler")

REFRESH_S = 5.0
"""How stale the leader's knowledge of the rules may be."""
FIRST_SPAN = timedelta(seconds=10)
"""How far back the first event of a leader (or one after a long idle) looks."""
MAX_SPAN = timedelta(minutes=5)


class FireNotices:
    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._clock = clock
        self._monotonic = monotonic
        self._kinds: frozenset[str] = frozenset()
        self._read_at: float | None = None
        self._until: datetime | None = None

    def after_batch(self, result: BatchResult) -> None:
        """Queue the look at this batch's runs, when a rule wants it."""
        if not result.load_tests:
            return
        kinds = self._watched()
        skipped = bool(result.skipped) and EventKind.OCCURRENCE_SKIPPED in kinds
        if not (skipped or EventKind.SCHEDULE_EXPIRED in kinds):
            return
        until = self._clock()
        since = until - FIRST_SPAN
        if self._until is not None and until - MAX_SPAN <= self._until <= until:
            since = self._until
        try:
            event_id = self._store.notifications.enqueue_fires(
                sorted(result.load_tests), since=since, until=until
            )
        except StoreUnavailable as exc:
            # The batch is committed; its notifications are what is lost. Said once per batch.
            log.warning("fire_notices_not_queued", extra={"error": str(exc)})
            return
        self._until = until
        log.debug("fire_notices_queued", extra={"event_id": event_id})

    def _watched(self) -> frozenset[str]:
        now = self._monotonic()
        if self._read_at is None or now - self._read_at >= REFRESH_S:
            # Redis unavailable: keep what was known; the next refresh asks again.
            with contextlib.suppress(StoreUnavailable):
                self._kinds = self._store.notifications.rules.watching_fires()
            self._read_at = now
        return self._kinds
