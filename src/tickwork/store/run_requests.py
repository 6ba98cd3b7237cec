"""What a user may ask of an existing test run: abort it, change its note, delete it.

Each request WATCHes the run's hash, so a worker moving the run meanwhile (created ->
initializing, running -> completed) voids the transaction and the request is decided again
on the new status: a run is never both aborted here and started there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

import redis
from redis.client import Pipeline

from tickwork.core.lifecycle import NOT_STARTED, Outcome, ending_of
from tickwork.core.runs import RunRecord
from tickwork.errors import Conflict
from tickwork.store.keys import Keys
from tickwork.store.notifications import Notifications
from tickwork.store.runs import Runs
from tickwork.store.transactions import transact

ABORT_FLAG_TTL_S = 7 * 86_400
"""How long an abort request waits for a worker: longer than any run may be queued or last."""


class RunRequests:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        runs: Runs,
        notifications: Notifications | None = None,
    ) -> None:
        self._client = client
        self._keys = keys
        self._runs = runs
        self._notifications = notifications

    def abort(self, stack: int, run_id: int, *, by_user: str, now: datetime) -> RunRecord:
        """Ask for the run to stop. A run that has not started ends as ``aborted`` now; a
        running one is left to its worker, which polls the abort flag. Conflict when the run
        has already finished (the k6 spec's "Cannot abort a non-running test")."""

        def attempt(pipe: Pipeline) -> RunRecord:
            run = self._runs.get(stack, run_id)
            if run.finished:
                raise Conflict(f"Test run {run_id} has already finished ({run.status}).")
            ends_here = run.status in NOT_STARTED
            notices = self._notifications
            notify = ends_here and notices is not None and notices.watching(pipe, run.stack)
            pipe.multi()
            pipe.set(self._keys.run_abort(run_id), by_user, ex=ABORT_FLAG_TTL_S)
            if ends_here:
                # Ended here as a worker ends a user's abort: no worker has it to end.
                ending = ending_of(Outcome.ABORTED_BY_USER)
                run = run.ended_as(ending, at=now, detail="before it started", by_user=by_user)
                self._runs.queue_update(pipe, run)
                pipe.zrem(self._keys.unclaimed, str(run_id))
                if notify and notices is not None:
                    notices.queue_run_ended(pipe, run)  # with the ending, as a worker's
            return run

        return self._on_run(run_id, attempt)

    def set_note(self, stack: int, run_id: int, note: str) -> RunRecord:
        def attempt(pipe: Pipeline) -> RunRecord:
            run = replace(self._runs.get(stack, run_id), note=note)
            pipe.multi()
            pipe.hset(self._keys.run(run_id), "note", note)
            return run

        return self._on_run(run_id, attempt)

    def delete(self, stack: int, run_id: int) -> None:
        """Delete a finished run: its record, flags and index entries (its RQ job expires
        with RQ's own result TTL). Conflict while it has not finished, as the k6 spec's
        "Cannot delete test while it's running": abort it first."""

        def attempt(pipe: Pipeline) -> RunRecord:
            run = self._runs.get(stack, run_id)
            if not run.finished:
                raise Conflict(
                    f"Test run {run_id} has not finished ({run.status}): abort it first."
                )
            pipe.multi()
            keys = self._keys
            pipe.delete(keys.run(run_id), keys.run_executed(run_id), keys.run_abort(run_id))
            pipe.zrem(keys.stack_index(run.stack, "runs"), run_id)
            pipe.zrem(keys.load_test_runs(run.load_test_id), run_id)
            pipe.zrem(keys.unclaimed, run_id)
            # Its schedule's ledger keeps the entry: the occurrence had a run (since deleted),
            # it was not missed. Retention clears it with the schedule's older entries.
            return run

        self._on_run(run_id, attempt)

    def _on_run(self, run_id: int, attempt: Callable[[Pipeline], RunRecord]) -> RunRecord:
        """``attempt`` in a transaction WATCHing the run's hash, again until nothing moved
        the run between its read and its EXEC; what ``attempt`` returned."""
        return transact(self._client, attempt, self._keys.run(run_id))
