"""Retention settings reach a real `tickwork scheduler`: old and surplus runs go (issue 13 §1),
and so do notification deliveries older than theirs."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from tickwork.core.lifecycle import Outcome, ending_of
from tickwork.core.notices import Channel, ChannelType
from tickwork.core.runs import RunRecord
from tickwork.store import Store
from tickwork.store.queue import queue

from .processes import Processes

pytestmark = pytest.mark.slow


def test_the_scheduler_removes_runs_past_the_retention_settings(
    redis_url: str, tmp_path: Path
) -> None:
    prefix = f"e2ek{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    store = Store(client, prefix)
    rq_queue = queue(client, f"{prefix}-runs")
    client.hset(store.keys.load_test(1), mapping={"stack": 1, "project_id": 1})
    now = datetime.now(UTC)

    def finished(created: datetime) -> int:
        run_id = store.runs.new_id()
        run = RunRecord.started(
            run_id=run_id,
            stack=1,
            load_test_id=1,
            project_id=1,
            started_by="e2e@example.com",
            job_id=f"run-{run_id}",
            now=created,
        )
        with client.pipeline() as pipe:
            store.runs.queue_create(pipe, run)
            pipe.execute()
        assert store.executions.claim(run_id, worker="w", at=created, lapse_ms=10**6).run
        ending = ending_of(Outcome.PASSED)
        assert store.executions.finish(run_id, expect="initializing", ending=ending, at=created)
        return run_id

    old = [finished(now - timedelta(days=3, hours=i)) for i in range(2)]
    recent = [finished(now - timedelta(hours=5 - i)) for i in range(4)]
    channel = Channel(
        id=1,
        stack=1,
        name="hook",
        type=ChannelType.WEBHOOK,
        url="https://hooks.example.com/",
        created=now,
        updated=now,
    )
    stale = store.notifications.enqueue_test(channel, now=now - timedelta(days=4))
    fresh = store.notifications.enqueue_test(channel, now=now - timedelta(days=2))
    processes = Processes(
        {
            "TICKWORK_REDIS_URL": redis_url,
            "TICKWORK_KEY_PREFIX": prefix,
            "TICKWORK_QUEUES": json.dumps([rq_queue.name]),
            "TICKWORK_RUN_RETENTION_DAYS": "2",
            "TICKWORK_RUNS_PER_LOAD_TEST": "3",
            "TICKWORK_NOTIFY_RETENTION_DAYS": "3",
        },
        tmp_path,
    )
    try:
        processes.wait_healthy(processes.scheduler("scheduler"))
        deadline = time.monotonic() + 20
        while (
            client.zcard(store.keys.load_test_runs(1)) > 3
            or store.notifications.delivery(stale.event_id, channel.id) is not None
        ):
            assert time.monotonic() < deadline, "retention did not run"
            time.sleep(0.1)
    finally:
        processes.stop_all()
        client.close()

    kept, _ = store.runs.page(1, skip=0, top=100)
    assert [run.id for run in kept] == recent[1:]
    assert all(store.runs.get_any(run_id) is None for run_id in [*old, recent[0]])
    # Deliveries are kept by their own setting (3 days), not the runs' (2 days).
    log, _ = store.notifications.of_channel(1, channel.id, skip=0, top=10)
    assert [d.event_id for d in log] == [fresh.event_id]
