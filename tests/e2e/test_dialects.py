"""The Kragle and report dialects end to end: `tickwork api`, a `tickwork scheduler` and a
`tickwork worker` as real processes, a real SMTP server (aiosmtpd) for the report's mail.

A Kragle schedule of one second is bound to a load test and fires it until it is deleted. A
report schedule fires at the end of a day in its zone; rather than wait for midnight, the
test moves that one occurrence to a second from now (the record's due instant, as the
scheduler would have it), and the worker mails the digest of the day that ended before it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tickwork.core.instants import parse_instant
from tickwork.core.reports import report_window
from tickwork.store import RunRecord, StatusEntry, Store

from .processes import Processes

pytestmark = pytest.mark.slow

TOKEN = "e2e-dialects-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}", "X-Stack-Id": "1"}


def _until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def cluster(
    redis_url: str, tmp_path: Path, smtp_server: Any
) -> Iterator[tuple[httpx.Client, Store]]:
    prefix = f"e2ed{uuid.uuid4().hex[:8]}"
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
        "TICKWORK_SMTP_HOST": smtp_server.host,
        "TICKWORK_SMTP_PORT": str(smtp_server.port),
        "TICKWORK_SMTP_FROM": "reports@tickwork.example",
        "TICKWORK_PUBLIC_URL": "https://tickwork.example",
    }
    processes = Processes(env, tmp_path)
    client = redis.Redis.from_url(redis_url)
    try:
        api = processes.api("api")
        scheduler = processes.scheduler("scheduler")
        processes.worker("worker")
        for process in (api, scheduler):
            processes.wait_healthy(process)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{api.port}", headers=AUTH, timeout=10
        ) as http:
            yield http, Store(client, prefix)
    finally:
        processes.stop_all()
        client.close()


def _ok(response: httpx.Response) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


def _runs(http: httpx.Client, load_test: int) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = _ok(http.get(f"/cloud/v6/load_tests/{load_test}/test_runs"))[
        "value"
    ]
    return runs


def test_kragle_jobs_and_a_mailed_report_through_real_processes(
    cluster: tuple[httpx.Client, Store], smtp_server: Any
) -> None:
    http, store = cluster
    project = _ok(http.post("/cloud/v6/projects", json={"name": "e2e"}))["id"]
    load_test = _ok(
        http.post(
            f"/cloud/v6/projects/{project}/load_tests",
            json={"name": "smoke", "runner": {"type": "command", "argv": ["sh", "-c", "exit 0"]}},
        )
    )["id"]

    # A Kragle schedule of one second, bound to the load test, fires it every second.
    template = _ok(http.post("/kragle/schedules", json={"name": "1s", "config": {"period": 1}}))
    job = _ok(
        http.post("/kragle/jobs", json={"schedule_id": template["id"], "load_test_id": load_test})
    )
    _until(
        lambda: sum(r["result"] == "passed" for r in _runs(http, load_test)) >= 2,
        15,
        "two passed runs of the Kragle job",
    )
    assert {r["schedule_id"] for r in _runs(http, load_test)} == {job["id"]}

    # Deleting the schedule stops the job. A fire commits only against the job's current
    # version, atomically, so every run it will ever have exists when the 204 arrives: each
    # created (stamped at its commit) before the delete answered, and none after it.
    assert http.delete(f"/kragle/schedules/byid/{template['id']}").status_code == 204
    deleted_at = datetime.now(UTC)
    before = _runs(http, load_test)
    assert store.client.zscore(store.keys.due, str(job["id"])) is None  # nothing left to fire
    time.sleep(2.5)  # two more periods of the job (and any fire encoded ahead of them)
    after = _runs(http, load_test)
    assert [run["id"] for run in after] == [run["id"] for run in before]
    assert all(parse_instant(run["created"]) <= deleted_at for run in after)

    # A daily report on the load test, with two runs in the day before it is sent.
    report = _ok(
        http.post(
            "/api/v1/reports/schedules",
            json={
                "attrs": {
                    "name": "e2e daily",
                    "schedule": "daily",
                    "timezone": "UTC",
                    "services": ["smoke"],
                    "send_via": "email",
                    "send_to": ["team@example.com"],
                }
            },
        )
    )["data"]["schedule"]
    soon = datetime.now(UTC) + timedelta(seconds=1)
    start, end = report_window("daily", "UTC", at=soon)
    seeded = [
        _seed(store, load_test, project, end - timedelta(hours=3), "passed"),
        _seed(store, load_test, project, end - timedelta(hours=2), "failed"),
    ]
    _bring_forward(store, report["id"], soon)

    (mail,) = smtp_server.wait(1, timeout_s=20)
    assert mail.rcpt_tos == ["team@example.com"]
    assert mail.message["From"] == "reports@tickwork.example"
    assert mail.message["Subject"] == (
        f"[tickwork] e2e daily: 1/2 passed, 1 failed (daily, {start.date().isoformat()})"
    )
    body = mail.message.get_content()
    assert f"https://tickwork.example/cloud/v6/test_runs/{seeded[1]}" in body
    schedule_id = store.reports.get(1, report["id"]).schedule_id
    runs = _ok(http.get("/cloud/v6/test_runs"))["value"]
    (report_run,) = [r for r in runs if r["schedule_id"] == schedule_id]
    _until(
        lambda: _ok(http.get(f"/cloud/v6/test_runs/{report_run['id']}"))["status"] == "completed",
        10,
        "the report run to be recorded",
    )
    assert _ok(http.get(f"/cloud/v6/test_runs/{report_run['id']}"))["result"] == "passed"
    fetched = _ok(http.get(f"/api/v1/reports/schedules/{report['id']}"))["data"]["schedule"]
    assert fetched["end_timestamp"] is not None


def _seed(store: Store, load_test: int, project: int, created: datetime, result: str) -> int:
    run_id = store.runs.new_id()
    store.runs.create(
        RunRecord(
            id=run_id,
            stack=1,
            load_test_id=load_test,
            project_id=project,
            created=created,
            status="completed",
            status_history=(StatusEntry("created", created), StatusEntry("completed", created)),
            result=result,
            ended=created,
        )
    )
    return run_id


def _bring_forward(store: Store, report_id: str, at: datetime) -> None:
    """Move the report's next occurrence to ``at``, as if its period ended then."""
    record = store.schedules.get_any(store.reports.get(1, report_id).schedule_id)
    assert record is not None
    with store.client.pipeline() as pipe:
        pipe.multi()
        store.schedules.write(pipe, replace(record, next_at=at, version=record.version + 1))
        pipe.execute()
