"""Executing a run: claim it once, keep it alive, end it once, and reap it when its worker dies.

    claim      WATCH the run and its ``executed`` key; if no worker took it and its status
               may move to ``initializing``, then in one MULTI: SET ``executed``, move the
               run, and add it to ``running`` with a heartbeat deadline. A job delivered
               twice (RQ does not de-duplicate) finds ``executed`` set and does nothing.
    heartbeat  push the deadline forward, only while the run is still in ``running``: a run
               the reaper has ended is never revived, and its worker learns it lost the run.
    move       a status change that applies only if the run is still in the status the
               worker last wrote (WATCH/MULTI): a reaped or otherwise ended run stays ended.
    reap       end, as ``aborted`` (worker lost), each run whose deadline has passed.

Every ending (``move`` to a terminal status, whoever asks) records the run's notification
event and queues its job in the same MULTI when the run's stack has notification rules
(``store/notifications.py``): one EXISTS more, read while the run is WATCHed.

Deadlines are in the Redis server's clock (``TIME``), so the workers' and the reapers'
clocks may disagree without a live run being reaped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import redis
from redis.client import Pipeline

from tickwork.core.instants import to_us
from tickwork.core.lifecycle import (
    NOT_STARTED,
    Ending,
    Outcome,
    Status,
    allowed,
    ending_of,
    is_terminal,
)
from tickwork.core.runs import RunRecord
from tickwork.errors import Conflict
from tickwork.store.connection import text_of, translated
from tickwork.store.keys import Keys
from tickwork.store.notifications import Notifications
from tickwork.store.queue import (
    JOB_GONE_STATUSES,
    JOB_KEY_PREFIX,
    JOB_RESULT_TTL_S,
    QUEUE_KEY_PREFIX,
    intermediate_key,
)
from tickwork.store.runs import Runs, decode
from tickwork.store.transactions import transact

EXECUTED_TTL_S = 30 * 86_400
"""How long the at-most-once marker outlives the claim: far beyond any redelivery RQ makes
(failed jobs are kept 7 days). After it the run's terminal status still refuses a claim."""

IN_FLIGHT_CONFIRM = timedelta(seconds=5)
"""How long a job may sit off the queue unclaimed before its run is taken for lost (a
worker claims within milliseconds of its dequeue)."""

