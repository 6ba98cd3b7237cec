"""Notifications end to end: `tickwork api`, a scheduler, two workers, real k6, and real
receivers on loopback (an HTTP server playing a webhook, Slack and Teams; aiosmtpd for mail).

Channels and rules are set through the HTTP API; runs end as workers end them (a scheduled k6
run whose threshold is crossed, commands that exit 1); the workers deliver. Every answer the
API gave in this module and every line the processes logged is checked, at the end, for the
channels' secrets.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import httpx
import pytest
import redis
from rq import Queue, Worker

from receivers import Receiver, down_url, receiving
from tickwork.core.instants import format_instant, parse_instant
from tickwork.embedded import free_port

from .processes import Processes

pytestmark = pytest.mark.slow

TOKEN = "e2e-notify-token-0123456789"
SIGNING = "e2e-notify-signing-secret-42"
HEADER_VALUE = "Bearer e2e-header-secret-77"
SLACK_PATH = "/services/T0/B0/e2e-slack-secret-11"
TEAMS_PATH = "/webhookb2/e2e-teams-secret-22"
DOWN_PATH = "/services/T9/B9/e2e-down-secret-33"
SECRETS = (
    SIGNING,
    "e2e-header-secret-77",
    "e2e-slack-secret-11",
    "e2e-teams-secret-22",
    "e2e-down-secret-33",
)
K6_CROSSES_ITS_THRESHOLD = """
import { check } from 'k6';
export const options = { iterations: 1, thresholds: { checks: ['rate==1'] } };
export default function () { check(1, { 'never true': () => false }); }
"""
FAILS = {"type": "command", "argv": ["false"]}
PASSES = {"type": "command", "argv": ["true"]}


@dataclass
class Mailbox:
    port: int
    received: list[EmailMessage] = field(default_factory=list)


@dataclass
class Cluster:
    processes: Processes
    api: httpx.Client
    answers: list[str]
    receiver: Receiver
    mailbox: Mailbox
    client: redis.Redis
    prefix: str
    project_id: int

    def post(self, path: str, **kwargs: Any) -> Any:
        response = self.api.post(path, **kwargs)
        assert response.status_code in (200, 201, 202, 204), response.text
        return response.json() if response.content else None

    def get(self, path: str) -> Any:
        response = self.api.get(path)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    from aiosmtpd.controller import Controller

    box = Mailbox(free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            parsed = BytesParser(policy=policy.default).parsebytes(envelope.original_content)
            assert isinstance(parsed, EmailMessage)
            box.received.append(parsed)
            return "250 Message accepted for delivery"

    controller = Controller(Handler(), hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture(scope="module")
def cluster(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox
) -> Iterator[Cluster]:
    prefix = f"e2en{uuid.uuid4().hex[:8]}"
    env = {
        "TICKWORK_REDIS_URL": redis_url,
        "TICKWORK_KEY_PREFIX": prefix,
        "TICKWORK_QUEUES": json.dumps([f"{prefix}-runs"]),
        "TICKWORK_LEASE_TTL_SECONDS": "2",
        "TICKWORK_RUN_HEARTBEAT_SECONDS": "0.5",
        "TICKWORK_TOKENS": json.dumps(
            [{"token": TOKEN, "email": "e2e@example.com", "stacks": [1]}]
        ),
        # The receivers are on loopback, which egress refuses unless allowed.
        "TICKWORK_EGRESS_ALLOWED_CIDRS": json.dumps(["127.0.0.0/8"]),
        "TICKWORK_COMMAND_ALLOWED": json.dumps(["false", "true"]),
        "TICKWORK_SMTP_HOST": "127.0.0.1",
        "TICKWORK_SMTP_PORT": str(mailbox.port),
        "TICKWORK_PUBLIC_URL": "https://tickwork.example",
        "TICKWORK_NOTIFY_RETRY_SECONDS": "3",  # a receiver that is down is given up soon
        "TICKWORK_NOTIFY_QUIET_SECONDS": "900",  # not the default (600): seen in a held window
    }
    answers: list[str] = []
    processes = Processes(env, tmp_path_factory.mktemp("notify-e2e"))
    client = redis.Redis.from_url(redis_url)
    try:
        with receiving() as receiver:
            api = processes.api("api")
            scheduler = processes.scheduler("scheduler")
            for name in ("worker-0", "worker-1"):
                processes.worker(name)
            for process in (api, scheduler):
                processes.wait_healthy(process)
            http = httpx.Client(
                base_url=f"http://127.0.0.1:{api.port}/cloud/v6",
                headers={"Authorization": f"Bearer {TOKEN}", "X-Stack-Id": "1"},
                timeout=30,
                event_hooks={"response": [lambda r: answers.append(r.read().decode())]},
            )
            project = http.post("/projects", json={"name": f"notify {prefix}"})
            assert project.status_code == 201, project.text
            runs = Queue(f"{prefix}-runs", connection=client)
            _until(lambda: Worker.count(queue=runs) >= 2, 20, "workers up")
            yield Cluster(
                processes, http, answers, receiver, mailbox, client, prefix, project.json()["id"]
            )
            http.close()
    finally:
        processes.stop_all()
        client.close()
    # Every answer the API gave, and every line every process logged: no secret in any.
    logs = [process.log.read_text() for process in processes.started]
    for secret in SECRETS:
        leaks = [text[:200] for text in [*answers, *logs] if secret in text]
        assert leaks == [], f"{secret!r} appeared in {leaks}"


def _until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _load_test(cluster: Cluster, name: str, runner: dict[str, Any], script: str = "") -> int:
    body = {"name": f"{name} {uuid.uuid4().hex[:6]}", "script": script, "runner": runner}
    return int(cluster.post(f"/projects/{cluster.project_id}/load_tests", json=body)["id"])


def _channel(cluster: Cluster, **body: Any) -> int:
    return int(cluster.post("/notifications/channels", json={"name": "c", **body})["id"])


def _rule(cluster: Cluster, load_test: int, channels: list[int], events: list[str]) -> int:
    body = {"name": "r", "events": events, "channels": channels, "load_test_id": load_test}
    return int(cluster.post("/notifications/rules", json=body)["id"])


def _start(cluster: Cluster, load_test: int) -> int:
    return int(cluster.post(f"/load_tests/{load_test}/start")["id"])


def _ended(cluster: Cluster, run_id: int, timeout_s: float = 60) -> dict[str, Any]:
    run: dict[str, Any] = {}

    def done() -> bool:
        run.update(cluster.get(f"/test_runs/{run_id}"))
        return run["status"] in ("completed", "aborted")

    _until(done, timeout_s, f"run {run_id} to end")
    return run


def _log(cluster: Cluster, run_id: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cluster.get(f"/test_runs/{run_id}/notifications")["value"]
    return found


def _job_done(cluster: Cluster, run_id: int) -> bool:
    status = cluster.client.hget(f"rq:job:notify-run-{run_id}", "status")
    text = status.decode() if isinstance(status, bytes) else status
    return text in ("finished", "failed")


def test_a_failing_scheduled_k6_run_notifies_once_per_channel(cluster: Cluster) -> None:
    receiver = cluster.receiver
    channels = [
        _channel(
            cluster,
            type="webhook",
            url=receiver.url("/k6/hook"),
            secret=SIGNING,
            headers={"Authorization": HEADER_VALUE},
        ),
        _channel(cluster, type="slack", url=receiver.url("/k6" + SLACK_PATH)),
        _channel(cluster, type="teams", url=receiver.url("/k6" + TEAMS_PATH)),
        _channel(cluster, type="email", to=["ops@example.com"]),
    ]
    load_test = _load_test(cluster, "nightly", {"type": "k6"}, script=K6_CROSSES_ITS_THRESHOLD)
    _rule(cluster, load_test, channels, ["run_failed"])
    starts = datetime.now(UTC) + timedelta(seconds=1)
    cluster.post(f"/load_tests/{load_test}/schedule", json={"starts": format_instant(starts)})
    runs: list[dict[str, Any]] = []

    def fired() -> bool:
        runs[:] = cluster.get(f"/load_tests/{load_test}/test_runs")["value"]
        return bool(runs)

    _until(fired, 20, "the schedule to fire")
    run = _ended(cluster, runs[0]["id"])
    assert (run["status"], run["result"]) == ("completed", "failed")
    _until(lambda: _job_done(cluster, run["id"]), 30, "the notify job")

    event_id = f"run-{run['id']}.run_failed"
    (hook,) = receiver.at("/k6/hook")
    assert hook.signed_with(SIGNING)
    assert (hook.header("X-Tickwork-Event-Id"), hook.header("Authorization")) == (
        event_id,
        HEADER_VALUE,
    )
    assert hook.json()["run"]["thresholds_failed"][0]["expression"] == "rate==1"
    assert hook.json()["run"]["url"] == f"https://tickwork.example/cloud/v6/test_runs/{run['id']}"
    assert hook.json()["schedule"]["id"] == run["schedule_id"]
    assert len(receiver.at("/k6" + SLACK_PATH)) == 1
    assert len(receiver.at("/k6" + TEAMS_PATH)) == 1
    mails = [m for m in cluster.mailbox.received if m["X-Tickwork-Event-Id"] == event_id]
    assert len(mails) == 1
    assert "checks rate==1" in mails[0].get_content()
    log = _log(cluster, run["id"])
    assert sorted((d["channel_id"], d["status"], d["attempts"]) for d in log) == [
        (channel, "sent", 1) for channel in sorted(channels)
    ]


def test_a_storm_of_50_failures_within_the_window_sends_one_message_and_a_count(
    cluster: Cluster,
) -> None:
    channel = _channel(cluster, type="slack", url=cluster.receiver.url("/storm"))
    load_test = _load_test(cluster, "storm", FAILS)
    rule = _rule(cluster, load_test, [channel], ["run_failed"])  # the worker's window: 900 s

    run_ids = [_start(cluster, load_test) for _ in range(50)]
    for run_id in run_ids:
        assert _ended(cluster, run_id)["result"] == "failed"

    def all_counted() -> bool:
        held = cluster.get(f"/notifications/rules/{rule}")["held"]
        return [h["count"] for h in held] == [49]

    _until(all_counted, 60, "49 failures held back")
    (message,) = cluster.receiver.at("/storm")
    assert message.json()["text"].startswith('Load test "storm')
    (held,) = cluster.get(f"/notifications/rules/{rule}")["held"]
    assert (held["kind"], held["load_test_id"]) == ("run_failed", load_test)
    # The window is TICKWORK_NOTIFY_QUIET_SECONDS as it reached the worker, from the first
    # failure (at most a minute ago), not the default 600 s.
    quiet_for = parse_instant(held["quiet_until"]) - datetime.now(UTC)
    assert timedelta(seconds=840) < quiet_for <= timedelta(seconds=900), quiet_for
    assert sum(len(_log(cluster, run_id)) for run_id in run_ids) == 1


def test_a_receiver_answering_500_twice_then_200_gets_the_same_event_id_three_times(
    cluster: Cluster,
) -> None:
    cluster.receiver.answer("/flaky", 500, 500)
    channel = _channel(cluster, type="webhook", url=cluster.receiver.url("/flaky"), secret=SIGNING)
    load_test = _load_test(cluster, "flaky receiver", FAILS)
    _rule(cluster, load_test, [channel], ["run_failed"])

    run_id = _start(cluster, load_test)
    _ended(cluster, run_id)
    _until(lambda: _job_done(cluster, run_id), 30, "the notify job")

    attempts = cluster.receiver.at("/flaky")
    assert [a.header("X-Tickwork-Event-Id") for a in attempts] == [f"run-{run_id}.run_failed"] * 3
    assert all(a.signed_with(SIGNING) for a in attempts)
    (delivery,) = _log(cluster, run_id)
    assert (delivery["status"], delivery["attempts"], delivery["answer_status"]) == ("sent", 3, 200)


def test_a_receiver_that_is_down_ends_failed_and_nothing_else_breaks(cluster: Cluster) -> None:
    down = _channel(cluster, type="slack", url=down_url(DOWN_PATH))
    up = _channel(cluster, type="teams", url=cluster.receiver.url("/up"))
    load_test = _load_test(cluster, "down receiver", FAILS)
    _rule(cluster, load_test, [down, up], ["run_failed", "recovered"])

    failed = _start(cluster, load_test)
    _ended(cluster, failed)
    _until(lambda: _job_done(cluster, failed), 60, "the notify job")

    by_channel = {d["channel_id"]: d for d in _log(cluster, failed)}
    assert by_channel[down]["status"] == "failed"
    assert by_channel[down]["attempts"] >= 2  # retried within TICKWORK_NOTIFY_RETRY_SECONDS
    assert "refused" in by_channel[down]["error"].lower()
    assert by_channel[up]["status"] == "sent"
    # Nothing else broke: the next run of the same load test runs, and is told about.
    patched = cluster.api.patch(f"/load_tests/{load_test}", json={"runner": PASSES})
    assert patched.status_code == 204, patched.text
    passed = _start(cluster, load_test)
    assert _ended(cluster, passed)["result"] == "passed"
    _until(lambda: _job_done(cluster, passed), 60, "the notify job")
    recovered = {d["channel_id"]: d["status"] for d in _log(cluster, passed)}
    assert recovered == {down: "failed", up: "sent"}


def test_a_channel_test_reports_the_receivers_answer(cluster: Cluster) -> None:
    cluster.receiver.answer("/tested", 418)
    channel = _channel(cluster, type="webhook", url=cluster.receiver.url("/tested"), secret=SIGNING)

    answer = cluster.api.post(f"/notifications/channels/{channel}/test", params={"wait": 20})

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["status"], body["answer_status"], body["attempts"]) == ("failed", 418, 1)
    assert body["error"] == "the receiver answered 418"
    again = cluster.api.post(f"/notifications/channels/{channel}/test", params={"wait": 20})
    assert (again.json()["status"], again.json()["answer_status"]) == ("sent", 200)


def test_a_schedule_that_expires_is_told_through_the_leader_and_a_worker(cluster: Cluster) -> None:
    channel = _channel(cluster, type="slack", url=cluster.receiver.url("/expired"))
    load_test = _load_test(cluster, "one shot", PASSES)
    _rule(cluster, load_test, [channel], ["schedule_expired"])
    time.sleep(6)  # the leader reads which fire events rules want at most every 5 s
    starts = datetime.now(UTC) + timedelta(seconds=1)
    schedule = cluster.post(
        f"/load_tests/{load_test}/schedule", json={"starts": format_instant(starts)}
    )

    (message,) = cluster.receiver.wait(1, path="/expired")

    assert message.json()["text"].startswith('The schedule of load test "one shot')
    assert (message.header("X-Tickwork-Event-Id") or "").startswith(f"expired-{schedule['id']}-")
    assert cluster.get(f"/schedules/{schedule['id']}")["next_run"] is None
