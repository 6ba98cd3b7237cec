"""Notifications in Redis: events, the notify jobs, storm decisions and the delivery log.

Where an event is recorded, and what it costs there:

    a run ends      Executions.move / RunRequests.abort: one EXISTS of the stack's rule
                    index while the run is WATCHed; when the stack has rules, the event
                    (``run-{run_id}``) and its RQ job go in the same MULTI as the ending
    fires commit    the leader, after a batch, when some rule names a fire kind (it looks
                    every few seconds, not per fire): one event naming the batch's load
                    tests and the span their runs were created in, and its job
    a channel test  the API: the event, its job and the delivery (``queued``), together

A worker's notify job (``tickwork.worker.jobs.notify``, on the queue ``{p}-notifications``)
reads the event, finds the rules, asks ``decide`` for each (rule, event) whether it is sent
or held back by the rule's storm window (Lua, made once per pair, so a job run twice counts
nothing twice), and delivers each (event, channel) once: ``claim`` creates the delivery and
refuses one already sent, failed, or being sent by a live worker.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import redis
from redis.client import Pipeline
from rq import Queue
from rq.serializers import JSONSerializer

from tickwork.core.instants import format_instant, from_us, to_us
from tickwork.core.notices import Channel, EventKind
from tickwork.core.runs import RunRecord
from tickwork.store.connection import text_of, translated
from tickwork.store.keys import Keys
from tickwork.store.notify_config import Channels, Rules
from tickwork.store.paging import read_text_page
from tickwork.store.runs import decode as decode_run
from tickwork.store.transactions import transact

NOTIFY_FUNCTION = "tickwork.worker.jobs.notify"
"""The notify job's function, named as text (the store imports no worker code)."""
NOTIFY_JOB_TIMEOUT_S = 2 * 3600  # a backstop: each delivery's retries are bounded far below
NOTIFY_RESULT_TTL_S = 3600
NOTIFY_FAILURE_TTL_S = 7 * 86_400
EVENT_TTL_S = 7 * 86_400
"""How long an event waits for its job (longer than a queue should ever be)."""
DELIVERY_STATUSES = ("queued", "sending", "sent", "failed")

# KEYS[1] the event's decisions (HASH), KEYS[2] the rule's windows (HASH), KEYS[3] the rule
# ARGV[1] rule id, ARGV[2] window field "{kind}:{load_test}", ARGV[3] now (ms),
#   ARGV[4] the rule's quiet window (ms), ARGV[5] TTL of the decisions (s)
# Returns the decision, made once per (event, rule): "send:{held}" when the window is open
# (``held``: events kept back since the last message, reported now and reset), "quiet" when
# it is closed (``held`` + 1), "gone" when the rule was deleted meanwhile.
_DECIDE = """
local made = redis.call('HGET', KEYS[1], ARGV[1])
if made then return made end
local decision
if redis.call('EXISTS', KEYS[3]) == 0 then
  decision = 'gone'
else
  local now, until_ms, held = tonumber(ARGV[3]), 0, 0
  local window = redis.call('HGET', KEYS[2], ARGV[2])
  if window then
    local a, b = string.match(window, '^(%d+) (%d+)$')
    until_ms, held = tonumber(a), tonumber(b)
  end
  if now >= until_ms then
    decision = 'send:' .. string.format('%d', held)
    redis.call('HSET', KEYS[2], ARGV[2], string.format('%d 0', now + tonumber(ARGV[4])))
  else
    decision = 'quiet'
    redis.call('HSET', KEYS[2], ARGV[2], string.format('%d %d', until_ms, held + 1))
  end
end
redis.call('HSET', KEYS[1], ARGV[1], decision)
redis.call('EXPIRE', KEYS[1], ARGV[5])
return decision
"""