# KEYS[1] running ZSET; ARGV[1] run id; ARGV[2] lapse (ms). Returns 1 when the deadline
# moved, 0 when the run is no longer in ``running`` (finished, or reaped).
_HEARTBEAT = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
return 1
"""


@dataclass(frozen=True, slots=True)
class Claim:
    """The run moved to ``initializing`` by this worker, or why it was not claimed."""

    run: RunRecord | None
    refused: str | None = None


class Executions:
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
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._in_flight: dict[int, datetime] = {}
        """Runs whose job the last strand check found off the queue but not claimed: when
        it first did (at most ``limit`` entries)."""

    def claim(self, run_id: int, *, worker: str, at: datetime, lapse_ms: int) -> Claim:
        run_key, executed = self._keys.run(run_id), self._keys.run_executed(run_id)

        def attempt(pipe: Pipeline) -> Claim:
            fields = pipe.hgetall(run_key)
            if not fields:
                return Claim(None, "run_missing")
            if pipe.exists(executed):
                return Claim(None, "already_executed")
            run = decode(fields)
            if not allowed(run.status, Status.INITIALIZING):
                return Claim(None, f"status_{run.status}")
            deadline_ms = self._server_ms(pipe) + lapse_ms
            claimed = replace(
                run.moved_to(Status.INITIALIZING, at=at),
                details={**run.details, "worker": worker},
            )
            pipe.multi()
            pipe.set(executed, worker, ex=EXECUTED_TTL_S)
            self._runs.queue_update(pipe, claimed)
            pipe.zrem(self._keys.unclaimed, str(run_id))
            pipe.zadd(self._keys.running, {str(run_id): deadline_ms})
            return Claim(claimed)

        return transact(self._client, attempt, run_key, executed)

    def heartbeat(self, run_id: int, *, lapse_ms: int) -> bool:
        """Move the run's deadline ``lapse_ms`` past now; False once it is not ours to keep."""
        with translated():
            return bool(self._heartbeat(keys=[self._keys.running], args=[run_id, lapse_ms]))

    def abort_requested(self, run_id: int) -> str | None:
        """Who asked to abort the run ("" when unknown), or None when nobody did."""
        with translated():
            raw = self._client.get(self._keys.run_abort(run_id))
        return None if raw is None else text_of(raw)

    def move(
        self,
        run_id: int,
        *,
        expect: str,
        change: Callable[[RunRecord], RunRecord],
    ) -> RunRecord | None:
        """Apply ``change`` to the fresh record if its status is still ``expect``; the new
        record, or None when someone else moved the run meanwhile. A terminal result also
        takes the run out of ``running``."""
        run_key = self._keys.run(run_id)

        def attempt(pipe: Pipeline) -> RunRecord | None:
            fields = pipe.hgetall(run_key)
            if not fields:
                return None
            current = decode(fields)
            if current.status != expect:
                return None
            try:
                updated = change(current)
            except Conflict:
                return None  # the lifecycle forbids it (moved_to)
            ended = is_terminal(updated.status)
            notices = self._notifications
            notify = ended and notices is not None and notices.watching(pipe, updated.stack)
            pipe.multi()
            self._runs.queue_update(pipe, updated)
            if ended:
                pipe.zrem(self._keys.running, str(run_id))
                pipe.zrem(self._keys.unclaimed, str(run_id))
            if notify and notices is not None:
                notices.queue_run_ended(pipe, updated)
            return updated

        return transact(self._client, attempt, run_key)

    def finish(
        self,
        run_id: int,
        *,
        expect: str,
        ending: Ending,
        at: datetime,
        detail: str = "",
        details: dict[str, Any] | None = None,
        by_user: str | None = None,
    ) -> RunRecord | None:
        """End the run as ``ending`` says, if it is still in status ``expect``."""
        return self.move(
            run_id,
            expect=expect,
            change=lambda run: run.ended_as(
                ending, at=at, detail=detail, details=details, by_user=by_user
            ),
        )

    def lapsed(self, *, limit: int = 100) -> list[int]:
        """Ids of runs whose heartbeat deadline has passed, oldest deadline first."""
        with translated():
            now_ms = self._server_ms(self._client)
            raw = self._client.zrangebyscore(self._keys.running, "-inf", now_ms, 0, limit)
        return [int(text_of(member)) for member in raw]

    def reap(self, *, now: datetime, limit: int = 100) -> list[RunRecord]:
        """End every run whose worker stopped heartbeating; the runs ended by this call.

        Safe to call from any number of processes at once: each run is ended by one of them,
        and a run that finished or heartbeated meanwhile is left alone."""
        reaped = []
        lost = ending_of(Outcome.WORKER_LOST)
        for run_id in self.lapsed(limit=limit):
            with translated():
                score = self._client.zscore(self._keys.running, str(run_id))
                now_ms = self._server_ms(self._client)
            if score is None or score > now_ms:
                continue  # finished, reaped by a rival, or alive again since the listing
            run = self._runs.get_any(run_id)
            if run is None or is_terminal(run.status):
                with translated():
                    self._client.zrem(self._keys.running, str(run_id))
                continue
            silent_s = (now_ms - score) / 1000
            ended = self.finish(
                run_id,
                expect=run.status,
                ending=lost,
                at=now,
                detail=f"its worker ({run.details.get('worker', 'unknown')}) stopped "
                f"heartbeating; last deadline passed {silent_s:.1f} s ago",
            )
            if ended is not None:
                reaped.append(ended)
        return reaped

    def strand_check(
        self, *, now: datetime, claim_within: timedelta, max_queued: timedelta, limit: int = 100
    ) -> list[RunRecord]:
        """End runs whose job no worker will run: queued longer than ``claim_within`` and
        lost (the job is gone or failed, or a worker took it off the queue and never claimed
        the run), or waiting longer than ``max_queued`` (no worker took it); the runs ended
        by this call.

        A job off the queue but not claimed is normal for the milliseconds between a
        worker's dequeue and its claim, so such a run is ended only when a later check, at
        least ``IN_FLIGHT_CONFIRM`` on, still finds it so (a worker that died there, or whose
        Redis refused the claim). A worker that claims such a run afterwards finds it ended
        and does nothing. The ended run's RQ job expires like a finished one's."""
        with translated():
            candidates = [
                int(text_of(member))
                for member in self._client.zrangebyscore(
                    self._keys.unclaimed, "-inf", to_us(now - claim_within), 0, limit
                )
            ]
        in_flight: dict[int, datetime] = {}
        ended = []
        for run_id in candidates:
            run = self._runs.get_any(run_id)
            if run is None or run.status not in NOT_STARTED or run.job_id is None:
                with translated():
                    self._client.zrem(self._keys.unclaimed, str(run_id))
                continue
            verdict = self._stranded(run, now=now, max_queued=max_queued)
            if verdict is None:
                continue
            outcome, detail, dequeued = verdict
            if dequeued:
                seen = in_flight[run_id] = self._in_flight.get(run_id, now)
                if now - seen < IN_FLIGHT_CONFIRM:
                    continue
            finished = self.finish(
                run_id, expect=run.status, ending=ending_of(outcome), at=now, detail=detail
            )
            if finished is not None:
                with translated():
                    self._client.expire(JOB_KEY_PREFIX + run.job_id, JOB_RESULT_TTL_S)
                ended.append(finished)
        self._in_flight = in_flight
        return ended

    def _stranded(
        self, run: RunRecord, *, now: datetime, max_queued: timedelta
    ) -> tuple[Outcome, str, bool] | None:
        """Why the run's job will not run, and whether a worker has it off the queue (to be
        confirmed by a later check); None while it waits its turn."""
        assert run.job_id is not None
        job_key = JOB_KEY_PREFIX + run.job_id
        lost = "its job was lost before a worker claimed it (job {})"
        with translated():
            origin = self._client.hget(job_key, "origin")
            # One snapshot: a dequeue moves the job off its queue atomically.
            pipe = self._client.pipeline(transaction=True)
            pipe.hget(job_key, "status")
            if origin is not None:
                pipe.lpos(QUEUE_KEY_PREFIX + text_of(origin), run.job_id)
                pipe.lpos(intermediate_key(text_of(origin)), run.job_id)
            status, *places = pipe.execute()
        job_status = text_of(status) if status is not None else None
        if job_status is None or job_status in JOB_GONE_STATUSES:
            return Outcome.WORKER_LOST, lost.format(job_status or "missing"), False
        if job_status == "started":
            return Outcome.WORKER_LOST, lost.format("started"), True
        if job_status == "queued" and places and places[0] is None:
            # RQ moves the job to its intermediate list when a worker listens on one queue,
            # and pops it outright when on several (ours: runs and notifications).
            where = "dequeued" if places[1] is not None else "dequeued and dropped"
            return Outcome.WORKER_LOST, lost.format(f"queued, {where}"), True
        if now - run.created > max_queued:
            waited = int((now - run.created).total_seconds())
            return Outcome.TIMED_OUT, f"no worker claimed it within {waited} s", False
        return None

    @staticmethod
    def _server_ms(client: redis.Redis | redis.client.Pipeline) -> int:
        seconds, micros = client.time()
        return int(seconds) * 1000 + int(micros) // 1000
