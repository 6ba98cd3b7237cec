"""Notifications delivered to real receivers on loopback (an HTTP server playing a webhook,
Slack and Teams; aiosmtpd for e-mail), from events recorded where runs end and where the
fire commit skips, on a real Redis; the worker's part runs in this process with a hand-moved
clock (the storm windows are timed by it), or through a real RQ worker (``serve``, burst)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from ipaddress import ip_network
from typing import Any

import pytest
from rq import Queue

from receivers import Receiver, down_url, receiving
from tickwork.core import Interval, Once, Schedule
from tickwork.core.egress import EgressPolicy
from tickwork.core.lifecycle import Outcome, ending_of
from tickwork.scheduler.firing import Firer
from tickwork.scheduler.housekeeping import Housekeeping, RetentionPolicy
from tickwork.scheduler.notices import FireNotices
from tickwork.store import Store
from tickwork.store.notifications import notify_queue_name
from tickwork.store.queue import queue
from tickwork.worker.daemon import serve
from tickwork.worker.executor import WorkerConfig
from tickwork.worker.notify import Notifier, NotifyOptions
from tickwork.worker.reports.mail import SmtpOptions
from tickwork.worker.runners import RunnerOptions

from .api_support import Api, Clock

CHANNELS = "/cloud/v6/notifications/channels"
RULES = "/cloud/v6/notifications/rules"
SECRET = "notify-signing-secret-0123"
SLACK_SECRET = "slack-path-secret-T0B0X9"
LOOPBACK = EgressPolicy(allowed=(ip_network("127.0.0.0/8"),))
PUBLIC = "https://tickwork.example"


def _runners(smtp: SmtpOptions | None = None) -> RunnerOptions:
    return RunnerOptions(egress=LOOPBACK, webhook_secret=None, smtp=smtp, public_url=PUBLIC)


def _notifier(
    store: Store, clock: Clock, *, smtp: SmtpOptions | None = None, retry_s: float = 10.0
) -> Notifier:
    options = NotifyOptions(quiet_s=600, retry_s=retry_s, backoff_first_s=0.05)
    return Notifier(store, _runners(smtp), options, clock=clock)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as state:
        yield state


def _channel(api: Api, body: dict[str, Any]) -> int:
    response = api.post(CHANNELS, json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _rule(api: Api, channels: list[int], events: list[str], **extra: Any) -> int:
    body = {"name": "r", "events": events, "channels": channels, **extra}
    response = api.post(RULES, json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _end(
    api: Api,
    store: Store,
    clock: Clock,
    load_test: int,
    outcome: Outcome = Outcome.FAILED,
    details: dict[str, Any] | None = None,
    took: timedelta = timedelta(seconds=30),
) -> int:
    """A run of the load test, started and ended as a worker ends it (``took`` later on the
    clock); its id."""
    started = api.post(f"/cloud/v6/load_tests/{load_test}/start")
    assert started.status_code == 200, started.text
    run_id = int(started.json()["id"])
    assert store.executions.claim(run_id, worker="w", at=clock.now, lapse_ms=60_000).run
    clock.now += took
    ended = store.executions.finish(
        run_id,
        expect="initializing",
        ending=ending_of(outcome),
        at=clock.now,
        detail="k6 thresholds were crossed" if outcome is Outcome.FAILED else "",
        details=details,
    )
    assert ended is not None
    return run_id


K6_DETAILS = {
    "runner": "k6",
    "summary": {
        "metrics": {
            "http_req_duration": {
                "avg": 120.0,
                "p(95)": 250.5,
                "thresholds": {"p(95)<200": True},
            }
        }
    },
}


def test_a_failed_run_notifies_each_channel_once_with_what_failed(
    api: Api, store: Store, clock: Clock, receiver: Receiver, smtp_server: Any
) -> None:
    hook = _channel(
        api,
        {
            "name": "hook",
            "type": "webhook",
            "url": receiver.url("/hook"),
            "secret": SECRET,
            "headers": {"X-Team": "perf"},
        },
    )
    slack = _channel(api, {"name": "slack", "type": "slack", "url": receiver.url("/slack")})
    teams = _channel(api, {"name": "teams", "type": "teams", "url": receiver.url("/teams")})
    mail = _channel(api, {"name": "mail", "type": "email", "to": ["ops@example.com"]})
    _rule(api, [hook, slack, teams, mail], ["run_failed"])
    _rule(api, [hook], ["run_failed", "run_error"])  # the same channel twice: one message
    load_test = api.load_test(name="checkout")
    run_id = _end(api, store, clock, load_test, details=K6_DETAILS)
    notifier = _notifier(store, clock, smtp=SmtpOptions(smtp_server.host, smtp_server.port))

    sent = notifier.handle(f"run-{run_id}")
    again = notifier.handle(f"run-{run_id}")  # a job delivered twice

    assert sorted(d.channel_id for d in sent) == sorted([hook, slack, teams, mail])
    assert again == []
    (posted,) = receiver.at("/hook")
    event_id = f"run-{run_id}.run_failed"
    assert posted.signed_with(SECRET)
    assert (posted.header("X-Tickwork-Event-Id"), posted.header("X-Team")) == (event_id, "perf")
    body = posted.json()
    assert body["event"]["title"] == 'Load test "checkout" failed: 1 threshold crossed'
    assert body["run"]["url"] == f"{PUBLIC}/cloud/v6/test_runs/{run_id}"
    assert body["run"]["thresholds_failed"][0]["excess"] == 50.5
    (slack_post,) = receiver.at("/slack")
    assert slack_post.json()["text"].startswith('Load test "checkout" failed')
    (teams_post,) = receiver.at("/teams")
    assert teams_post.json()["attachments"][0]["content"]["type"] == "AdaptiveCard"
    (received,) = smtp_server.wait(1)
    assert received.rcpt_tos == ["ops@example.com"]
    assert received.message["Subject"] == 'Load test "checkout" failed: 1 threshold crossed'
    assert received.message["X-Tickwork-Event-Id"] == event_id
    assert (
        "http_req_duration p(95)<200: 250.5, 50.5 past the bound" in received.message.get_content()
    )
    log = api.get(f"/cloud/v6/test_runs/{run_id}/notifications").json()["value"]
    assert sorted((d["channel_id"], d["status"], d["attempts"]) for d in log) == sorted(
        [(hook, "sent", 1), (slack, "sent", 1), (teams, "sent", 1), (mail, "sent", 1)]
    )
    assert {d["answer_status"] for d in log} == {200, 250}


def test_a_storm_sends_one_message_and_the_next_after_the_window_counts_the_rest(
    api: Api, store: Store, clock: Clock, receiver: Receiver
) -> None:
    slack = _channel(api, {"name": "slack", "type": "slack", "url": receiver.url("/slack")})
    rule = _rule(api, [slack], ["run_failed"], quiet_seconds=600)
    load_test = api.load_test(name="flaky")
    notifier = _notifier(store, clock)

    for _ in range(50):  # one every second: all within the window
        notifier.handle(f"run-{_end(api, store, clock, load_test, took=timedelta(seconds=1))}")

    assert len(receiver.at("/slack")) == 1
    held = api.get(f"{RULES}/{rule}").json()["held"]
    assert [(h["kind"], h["load_test_id"], h["count"]) for h in held] == [
        ("run_failed", load_test, 49)
    ]
    clock.now += timedelta(seconds=600)
    last = _end(api, store, clock, load_test)
    notifier.handle(f"run-{last}")

    first, second = receiver.wait(2, path="/slack")
    assert "more since" not in first.json()["text"]
    assert second.json()["text"].endswith("(and 49 more since the last message)")
    assert api.get(f"{RULES}/{rule}").json()["held"] == []
    (delivery,) = api.get(f"/cloud/v6/test_runs/{last}/notifications").json()["value"]
    assert delivery["more"] == 49


def test_storm_windows_are_per_load_test_and_per_kind(
    api: Api, store: Store, clock: Clock, receiver: Receiver
) -> None:
    slack = _channel(api, {"name": "slack", "type": "slack", "url": receiver.url("/slack")})
    _rule(api, [slack], ["run_failed", "run_timed_out"])
    one, two = api.load_test(name="one"), api.load_test(name="two")
    notifier = _notifier(store, clock)

    for load_test, outcome in (
        (one, Outcome.FAILED),
        (two, Outcome.FAILED),
        (one, Outcome.TIMED_OUT),
    ):
        for _ in range(3):
            notifier.handle(f"run-{_end(api, store, clock, load_test, outcome)}")

    titles = sorted(r.json()["text"] for r in receiver.at("/slack"))
    assert titles == [
        'Load test "one" failed',
        'Load test "one" timed out',
        'Load test "two" failed',
    ]


def test_a_receiver_answering_500_twice_gets_the_same_event_id_three_times(
    api: Api, store: Store, clock: Clock, receiver: Receiver
) -> None:
    hook = _channel(
        api, {"name": "hook", "type": "webhook", "url": receiver.url("/hook"), "secret": SECRET}
    )
    _rule(api, [hook], ["run_error"])
    receiver.answer("/hook", 500, 500)
    run_id = _end(api, store, clock, api.load_test(), Outcome.ERROR)

    (delivery,) = _notifier(store, clock).handle(f"run-{run_id}")

    attempts = receiver.at("/hook")
    assert [a.header("X-Tickwork-Event-Id") for a in attempts] == [f"run-{run_id}.run_error"] * 3
    assert [a.header("X-Tickwork-Attempt") for a in attempts] == ["1", "2", "3"]
    assert len({a.body for a in attempts}) == 1  # the same bytes, the same signature
    assert (delivery.status, delivery.attempts, delivery.answer_status) == ("sent", 3, 200)
    (logged,) = api.get(f"{CHANNELS}/{hook}/deliveries").json()["value"]
    assert (logged["status"], logged["attempts"], logged["answer_status"]) == ("sent", 3, 200)


def test_429_is_retried_and_a_404_is_not(
    api: Api, store: Store, clock: Clock, receiver: Receiver
) -> None:
    busy = _channel(api, {"name": "busy", "type": "slack", "url": receiver.url("/busy")})
    gone = _channel(api, {"name": "gone", "type": "teams", "url": receiver.url("/gone")})
    _rule(api, [busy], ["run_failed"])
    _rule(api, [gone], ["run_timed_out"])
    load_test = api.load_test()
    notifier = _notifier(store, clock)

    receiver.answer("/busy", 429)
    (busy_delivery,) = notifier.handle(f"run-{_end(api, store, clock, load_test)}")
    receiver.answer("/gone", 404)
    (gone_delivery,) = notifier.handle(
        f"run-{_end(api, store, clock, load_test, Outcome.TIMED_OUT)}"
    )

    assert (busy_delivery.status, busy_delivery.attempts) == ("sent", 2)
    assert (gone_delivery.status, gone_delivery.attempts, gone_delivery.answer_status) == (
        "failed",
        1,
        404,
    )
    assert gone_delivery.error == "the receiver answered 404"


def test_the_egress_policy_keeps_a_channel_from_a_loopback_receiver_and_nothing_is_sent(
    api: Api, store: Store, clock: Clock, receiver: Receiver
) -> None:
    hook = _channel(api, {"name": "hook", "type": "slack", "url": receiver.url("/hook")})
    _rule(api, [hook], ["run_failed"])
    options = NotifyOptions(quiet_s=600, retry_s=10.0, backoff_first_s=0.05)
    strict = RunnerOptions(egress=EgressPolicy(), webhook_secret=None, smtp=None, public_url=PUBLIC)

    (delivery,) = Notifier(store, strict, options, clock=clock).handle(
        f"run-{_end(api, store, clock, api.load_test())}"
    )

    assert receiver.at("/hook") == []
    assert (delivery.status, delivery.attempts, delivery.answer_status) == ("failed", 1, None)
    assert "egress refused" in (delivery.error or "")
    assert "loopback" in (delivery.error or "")


def test_a_receiver_that_is_down_ends_failed_and_the_other_channels_get_theirs(
    api: Api, store: Store, clock: Clock, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    secret_url = down_url(f"/services/T0/B0/{SLACK_SECRET}")
    down = _channel(api, {"name": "down", "type": "slack", "url": secret_url})
    up = _channel(api, {"name": "up", "type": "slack", "url": receiver.url("/up")})
    _rule(api, [down, up], ["worker_lost"])
    run_id = _end(api, store, clock, api.load_test(), Outcome.WORKER_LOST)
    caplog.set_level(logging.DEBUG)

    started = time.monotonic()
    sent = _notifier(store, clock, retry_s=1.0).handle(f"run-{run_id}")

    assert time.monotonic() - started < 20  # bounded: the retries stop, the job goes on
    by_channel = {d.channel_id: d for d in sent}
    assert by_channel[down].status == "failed"
    assert by_channel[down].attempts >= 2
    assert by_channel[down].answer_status is None
    assert "Connection refused" in (by_channel[down].error or "")
    assert by_channel[up].status == "sent"
    assert len(receiver.at("/up")) == 1
    answered = api.get(f"{CHANNELS}/{down}/deliveries").text + api.get(f"{CHANNELS}/{down}").text
    for text in (answered, caplog.text, by_channel[down].error or ""):
        assert SLACK_SECRET not in text


def test_n_consecutive_failures_notify_once_and_the_first_pass_after_them_says_recovered(
    api: Api, store: Store, clock: Clock, receiver: Receiver
) -> None:
    slack = _channel(api, {"name": "slack", "type": "slack", "url": receiver.url("/slack")})
    _rule(api, [slack], ["consecutive_failures", "recovered"], consecutive_failures=3)
    load_test = api.load_test(name="nightly")
    notifier = _notifier(store, clock)

    for outcome in (
        Outcome.PASSED,
        Outcome.FAILED,
        Outcome.ERROR,
        Outcome.TIMED_OUT,  # the third in a row
        Outcome.FAILED,  # the fourth: not N again
        Outcome.PASSED,  # recovered
        Outcome.PASSED,
    ):
        notifier.handle(f"run-{_end(api, store, clock, load_test, outcome)}")

    assert [r.json()["text"] for r in receiver.at("/slack")] == [
        'Load test "nightly" failed 3 times in a row',
        'Load test "nightly" passed again after 4 failures',
    ]


def test_a_rule_for_one_load_test_or_one_project_leaves_the_others_alone(
    api: Api, store: Store, clock: Clock, receiver: Receiver
) -> None:
    slack = _channel(api, {"name": "slack", "type": "slack", "url": receiver.url("/slack")})
    project, other_project = api.project(), api.project()
    watched = api.load_test(project, name="watched")
    sibling = api.load_test(project, name="sibling")
    elsewhere = api.load_test(other_project, name="elsewhere")
    _rule(api, [slack], ["run_failed"], load_test_id=watched)
    _rule(api, [slack], ["run_error"], project_id=project)
    notifier = _notifier(store, clock)

    for load_test in (watched, sibling, elsewhere):
        for outcome in (Outcome.FAILED, Outcome.ERROR):
            notifier.handle(f"run-{_end(api, store, clock, load_test, outcome)}")

    assert sorted(r.json()["text"] for r in receiver.at("/slack")) == [
        'Load test "sibling" ended in error',
        'Load test "watched" ended in error',
        'Load test "watched" failed',
    ]


def test_a_user_template_shapes_the_webhook_body(
    api: Api, store: Store, clock: Clock, receiver: Receiver
) -> None:
    template = '{"alert": "${event.title}", "run": ${run.id}, "link": "${run.url}"}'
    hook = _channel(
        api,
        {
            "name": "hook",
            "type": "webhook",
            "url": receiver.url("/hook"),
            "secret": SECRET,
            "template": template,
        },
    )
    _rule(api, [hook], ["run_aborted"])
    run_id = _end(api, store, clock, api.load_test(name='a "quoted" name'), Outcome.ABORTED_BY_USER)

    _notifier(store, clock).handle(f"run-{run_id}")

    (posted,) = receiver.at("/hook")
    assert posted.json() == {
        "alert": 'Load test "a "quoted" name" was aborted',
        "run": run_id,
        "link": f"{PUBLIC}/cloud/v6/test_runs/{run_id}",
    }


def _fire(store: Store, clock: Clock, firer: Firer) -> Any:
    lease = store.leases.acquire("scheduler", "me", 60_000)
    assert lease is not None
    return firer.fire_due(lease)


def _job_event(store: Store) -> str:
    """The event id of the notify job the leader queued last."""
    notify = Queue(notify_queue_name(store.prefix), connection=store.rq_connection)
    (job_id,) = notify.job_ids[-1:]
    return job_id.removeprefix("notify-")


def test_skipped_occurrences_and_an_expired_schedule_notify_from_the_fire_commit(
    api: Api, store: Store, clock: Clock, receiver: Receiver
) -> None:
    slack = _channel(api, {"name": "slack", "type": "slack", "url": receiver.url("/slack")})
    _rule(api, [slack], ["occurrence_skipped", "schedule_expired"], skip_reasons=["overlap"])
    load_test = api.load_test(name="hourly")
    once_test = api.load_test(name="once")
    firer = Firer(
        store,
        queue(store.rq_connection, f"{store.prefix}-runs"),
        clock=clock,
        catch_up=timedelta(minutes=5),
    )
    notices = FireNotices(store, clock=clock)
    store.schedules.put(
        stack=1,
        load_test_id=load_test,
        schedule=Schedule(clock.now + timedelta(seconds=1), Interval(timedelta(minutes=1))),
        request="{}",
        created_by=None,
        now=clock.now,
    )
    store.schedules.put(
        stack=1,
        load_test_id=once_test,
        schedule=Schedule(clock.now + timedelta(seconds=1), Once()),
        request="{}",
        created_by=None,
        now=clock.now,
    )
    notifier = _notifier(store, clock)

    clock.now += timedelta(seconds=2)
    fired = _fire(store, clock, firer)  # both fire; neither run ends
    notices.after_batch(fired)
    notifier.handle(_job_event(store))
    clock.now += timedelta(minutes=1)
    skipped = _fire(store, clock, firer)  # the hourly one's run is still going: overlap
    notices.after_batch(skipped)
    notifier.handle(_job_event(store))

    assert skipped.skipped == {"overlap": 1}
    texts = [r.json()["text"] for r in receiver.at("/slack")]
    assert texts == [
        'The schedule of load test "once" has ended: no occurrence remains',
        'An occurrence of load test "hourly" was skipped (overlap)',
    ]


def test_without_a_rule_naming_fire_events_the_leader_queues_nothing(
    api: Api, store: Store, clock: Clock, receiver: Receiver
) -> None:
    slack = _channel(api, {"name": "slack", "type": "slack", "url": receiver.url("/slack")})
    _rule(api, [slack], ["run_failed"])  # a rule, but of run endings only
    load_test = api.load_test()
    firer = Firer(
        store,
        queue(store.rq_connection, f"{store.prefix}-runs"),
        clock=clock,
        catch_up=timedelta(minutes=5),
    )
    store.schedules.put(
        stack=1,
        load_test_id=load_test,
        schedule=Schedule(clock.now + timedelta(seconds=1), Once()),
        request="{}",
        created_by=None,
        now=clock.now,
    )
    clock.now += timedelta(seconds=2)

    FireNotices(store, clock=clock).after_batch(_fire(store, clock, firer))

    assert Queue(notify_queue_name(store.prefix), connection=store.rq_connection).count == 0


def test_a_channel_test_is_sent_by_a_worker_and_answers_the_receivers_reply(
    api: Api, store: Store, clock: Clock, receiver: Receiver
) -> None:
    hook = _channel(
        api, {"name": "hook", "type": "webhook", "url": receiver.url("/hook"), "secret": SECRET}
    )
    down = _channel(api, {"name": "down", "type": "slack", "url": down_url()})

    queued = api.post(f"{CHANNELS}/{hook}/test", params={"wait": 0})
    refused = api.post(f"{CHANNELS}/{down}/test", params={"wait": 0})
    assert (queued.status_code, queued.json()["status"]) == (202, "queued")
    assert refused.status_code == 202
    # A real worker, in burst: the job guard lets notify through; loopback is allowed.
    serve(
        store,
        queue_names=[notify_queue_name(store.prefix)],
        config=WorkerConfig(runners=_runners(), heartbeat_s=0.5),
        burst=True,
        notify=NotifyOptions(retry_s=1, backoff_first_s=0.05),
    )

    (posted,) = receiver.at("/hook")
    assert posted.json()["event"]["title"].startswith("Test notification from tickwork")
    assert posted.signed_with(SECRET)
    (sent,) = api.get(f"{CHANNELS}/{hook}/deliveries").json()["value"]
    assert (sent["status"], sent["attempts"], sent["answer_status"], sent["response"]) == (
        "sent",
        1,
        200,
        "ok",
    )
    (failed,) = api.get(f"{CHANNELS}/{down}/deliveries").json()["value"]
    assert (failed["status"], failed["attempts"]) == ("failed", 1)  # a test: one attempt


def test_the_test_action_waits_for_the_workers_answer(
    api: Api, store: Store, clock: Clock, receiver: Receiver
) -> None:
    hook = _channel(
        api, {"name": "hook", "type": "webhook", "url": receiver.url("/hook"), "secret": SECRET}
    )
    receiver.answer("/hook", 503)
    stop = threading.Event()

    def work() -> None:  # a worker's loop, in a thread: the notify job's own function
        notify = Queue(notify_queue_name(store.prefix), connection=store.rq_connection)
        while not stop.is_set():
            for job_id in notify.job_ids:
                notify.remove(job_id)
                _notifier(store, clock).handle(job_id.removeprefix("notify-"))
            time.sleep(0.02)

    thread = threading.Thread(target=work)
    thread.start()
    try:
        answer = api.post(f"{CHANNELS}/{hook}/test", params={"wait": 20})
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["status"], body["answer_status"], body["response"]) == ("failed", 503, "not now")
    assert body["error"] == "the receiver answered 503"


def test_retention_removes_old_deliveries_from_every_log(
    api: Api, store: Store, clock: Clock, receiver: Receiver
) -> None:
    slack = _channel(api, {"name": "slack", "type": "slack", "url": receiver.url("/slack")})
    _rule(api, [slack], ["run_failed"], quiet_seconds=0)
    load_test = api.load_test()
    notifier = _notifier(store, clock)
    old = _end(api, store, clock, load_test)
    notifier.handle(f"run-{old}")
    clock.now += timedelta(days=31)
    new = _end(api, store, clock, load_test)
    notifier.handle(f"run-{new}")

    removed = store.notifications.sweep(before=clock.now - timedelta(days=30), limit=100)

    assert removed == 1
    log = api.get(f"{CHANNELS}/{slack}/deliveries").json()["value"]
    assert [d["run_id"] for d in log] == [new]
    assert api.get(f"/cloud/v6/test_runs/{old}/notifications").json()["value"] == []
    assert store.client.exists(store.keys.notify_run_deliveries(old)) == 0


def test_the_leaders_housekeeping_removes_deliveries_past_their_retention(
    api: Api, store: Store, clock: Clock, receiver: Receiver
) -> None:
    slack = _channel(api, {"name": "slack", "type": "slack", "url": receiver.url("/slack")})
    _rule(api, [slack], ["run_failed"], quiet_seconds=0)
    load_test = api.load_test()
    notifier = _notifier(store, clock)
    for _ in range(3):
        notifier.handle(f"run-{_end(api, store, clock, load_test)}")
    clock.now += timedelta(days=8)
    keeper = Housekeeping(
        store, RetentionPolicy(notification_retention=timedelta(days=7)), clock=clock
    )
    kept = Housekeeping(store, RetentionPolicy(notification_retention=None), clock=clock)

    kept.step()
    assert len(api.get(f"{CHANNELS}/{slack}/deliveries").json()["value"]) == 3
    keeper.step()

    assert api.get(f"{CHANNELS}/{slack}/deliveries").json()["value"] == []
