"""Backfill end to end (issue 16 §4): `tickwork api`, a `tickwork scheduler` and two
`tickwork worker`s as real processes, the backfill asked through the CLI.

A schedule firing every second is paused over three of its occurrences; backfilled with
overlap ``skip``, they run exactly once each, one after another, although two workers could
run two at once: each run starts only after the one before it ended (the leader's feeder
queues the next one then).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tickwork.core import Interval, Schedule
from tickwork.core.instants import format_instant
from tickwork.store import RunRecord, Store

from .processes import Processes

pytestmark = pytest.mark.slow

TOKEN = "e2e-backfill-token-0123456789"
RUNNER = {"type": "command", "argv": ["sh", "-c", "sleep 0.5"]}


@pytest.fixture
def cluster(redis_url: str, tmp_path: Path) -> Iterator[tuple[httpx.Client, Store, dict[str, str]]]:
    prefix = f"e2eb{uuid.uuid4().hex[:8]}"
    env = {
        "TICKWORK_REDIS_URL": redis_url,
        "TICKWORK_KEY_PREFIX": prefix,
        "TICKWORK_QUEUES": json.dumps([f"{prefix}-runs"]),
        "TICKWORK_LEASE_TTL_SECONDS": "2",
        "TICKWORK_RUN_HEARTBEAT_SECONDS": "0.5",
        "TICKWORK_TOKENS": json.dumps(
            [{"token": TOKEN, "email": "e2e@example.com", "stacks": [1]}]
        ),
        "TICKWORK_COMMAND_ALLOWED": '["sh"]',
    }
    processes = Processes(env, tmp_path)
    client = redis.Redis.from_url(redis_url)
    try:
        api = processes.api("api")
        scheduler = processes.scheduler("scheduler")
        processes.worker("worker-1")
        processes.worker("worker-2")
        for process in (api, scheduler):
            processes.wait_healthy(process)
        base = f"http://127.0.0.1:{api.port}"
        headers = {"Authorization": f"Bearer {TOKEN}", "X-Stack-Id": "1"}
        with httpx.Client(base_url=base, headers=headers, timeout=10) as http:
            cli_env = {
                "TICKWORK_API_URL": base,
                "TICKWORK_API_TOKEN": TOKEN,
                "TICKWORK_STACK_ID": "1",
            }
            yield http, Store(client, prefix), cli_env
    finally:
        processes.stop_all()
        client.close()


def _ok(response: httpx.Response) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickwork", *args],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("TICKWORK_")}, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _rows(output: str) -> list[list[str]]:
    """The table the CLI printed, without its header and summary line."""
    lines = output.strip().splitlines()
    return [line.split() for line in lines[1:-1]]


def _started(run: RunRecord) -> datetime:
    return next(entry.entered for entry in run.status_history if entry.type == "running")


def test_a_paused_schedule_backfilled_with_overlap_skip_runs_each_once_one_after_another(
    cluster: tuple[httpx.Client, Store, dict[str, str]],
) -> None:
    http, store, env = cluster
    project = _ok(http.post("/cloud/v6/projects", json={"name": "e2e"}))["id"]
    load_test = _ok(
        http.post(
            f"/cloud/v6/projects/{project}/load_tests",
            json={"name": "quick", "runner": RUNNER},
        )
    )["id"]

    # Given a schedule firing every second from a second from now, paused at once
    # (the k6 API's finest rule is hourly: this one is set through the store)
    set_at = datetime.now(UTC).replace(microsecond=0)
    record = store.schedules.put(
        stack=1,
        load_test_id=load_test,
        schedule=Schedule(set_at + timedelta(seconds=1), Interval(timedelta(seconds=1))),
        request="{}",
        created_by="e2e@example.com",
        now=set_at,
    )
    assert http.post(f"/cloud/v6/schedules/{record.id}/deactivate").status_code == 204
    while datetime.now(UTC) < set_at + timedelta(seconds=3.6):
        time.sleep(0.1)
    until = set_at + timedelta(seconds=3.5)
    window = ("--from", format_instant(set_at), "--to", format_instant(until))

    # When the CLI looks (a dry run), then backfills for real, then again
    looked = _cli(env, "schedules", "backfill", str(record.id), *window)
    done = _cli(env, "schedules", "backfill", str(record.id), *window, "--overlap=skip", "--run")
    again = _cli(env, "schedules", "backfill", str(record.id), *window, "--run")

    # Then the dry run said what would run, the backfill created it, the repeat nothing
    assert looked.returncode == 0, looked.stderr
    assert [row[1] for row in _rows(looked.stdout)] == ["would_run"] * 3
    assert done.returncode == 0, done.stderr
    assert [row[1] for row in _rows(done.stdout)] == ["created"] * 3
    run_ids = [int(row[2]) for row in _rows(done.stdout)]
    assert again.returncode == 0, again.stderr
    assert [row[1:3] for row in _rows(again.stdout)] == [
        ["already_has_run", str(run_id)] for run_id in run_ids
    ]

    # And the three runs pass, one after another, each exactly once
    deadline = time.monotonic() + 90
    while True:
        runs = [store.runs.get(1, run_id) for run_id in run_ids]
        if all(run.finished for run in runs):
            break
        assert time.monotonic() < deadline, [run.status for run in runs]
        time.sleep(0.2)
    assert [run.result for run in runs] == ["passed"] * 3
    for earlier, later in pairwise(runs):
        assert earlier.ended is not None
        assert earlier.ended <= _started(later), (earlier.ended, _started(later))
    listed = _ok(http.get(f"/cloud/v6/load_tests/{load_test}/test_runs"))["value"]
    assert sorted(run["id"] for run in listed) == sorted(run_ids)
    assert [run.scheduled_for for run in runs] == [set_at + timedelta(seconds=s) for s in (1, 2, 3)]
