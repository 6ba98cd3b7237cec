"""Kragle jobs and report schedules fired by the one scheduler's fire path (a hand-moved
clock, a real Redis) and run by the worker's own execution, as every other schedule is.

Reports are sent to a real SMTP server (aiosmtpd) and to a local HTTP receiver; the tests
read what arrived.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from rq import Queue

from tickwork.core.egress import EgressPolicy
from tickwork.core.instants import format_instant
from tickwork.scheduler.firing import Firer
from tickwork.store import Lease, RunRecord, StatusEntry, Store
from tickwork.store.queue import fire_job_id, queue
from tickwork.worker.executor import WorkerConfig, execute
from tickwork.worker.reports.mail import SmtpOptions
from tickwork.worker.runners import RunnerOptions

from .api_support import T0, Api, Clock

Inbox = Any  # tests/conftest.py's smtp_server: host, port, and wait() for what arrived
SECRET = "report-webhook-secret-0123"
LOOPBACK = EgressPolicy.from_settings(allow_private=False, allowed_cidrs=["127.0.0.0/8"])
MIDNIGHT_ROME = T0.replace(hour=23)  # 2026-11-24T00:00 in Europe/Rome (CET)


@pytest.fixture
def rq_queue(store: Store) -> Queue:
    return queue(store.client, f"{store.keys.prefix}-runs")  # the app's queue


@pytest.fixture
def firer(store: Store, rq_queue: Queue, clock: Clock) -> Firer:
    return Firer(store, rq_queue, clock=clock, catch_up=timedelta(minutes=5))


@pytest.fixture
def lease(store: Store) -> Lease:
    lease = store.leases.acquire("scheduler", "test", 600_000)
    assert lease is not None
    return lease


def _config(**runners: Any) -> WorkerConfig:
    return WorkerConfig(
        # The webhook receivers are on loopback, which egress refuses unless allowed.
        runners=RunnerOptions(command_allowed=("sh",), egress=LOOPBACK, **runners),
        heartbeat_s=0.2,
        abort_poll_s=0.05,
        name="worker-test",
    )


def _fire_at(clock: Clock, firer: Firer, lease: Lease, at: datetime) -> list[tuple[int, datetime]]:
    clock.now = at + timedelta(milliseconds=5)
    return firer.fire_due(lease).fired


# Kragle jobs


def _template(api: Api, config: dict[str, int]) -> int:
    response = api.post("/kragle/schedules", json={"config": config})
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def _bind(api: Api, template: int, load_test: int) -> int:
    response = api.post("/kragle/jobs", json={"schedule_id": template, "load_test_id": load_test})
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def _sh(api: Api, code: str) -> int:
    project = api.project()
    response = api.post(
        f"/cloud/v6/projects/{project}/load_tests",
        json={"name": f"sh {code}", "runner": {"type": "command", "argv": ["sh", "-c", code]}},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_a_kragle_job_fires_its_load_test_on_the_schedules_timing(
    api: Api, store: Store, clock: Clock, firer: Firer, lease: Lease, rq_queue: Queue
) -> None:
    load_test = _sh(api, "exit 0")
    job = _bind(api, _template(api, {"period": 600}), load_test)
    first = T0 + timedelta(seconds=600)

    assert _fire_at(clock, firer, lease, first - timedelta(seconds=1)) == []
    ((run_id, occurrence),) = _fire_at(clock, firer, lease, first)

    assert occurrence == first
    run = api.get(f"/cloud/v6/test_runs/{run_id}").json()
    assert (run["test_id"], run["schedule_id"], run["status"]) == (load_test, job, "created")
    assert run["scheduled_for"] == format_instant(first)
    assert rq_queue.job_ids == [fire_job_id(job, first)]
    assert api.get(f"/kragle/jobs/byid/{job}").json()["next_run"] == format_instant(
        first + timedelta(seconds=600)
    )
    ended = execute(store, run_id, _config())  # the worker, unchanged
    assert ended is not None
    assert (ended.status, ended.result) == ("completed", "passed")


def test_every_job_of_a_schedule_fires_once_per_occurrence(
    api: Api, clock: Clock, firer: Firer, lease: Lease
) -> None:
    template = _template(api, {"period": 60})
    jobs = {_bind(api, template, api.load_test()) for _ in range(3)}

    fired = _fire_at(clock, firer, lease, T0 + timedelta(seconds=60))
    again = firer.fire_due(lease).fired

    runs = [api.get(f"/cloud/v6/test_runs/{run_id}").json() for run_id, _ in fired]
    assert {run["schedule_id"] for run in runs} == jobs
    assert again == []


def test_a_changed_schedule_fires_its_jobs_on_the_new_timing_only(
    api: Api, store: Store, clock: Clock, firer: Firer, lease: Lease
) -> None:
    template = _template(api, {"period": 3600})
    job = _bind(api, template, _sh(api, "exit 0"))
    clock.now = T0 + timedelta(minutes=10)
    api.put("/kragle/schedules/", json={"id": template, "config": {"period": 60}})

    early = _fire_at(clock, firer, lease, T0 + timedelta(minutes=10, seconds=30))
    first = _fire_at(clock, firer, lease, T0 + timedelta(minutes=11))
    execute(store, first[0][0], _config())  # finished: the next one is not an overlap
    second = _fire_at(clock, firer, lease, T0 + timedelta(minutes=12))

    assert early == []
    assert [at for _, at in first + second] == [
        T0 + timedelta(minutes=11),
        T0 + timedelta(minutes=12),
    ]
    runs = [api.get(f"/cloud/v6/test_runs/{run_id}").json() for run_id, _ in first + second]
    assert {run["schedule_id"] for run in runs} == {job}


def test_a_deleted_schedule_fires_nothing_more(
    api: Api, store: Store, clock: Clock, firer: Firer, lease: Lease
) -> None:
    template = _template(api, {"period": 60})
    load_test = api.load_test()
    _bind(api, template, load_test)
    assert len(_fire_at(clock, firer, lease, T0 + timedelta(seconds=60))) == 1

    api.delete(f"/kragle/schedules/byid/{template}")

    assert _fire_at(clock, firer, lease, T0 + timedelta(hours=5)) == []
    assert len(api.get(f"/cloud/v6/load_tests/{load_test}/test_runs").json()["value"]) == 1
    assert store.client.zcard(store.keys.due) == 0


def test_a_job_and_the_k6_schedule_of_one_load_test_both_fire_it(
    api: Api, clock: Clock, firer: Firer, lease: Lease
) -> None:
    load_test = api.load_test()
    k6 = api.schedule(load_test, {"starts": format_instant(T0 + timedelta(seconds=30))})
    job = _bind(api, _template(api, {"period": 30}), load_test)

    fired = _fire_at(clock, firer, lease, T0 + timedelta(seconds=30))

    schedules = {api.get(f"/cloud/v6/test_runs/{r}").json()["schedule_id"] for r, _ in fired}
    assert schedules == {k6["id"], job}


# Reports


@dataclass
class World:
    """A stack with three load tests and runs around 2026-11-23 (Rome): what a daily report
    fired at the end of that day covers, and what it must leave out."""

    checkout: int
    search: int
    admin: int
    runs: dict[str, int] = field(default_factory=dict)


def _run(
    store: Store,
    load_test: int,
    created: datetime,
    status: str,
    *,
    result: str | None = None,
    message: str | None = None,
    reason: str | None = None,
    p95: float | None = None,
) -> int:
    run_id = store.runs.new_id()
    details: dict[str, Any] = {}
    if reason:
        details["reason"] = reason
    if p95 is not None:
        details["summary"] = {"metrics": {"http_req_duration": {"avg": 1.0, "p(95)": p95}}}
    store.runs.create(
        RunRecord(
            id=run_id,
            stack=1,
            load_test_id=load_test,
            project_id=1,
            created=created,
            status=status,
            status_history=(
                StatusEntry("created", created),
                StatusEntry(status, created + timedelta(minutes=1), message=message),
            ),
            result=result,
            ended=created + timedelta(minutes=1) if status != "running" else None,
            details=details,
        )
    )
    return run_id


@pytest.fixture
def world(api: Api, store: Store) -> World:
    project = api.project("shop")

    def test(name: str, target: str) -> int:
        response = api.post(
            f"/cloud/v6/projects/{project}/load_tests",
            json={"name": name, "script": "x", "runner": {"type": "k6", "env": {"T": target}}},
        )
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    w = World(
        checkout=test("checkout", "https://www.service-test-host.it/cart"),
        search=test("search", "https://search.internal/"),
        admin=test("admin", "https://admin.internal/"),
    )
    w.runs["passed"] = _run(
        store, w.checkout, T0 - timedelta(hours=2), "completed", result="passed", p95=120.5
    )
    w.runs["failed"] = _run(
        store,
        w.checkout,
        T0 - timedelta(hours=1),
        "completed",
        result="failed",
        message="failed: k6 thresholds were crossed",
        reason="failed",
        p95=834.31,
    )
    w.runs["timed_out"] = _run(
        store,
        w.search,
        T0 + timedelta(hours=1),
        "aborted",
        result="error",
        message="timed_out: k6 ran longer than the 60 s limit",
        reason="timed_out",
    )
    w.runs["skipped"] = _run(store, w.search, T0, "skipped", message="occurrence skipped: overlap")
    w.runs["day_before"] = _run(
        store, w.checkout, T0 - timedelta(days=2), "completed", result="failed"
    )
    w.runs["unrelated"] = _run(store, w.admin, T0, "completed", result="failed")
    return w


def _report(api: Api, **attrs: Any) -> dict[str, Any]:
    body = {
        "name": "nightly",
        "schedule": "daily",
        "timezone": "Europe/Rome",
        "hosts": ["www.service-test-host.it"],
        "services": ["search"],
        "send_via": "email",
        "send_to": ["perf@example.com", "oncall@example.com"],
    } | attrs
    response = api.post("/api/v1/reports/schedules", json={"attrs": body})
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()["data"]["schedule"]
    return report


def _fire_report(clock: Clock, firer: Firer, lease: Lease, at: datetime = MIDNIGHT_ROME) -> int:
    fired = _fire_at(clock, firer, lease, at)
    assert [occurrence for _, occurrence in fired] == [at]
    return fired[0][0]


def _smtp(inbox: Inbox) -> SmtpOptions:
    return SmtpOptions(inbox.host, inbox.port, sender="tickwork@example.com")


def test_a_daily_report_is_fired_at_midnight_and_mailed_as_a_digest(
    api: Api,
    store: Store,
    clock: Clock,
    firer: Firer,
    lease: Lease,
    world: World,
    smtp_server: Inbox,
) -> None:
    report = _report(api)
    run_id = _fire_report(clock, firer, lease)

    ended = execute(
        store, run_id, _config(smtp=_smtp(smtp_server), public_url="https://tickwork.example")
    )

    assert ended is not None
    assert (ended.status, ended.result) == ("completed", "passed"), ended.status_history
    (mail,) = smtp_server.wait(1)
    message = mail.message
    assert mail.mail_from == "tickwork@example.com"
    assert mail.rcpt_tos == ["perf@example.com", "oncall@example.com"]
    assert message["To"] == "perf@example.com, oncall@example.com"
    assert message["Subject"] == "[tickwork] nightly: 1/4 passed, 2 failed (daily, 2026-11-23)"
    body = message.get_content().replace("\r\n", "\n")
    link = "https://tickwork.example/cloud/v6/test_runs/{}".format
    r = world.runs
    assert "Period: 2026-11-23 00:00 to 2026-11-24 00:00 (2026-11-23)" in body
    assert "Runs: 4   passed: 1   failed: 2   skipped: 1   unfinished: 0" in body
    assert f"Slowest p95: 834.3 ms (checkout, run {r['failed']}) {link(r['failed'])}" in body
    assert (
        "  checkout: runs 2, passed 1, failed 1, skipped 0, unfinished 0, slowest p95 834.3 ms"
        in body
    )
    assert "  search: runs 2, passed 0, failed 1, skipped 1, unfinished 0, slowest p95 -" in body
    failures = body.split("Failures (newest first):\n", 1)[1].splitlines()
    assert failures[:4] == [
        f"  run {r['timed_out']}, search, 2026-11-23 14:00: "
        "timed_out: k6 ran longer than the 60 s limit",
        f"    {link(r['timed_out'])}",
        f"  run {r['failed']}, checkout, 2026-11-23 12:00: failed: k6 thresholds were crossed",
        f"    {link(r['failed'])}",
    ]
    for left_out in ("day_before", "unrelated", "passed", "skipped"):
        assert f"run {r[left_out]}," not in body
    assert report["id"] in body

    # the run is recorded like any other, and the report says when it last ran
    run = api.get(f"/cloud/v6/test_runs/{run_id}").json()
    assert (run["status"], run["result"]) == ("completed", "passed")
    assert run["scheduled_for"] == format_instant(MIDNIGHT_ROME)
    assert run["schedule_id"] == store.reports.get(1, report["id"]).schedule_id
    details = store.runs.get(1, run_id).details
    assert details["totals"] == {
        "runs": 4,
        "passed": 1,
        "failed": 2,
        "skipped": 1,
        "unfinished": 0,
        "slowest_p95": {
            "p95_ms": 834.31,
            "run_id": r["failed"],
            "load_test": "checkout",
            "link": link(r["failed"]),
        },
    }
    assert details["window"] == {"start": "2026-11-22T23:00:00Z", "end": "2026-11-23T23:00:00Z"}
    schedule = api.get(f"/api/v1/reports/schedules/{report['id']}").json()["data"]["schedule"]
    assert isinstance(schedule["start_timestamp"], int)
    assert schedule["start_timestamp"] == schedule["end_timestamp"]  # the first and last run


def test_services_may_name_a_project(
    api: Api,
    store: Store,
    clock: Clock,
    firer: Firer,
    lease: Lease,
    world: World,
    smtp_server: Inbox,
) -> None:
    _report(api, hosts=None, services=["shop"])
    run_id = _fire_report(clock, firer, lease)

    execute(store, run_id, _config(smtp=_smtp(smtp_server)))

    (mail,) = smtp_server.wait(1)
    assert "Runs: 5 " in mail.message.get_content()  # every load test of the project
    assert "/cloud/v6/test_runs/" in mail.message.get_content()  # links are paths without a base


def test_a_refused_recipient_fails_the_report_run(
    api: Api,
    store: Store,
    clock: Clock,
    firer: Firer,
    lease: Lease,
    world: World,
    smtp_server: Inbox,
) -> None:
    _report(api, send_to=["perf@example.com", "refused@example.com"])
    run_id = _fire_report(clock, firer, lease)

    ended = execute(store, run_id, _config(smtp=_smtp(smtp_server)))

    assert ended is not None
    assert (ended.status, ended.result) == ("completed", "failed")
    assert ended.status_history[-1].message == (
        "failed: refused by the SMTP server for refused@example.com"
    )
    assert ended.details["refused"] == {"refused@example.com": "550 5.1.1 no such mailbox"}
    (mail,) = smtp_server.wait(1)
    assert mail.rcpt_tos == ["perf@example.com"]


def test_without_an_smtp_server_the_report_run_ends_in_error(
    api: Api, store: Store, clock: Clock, firer: Firer, lease: Lease, world: World
) -> None:
    _report(api)
    run_id = _fire_report(clock, firer, lease)

    ended = execute(store, run_id, _config())

    assert ended is not None
    assert (ended.status, ended.result) == ("completed", "error")
    assert "TICKWORK_SMTP_URL" in (ended.status_history[-1].message or "")


def test_an_unreachable_smtp_server_ends_the_run_in_error(
    api: Api, store: Store, clock: Clock, firer: Firer, lease: Lease, world: World
) -> None:
    _report(api)
    run_id = _fire_report(clock, firer, lease)

    ended = execute(store, run_id, _config(smtp=SmtpOptions("127.0.0.1", 9, sender="t@x.y")))

    assert ended is not None
    assert ended.result == "error"
    assert "could not be mailed" in (ended.status_history[-1].message or "")


def test_a_report_deleted_before_its_run_ends_it_in_error(
    api: Api, store: Store, clock: Clock, firer: Firer, lease: Lease, world: World
) -> None:
    report = _report(api)
    run_id = _fire_report(clock, firer, lease)
    api.request("DELETE", "/api/v1/reports/registries", json={"schedules_ids": [report["id"]]})

    ended = execute(store, run_id, _config())

    assert ended is not None
    assert ended.result == "error"
    assert api.get(f"/cloud/v6/test_runs/{run_id}").status_code == 200  # its run stays


def test_a_weekly_report_covers_the_week_before_its_monday(
    api: Api,
    store: Store,
    clock: Clock,
    firer: Firer,
    lease: Lease,
    world: World,
    smtp_server: Inbox,
) -> None:
    _report(api, schedule="weekly", timezone="UTC")
    monday = T0.replace(day=30, hour=0)
    run_id = _fire_report(clock, firer, lease, monday)

    execute(store, run_id, _config(smtp=_smtp(smtp_server)))

    (mail,) = smtp_server.wait(1)
    assert mail.message["Subject"].endswith("(weekly, 2026-11-23 to 2026-11-29)")
    assert "Runs: 4 " in mail.message.get_content()  # the day before is in another week


@dataclass
class Receiver:
    url: str
    posts: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            state.posts.append(
                {
                    "path": self.path,
                    "signed": self.headers["X-Tickwork-Signature-256"] == f"sha256={mac}",
                    "body": json.loads(body),
                }
            )
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the webhook receiver's server thread did not stop"


def test_a_webhook_report_posts_the_digest_as_signed_json(
    api: Api,
    store: Store,
    clock: Clock,
    firer: Firer,
    lease: Lease,
    world: World,
    receiver: Receiver,
) -> None:
    report = _report(api, send_via="webhook", send_to=[f"{receiver.url}/a", f"{receiver.url}/b"])
    run_id = _fire_report(clock, firer, lease)

    ended = execute(store, run_id, _config(webhook_secret=SECRET))

    assert ended is not None
    assert (ended.status, ended.result) == ("completed", "passed")
    assert [(p["path"], p["signed"]) for p in receiver.posts] == [("/a", True), ("/b", True)]
    body = receiver.posts[0]["body"]
    assert body == receiver.posts[1]["body"]
    assert (body["event"], body["report_id"], body["run_id"]) == ("report", report["id"], run_id)
    assert body["window"] == {"start": "2026-11-22T23:00:00Z", "end": "2026-11-23T23:00:00Z"}
    assert body["totals"]["runs"] == 4
    assert [f["run_id"] for f in body["failures"]] == [
        world.runs["timed_out"],
        world.runs["failed"],
    ]
    assert [t["name"] for t in body["load_tests"]] == ["checkout", "search"]


def test_a_webhook_that_refuses_fails_the_run(
    api: Api,
    store: Store,
    clock: Clock,
    firer: Firer,
    lease: Lease,
    world: World,
    receiver: Receiver,
) -> None:
    receiver.status = 404
    _report(api, send_via="webhook", send_to=[f"{receiver.url}/gone"])
    run_id = _fire_report(clock, firer, lease)

    ended = execute(store, run_id, _config(webhook_secret=SECRET))

    assert ended is not None
    assert ended.result == "failed"
    assert len(receiver.posts) == 1  # a 4xx is an answer: not retried


def test_webhook_reports_need_the_signing_secret(
    api: Api, store: Store, clock: Clock, firer: Firer, lease: Lease, world: World
) -> None:
    _report(api, send_via="webhook", send_to=["http://127.0.0.1:9/hook"])
    run_id = _fire_report(clock, firer, lease)

    ended = execute(store, run_id, _config())

    assert ended is not None
    assert ended.result == "error"
    assert "TICKWORK_WEBHOOK_SECRET" in (ended.status_history[-1].message or "")
