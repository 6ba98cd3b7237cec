"""What a user may ask of an existing test run: abort it, or change its note.

Each request WATCHes the run's hash, so a worker moving the run meanwhile (created ->
initializing, running -> completed) voids the transaction and the request is decided again
on the new status: a run is never both aborted here and started there.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import redis

from tickwork.errors import Conflict
from tickwork.store.connection import translated
from tickwork.store.keys import Keys
from tickwork.store.runs import RunRecord, Runs, StatusEntry

ABORT_FLAG_TTL_S = 7 * 86_400
"""How long an abort request waits for a worker: longer than any run may be queued or last."""

NOT_STARTED = frozenset({"created", "queued"})
"""Statuses of a run no worker has begun to execute: an abort ends these at once."""

# Recorded as the workers record a user's abort (the run lifecycle's ``aborted_by_user``
# ending): status aborted, result error, k6 Cloud status code 5, the reason first.
ABORTED_BY_USER = "aborted_by_user"
K6_ABORTED_BY_USER_CODE = 5


def aborted_before_start(run: RunRecord, *, by_user: str, now: datetime) -> RunRecord:
    entry = StatusEntry(
        "aborted",
        now,
        message=f"{ABORTED_BY_USER}: before it started",
        by_user=by_user,
        code=K6_ABORTED_BY_USER_CODE,
    )
    return replace(
        run,
        status="aborted",
        status_history=(*run.status_history, entry),
        result="error",
        ended=now,
        details={**run.details, "reason": ABORTED_BY_USER},
    )


class RunRequests:
    def __init__(self, client: redis.Redis, keys: Keys, runs: Runs) -> None:
        self._client = client
        self._keys = keys
        self._runs = runs

    def abort(self, stack: int, run_id: int, *, by_user: str, now: datetime) -> RunRecord:
        """Ask for the run to stop. A run that has not started ends as ``aborted`` now; a
        running one is left to its worker, which polls the abort flag. Conflict when the run
        has already finished (the k6 spec's "Cannot abort a non-running test")."""
        key = self._keys.run(run_id)
        with translated(), self._client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    run = self._runs.get(stack, run_id)
                    if run.finished:
                        raise Conflict(f"Test run {run_id} has already finished ({run.status}).")
                    pipe.multi()
                    pipe.set(self._keys.run_abort(run_id), by_user, ex=ABORT_FLAG_TTL_S)
                    if run.status in NOT_STARTED:
                        run = aborted_before_start(run, by_user=by_user, now=now)
                        self._runs.queue_update(pipe, run)
                    pipe.execute()
                    return run
                except redis.WatchError:
                    continue

    def set_note(self, stack: int, run_id: int, note: str) -> RunRecord:
        key = self._keys.run(run_id)
        with translated(), self._client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    run = replace(self._runs.get(stack, run_id), note=note)
                    pipe.multi()
                    pipe.hset(key, "note", note)
                    pipe.execute()
                    return run
                except redis.WatchError:
                    continue
