"""The thread beside a run in progress: it keeps the run's heartbeat and watches for an abort.

The job's own thread is busy supervising the runner, so this one renews the deadline in
``running`` every ``heartbeat_s`` and polls the run's abort flag every ``poll_s``. Either an
abort or the discovery that the run is no longer ours (reaped after a long stall) sets
``cancel``, which every runner obeys.
"""

from __future__ import annotations

import logging
import threading
import time

from tickwork.core.lifecycle import Outcome
from tickwork.errors import StoreUnavailable
from tickwork.store.executions import Executions

log = logging.getLogger("tickwork.worker")


class RunWatch:
    def __init__(
        self,
        executions: Executions,
        run_id: int,
        *,
        heartbeat_s: float,
        poll_s: float,
        lapse_ms: int,
    ) -> None:
        self.cancel = threading.Event()
        self.reason: Outcome | None = None
        self.by_user: str | None = None
        self._executions = executions
        self._run_id = run_id
        self._heartbeat_s = heartbeat_s
        self._poll_s = poll_s
        self._lapse_ms = lapse_ms
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=f"run-{run_id}-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the watch. It does not wait for the thread (a join costs a wake-up per run):
        under the lock, no stop can be requested or logged once this has returned, and a
        heartbeat still in flight finds the run out of ``running`` and changes nothing."""
        with self._lock:
            self._done.set()

    def stopped_because(self) -> Outcome | None:
        """Why ``cancel`` was set (a method: the other thread changes it at any time)."""
        return self.reason

    def check_abort(self) -> bool:
        """Look at the abort flag now; True (and ``cancel`` set) when an abort was asked."""
        who = self._executions.abort_requested(self._run_id)
        if who is not None and self.reason is None:
            self._stop_run(Outcome.ABORTED_BY_USER, by_user=who or None)
        return self.reason is not None

    def _loop(self) -> None:
        next_beat = time.monotonic() + self._heartbeat_s
        unavailable = False
        while not self._done.wait(self._poll_s):
            try:
                if self.reason is None:
                    self.check_abort()
                # Heartbeats go on after an abort: the runner may take its grace period to
                # stop, and the run must not look lost meanwhile.
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self._heartbeat_s
                    kept = self._executions.heartbeat(self._run_id, lapse_ms=self._lapse_ms)
                    if not kept and self.reason is None:
                        self._stop_run(Outcome.WORKER_LOST)
                if unavailable:
                    unavailable = False
                    log.info("store_available_again", extra={"run_id": self._run_id})
            except StoreUnavailable as exc:
                if not unavailable:  # log the change, not every failed poll
                    unavailable = True
                    log.warning(
                        "run_heartbeat_failed", extra={"run_id": self._run_id, "error": str(exc)}
                    )

    def _stop_run(self, reason: Outcome, *, by_user: str | None = None) -> None:
        with self._lock:
            if self._done.is_set():
                return
            self.reason = reason
            self.by_user = by_user
            self.cancel.set()
        log.info(
            "run_stop_requested",
            extra={"run_id": self._run_id, "reason": reason.value, "by_user": by_user},
        )