def notify_queue_name(prefix: str) -> str:
    """The RQ queue of notify jobs: every worker of the deployment takes it (after its own)."""
    return f"{prefix}-notifications"


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One message of one event to one channel, and how it went."""

    event_id: str
    channel_id: int
    stack: int
    kind: str
    title: str
    run_id: int | None = None
    load_test_id: int | None = None
    rules: tuple[int, ...] = ()
    status: str = "queued"
    attempts: int = 0
    answer_status: int | None = None
    error: str | None = None
    response: str | None = None
    more: int = 0
    created: datetime
    updated: datetime

    @property
    def id(self) -> str:
        return f"{self.event_id}:{self.channel_id}"

    @property
    def finished(self) -> bool:
        return self.status in ("sent", "failed")


def _encode_delivery(delivery: Delivery) -> dict[Any, Any]:
    return {
        "event_id": delivery.event_id,
        "channel_id": str(delivery.channel_id),
        "stack": str(delivery.stack),
        "kind": delivery.kind,
        "title": delivery.title,
        "run_id": "" if delivery.run_id is None else str(delivery.run_id),
        "load_test_id": "" if delivery.load_test_id is None else str(delivery.load_test_id),
        "rules": json.dumps(list(delivery.rules)),
        "status": delivery.status,
        "attempts": str(delivery.attempts),
        "answer_status": "" if delivery.answer_status is None else str(delivery.answer_status),
        "error": delivery.error or "",
        "response": delivery.response or "",
        "more": str(delivery.more),
        "created_us": str(to_us(delivery.created)),
        "updated_us": str(to_us(delivery.updated)),
    }


def _decode_delivery(fields: Mapping[Any, Any]) -> Delivery:
    text = {text_of(k): text_of(v) for k, v in fields.items()}
    return Delivery(
        event_id=text["event_id"],
        channel_id=int(text["channel_id"]),
        stack=int(text["stack"]),
        kind=text["kind"],
        title=text["title"],
        run_id=int(text["run_id"]) if text["run_id"] else None,
        load_test_id=int(text["load_test_id"]) if text["load_test_id"] else None,
        rules=tuple(json.loads(text["rules"])),
        status=text["status"],
        attempts=int(text["attempts"]),
        answer_status=int(text["answer_status"]) if text["answer_status"] else None,
        error=text["error"] or None,
        response=text["response"] or None,
        more=int(text["more"]),
        created=from_us(int(text["created_us"])),
        updated=from_us(int(text["updated_us"])),
    )


@dataclass(frozen=True, slots=True)
class Decision:
    send: bool
    held: int = 0  # sent: events held back before it, which the message mentions
    gone: bool = False  # the rule was deleted meanwhile


class Notifications:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self.channels = Channels(client, keys)
        self.rules = Rules(client, keys)
        self._decide = client.register_script(_DECIDE)
        self._queue: Queue | None = None

    # Recording events where they happen

    def watching(self, pipe: Pipeline, stack: int) -> bool:
        """Whether runs of ``stack`` notify (it has rules): one EXISTS in the caller's
        WATCH phase, before its MULTI; when true the job queue is made ready too (RQ reads
        the server's version once, and never inside a MULTI)."""
        if not pipe.exists(self._keys.stack_index(stack, "notify_rules")):
            return False
        self._rq().get_redis_server_version()
        return True

    def queue_run_ended(self, pipe: Pipeline, run: RunRecord) -> None:
        """Queue the event of a run's ending and its job on ``pipe``'s MULTI (after a true
        ``watching``), so they commit with the ending or not at all."""
        event = {
            "source": "run",
            "run_id": run.id,
            "stack": run.stack,
            "load_test_id": run.load_test_id,
            "at": format_instant(run.ended or run.created),
        }
        self._queue_event(pipe, f"run-{run.id}", event)

    def enqueue_fires(
        self, load_test_ids: Sequence[int], *, since: datetime, until: datetime
    ) -> str:
        """An event asking a worker to look at the runs the fire commit created for these
        load tests after ``since`` and up to ``until`` (skips, expiries); its id."""
        event_id = f"fires-{uuid.uuid4().hex}"
        event = {
            "source": "fires",
            "load_tests": sorted(set(load_test_ids)),
            "since_us": to_us(since),
            "until_us": to_us(until),
        }
        with translated():
            self._rq().get_redis_server_version()
            with self._client.pipeline() as pipe:
                pipe.multi()  # RQ queues into an explicit MULTI only
                self._queue_event(pipe, event_id, event)
                pipe.execute()
        return event_id

    def enqueue_test(self, channel: Channel, *, now: datetime) -> Delivery:
        """A channel's test: its event, its job and its delivery (queued), in one MULTI."""
        event_id = f"test-{uuid.uuid4().hex}"
        delivery = Delivery(
            event_id=event_id,
            channel_id=channel.id,
            stack=channel.stack,
            kind=EventKind.TEST.value,
            title="Test notification",
            created=now,
            updated=now,
        )
        event = {"source": "test", "stack": channel.stack, "channel_id": channel.id}
        with translated():
            self._rq().get_redis_server_version()
            with self._client.pipeline() as pipe:
                pipe.multi()  # RQ queues into an explicit MULTI only
                self._queue_delivery(pipe, delivery)
                self._queue_event(pipe, event_id, event)
                pipe.execute()
        return delivery

    def _rq(self) -> Queue:
        if self._queue is None:
            self._queue = Queue(
                notify_queue_name(self._keys.prefix),
                connection=self._client,
                serializer=JSONSerializer,
            )
        return self._queue

    def _queue_event(self, pipe: Pipeline, event_id: str, event: dict[str, Any]) -> None:
        pipe.set(self._keys.notify_event(event_id), json.dumps(event), ex=EVENT_TTL_S)
        rq_queue = self._rq()
        job = rq_queue.create_job(
            NOTIFY_FUNCTION,
            kwargs={"event_id": event_id, "prefix": self._keys.prefix},
            job_id=f"notify-{event_id}",
            timeout=NOTIFY_JOB_TIMEOUT_S,
            result_ttl=NOTIFY_RESULT_TTL_S,
            failure_ttl=NOTIFY_FAILURE_TTL_S,
            description=f"notifications of {event_id}",
        )
        rq_queue.enqueue_job(job, pipeline=pipe)

    # What a worker reads

    def event(self, event_id: str) -> dict[str, Any] | None:
        with translated():
            raw = self._client.get(self._keys.notify_event(event_id))
        if raw is None:
            return None
        data = json.loads(text_of(raw))
        return data if isinstance(data, dict) else None

    def outcomes_through(self, run: RunRecord, *, limit: int) -> list[tuple[str, str | None]]:
        """Up to ``limit`` runs of the run's load test created at or before it, newest first
        (the run among them): what its failure streak is counted from."""
        index = self._keys.load_test_runs(run.load_test_id)
        with translated():
            ids = self._client.zrevrangebyscore(index, to_us(run.created), "-inf", 0, limit)
            pipe = self._client.pipeline(transaction=False)
            for member in ids:
                pipe.hmget(self._keys.run(int(text_of(member))), ["status", "result"])
            rows = pipe.execute()
        return [
            (text_of(status), (text_of(result) or None) if result is not None else None)
            for status, result in rows
            if status is not None
        ]

    def runs_created(
        self, load_test_id: int, *, since_us: int, until_us: int, limit: int
    ) -> list[RunRecord]:
        """The load test's runs created after ``since_us`` and up to ``until_us``, oldest
        first."""
        index = self._keys.load_test_runs(load_test_id)
        with translated():
            ids = self._client.zrangebyscore(index, f"({since_us}", until_us, 0, limit)
            pipe = self._client.pipeline(transaction=False)
            for member in ids:
                pipe.hgetall(self._keys.run(int(text_of(member))))
            rows = pipe.execute()
        return [decode_run(row) for row in rows if row]

    def decide(
        self, event_id: str, *, rule_id: int, window: str, now: datetime, quiet: timedelta
    ) -> Decision:
        """Whether the rule sends the event or holds it back (its storm window for
        ``window``, "{kind}:{load_test}", is closed); made once per (event, rule)."""
        with translated():
            raw = self._decide(
                keys=[
                    self._keys.notify_decisions(event_id),
                    self._keys.notify_rule_windows(rule_id),
                    self._keys.notify_rule(rule_id),
                ],
                args=[
                    rule_id,
                    window,
                    to_us(now) // 1000,
                    int(quiet.total_seconds() * 1000),
                    EVENT_TTL_S,
                ],
            )
        decision = text_of(raw)
        if decision == "gone":
            return Decision(send=False, gone=True)
        if decision == "quiet":
            return Decision(send=False)
        return Decision(send=True, held=int(decision.split(":", 1)[1]))

    # The delivery log

    def claim(
        self, delivery: Delivery, *, now: datetime, stale_after: timedelta
    ) -> Delivery | None:
        """Start ``delivery`` (status ``sending``), unless it was sent or failed already, or
        is being sent by a worker that wrote to it within ``stale_after`` (a worker that
        died mid-delivery leaves it to be taken over, with the same event id). The
        delivery as started (attempts so far kept), or None."""
        key = self._keys.notify_delivery(delivery.id)

        def attempt(pipe: Pipeline) -> Delivery | None:
            fields = pipe.hgetall(key)
            started = delivery
            if fields:
                stored = _decode_delivery(fields)
                if stored.finished:
                    return None
                if stored.status == "sending" and now - stored.updated < stale_after:
                    return None
                started = replace(delivery, attempts=stored.attempts, created=stored.created)
            started = replace(started, status="sending", updated=now)
            pipe.multi()
            self._queue_delivery(pipe, started)
            return started

        return transact(self._client, attempt, key)

    def _queue_delivery(self, pipe: Pipeline, delivery: Delivery) -> None:
        member = delivery.id
        created_us = to_us(delivery.created)
        pipe.hset(self._keys.notify_delivery(member), mapping=_encode_delivery(delivery))
        pipe.zadd(self._keys.notify_channel_deliveries(delivery.channel_id), {member: created_us})
        if delivery.run_id is not None:
            pipe.zadd(self._keys.notify_run_deliveries(delivery.run_id), {member: created_us})
        pipe.zadd(self._keys.stack_index(delivery.stack, "notify_deliveries"), {member: created_us})
        pipe.sadd(self._keys.notify_stacks, delivery.stack)

    def record(self, delivery: Delivery) -> None:
        """Write an attempt's outcome (or the final one) over the stored delivery, if it is
        still there (retention may have removed it: then nothing is recreated)."""
        key = self._keys.notify_delivery(delivery.id)

        def attempt(pipe: Pipeline) -> None:
            if not pipe.exists(key):
                return
            pipe.multi()
            pipe.hset(key, mapping=_encode_delivery(delivery))

        transact(self._client, attempt, key)

    def delivery(self, event_id: str, channel_id: int) -> Delivery | None:
        with translated():
            fields = self._client.hgetall(self._keys.notify_delivery(f"{event_id}:{channel_id}"))
        return _decode_delivery(fields) if fields else None

    def of_channel(
        self, stack: int, channel_id: int, *, skip: int, top: int
    ) -> tuple[list[Delivery], int]:
        """The channel's deliveries, newest first."""
        return self._page(stack, self._keys.notify_channel_deliveries(channel_id), skip, top)

    def of_run(self, stack: int, run_id: int, *, skip: int, top: int) -> tuple[list[Delivery], int]:
        """The deliveries of the run's events, newest first."""
        return self._page(stack, self._keys.notify_run_deliveries(run_id), skip, top)

    def _page(self, stack: int, index: str, skip: int, top: int) -> tuple[list[Delivery], int]:
        rows, total = read_text_page(
            self._client, index, self._keys.notify_delivery, skip=skip, top=top, descending=True
        )
        found = [_decode_delivery(row) for row in rows]
        return [delivery for delivery in found if delivery.stack == stack], total

    def sweep(self, *, before: datetime, limit: int) -> int:
        """Remove up to ``limit`` deliveries created before ``before``; how many."""
        removed = 0
        with translated():
            stacks = sorted(
                int(text_of(raw)) for raw in self._client.smembers(self._keys.notify_stacks)
            )
        for stack in stacks:
            index = self._keys.stack_index(stack, "notify_deliveries")
            if removed >= limit:
                break
            with translated():
                members = [
                    text_of(raw)
                    for raw in self._client.zrangebyscore(
                        index, "-inf", f"({to_us(before)}", 0, limit - removed
                    )
                ]
                pipe = self._client.pipeline(transaction=False)
                for member in members:
                    pipe.hmget(self._keys.notify_delivery(member), ["channel_id", "run_id"])
                rows = pipe.execute()
                pipe = self._client.pipeline(transaction=True)
                for member, (channel_id, run_id) in zip(members, rows, strict=True):
                    pipe.delete(self._keys.notify_delivery(member))
                    pipe.zrem(index, member)
                    if channel_id:
                        pipe.zrem(
                            self._keys.notify_channel_deliveries(int(text_of(channel_id))), member
                        )
                    if run_id:
                        pipe.zrem(self._keys.notify_run_deliveries(int(text_of(run_id))), member)
                pipe.execute()
            removed += len(members)
        return removed
