"""The notify job's work: from an event to the messages it sends, and the log of each.

    event (store) ── run ended ──> its kinds: the ending (run_failed, ...), the failure
                  │                streak reaching a rule's N, recovered
                  ├─ fires ──────> the batch's skipped records (one event per load test and
                  │                reason) and its schedules that have no occurrence left
                  └─ test ───────> the sample message, to one channel, one attempt
    for each kind: the stack's rules that cover the load test and name it; each rule's
    storm window decides send or hold (store, once per event and rule); each channel of
    the rules that send gets one delivery (claimed once: sent, failed, or being sent).

Runs of a report schedule's internal load test notify nobody: they are not a user's test.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tickwork import __version__, egress
from tickwork.core.instants import parse_instant, to_us
from tickwork.core.k6_summary import run_results
from tickwork.core.lifecycle import Status
from tickwork.core.notice_messages import http_body, mail_parts
from tickwork.core.notices import (
    FIRE_KINDS,
    Channel,
    ChannelType,
    EventKind,
    Notice,
    NoticeRun,
    NoticeSkip,
    Rule,
    Streak,
    ending_kind,
    run_link,
    sample_notice,
    streak,
)
from tickwork.core.runs import RunRecord
from tickwork.errors import NotFound
from tickwork.store import LoadTestRecord, Store
from tickwork.store.notifications import Delivery
from tickwork.worker.notify_send import Attempt, mail_once, post_once, with_retries
from tickwork.worker.reports import mail
from tickwork.worker.reports.mail import SmtpOptions
from tickwork.worker.runners.base import RunnerOptions
from tickwork.worker.runners.webhook import SIGNATURE_HEADER, signature

log = logging.getLogger("tickwork.worker")

Clock = Callable[[], datetime]
STREAK_RUNS = 200
"""Runs read back to count a failure streak (a longer one counts as this many)."""
SCAN_RUNS = 500
"""Runs of one load test a fires event looks at (a batch creates a handful per load test)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifyOptions:
    """The workers' notification settings; plain values, built by the CLI from Settings."""

    quiet_s: float = 600.0  # a rule's storm window unless it names its own
    retry_s: float = 60.0  # how long one delivery is retried
    backoff_first_s: float = 0.5
    attempt_timeout_s: float = 10.0

    @property
    def stale_after(self) -> timedelta:
        """A delivery ``sending`` untouched this long lost its worker: it may be taken over."""
        return timedelta(seconds=self.retry_s + self.attempt_timeout_s + 60)


class _Unsendable(Exception):
    """The message cannot be built for this channel (said in the delivery's error)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Notifier:
    def __init__(
        self,
        store: Store,
        runners: RunnerOptions,
        options: NotifyOptions,
        *,
        clock: Clock = _utcnow,
        resolve: egress.Resolver = egress.system_resolver,
        wait: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._notifications = store.notifications
        self._runners = runners
        self._options = options
        self._clock = clock
        self._resolve = resolve
        self._wait = wait

    def handle(self, event_id: str) -> list[Delivery]:
        """Send what the event calls for; the deliveries this call made."""
        event = self._notifications.event(event_id)
        if event is None:
            log.warning("notify_event_missing", extra={"event_id": event_id})
            return []
        source = event.get("source")
        if source == "run":
            return self._run_ended(event_id, int(event["run_id"]))
        if source == "fires":
            return self._fires(event)
        if source == "test":
            return self._test(event_id, int(event["stack"]), int(event["channel_id"]))
        log.error("notify_event_unknown", extra={"event_id": event_id, "source": source})
        return []

    # Events

    def _run_ended(self, event_id: str, run_id: int) -> list[Delivery]:
        run = self._store.runs.get_any(run_id)
        if run is None or not run.finished:
            return []
        test = self._load_test(run.stack, run.load_test_id)
        rules = self._rules(run.stack, test)
        if test is None or not rules:
            return []
        reason = run.details.get("reason")
        primary = ending_kind(run.status, run.result, reason if isinstance(reason, str) else None)
        counted = Streak(0, 0)
        if any(
            kind in rule.events
            for rule in rules
            for kind in (EventKind.CONSECUTIVE_FAILURES, EventKind.RECOVERED)
        ):
            counted = streak(self._notifications.outcomes_through(run, limit=STREAK_RUNS))
        base = self._run_notice(event_id, run, test)
        done = []
        if primary is not None:
            done += self._dispatch(
                replace(base, event_id=f"{event_id}.{primary}", kind=primary.value), rules
            )
        if counted.failures:
            kind = EventKind.CONSECUTIVE_FAILURES.value
            notice = replace(
                base, event_id=f"{event_id}.{kind}", kind=kind, failures=counted.failures
            )
            done += self._dispatch(notice, rules, streak=counted.failures)
        if counted.recovered:
            kind = EventKind.RECOVERED.value
            notice = replace(
                base, event_id=f"{event_id}.{kind}", kind=kind, failures=counted.before
            )
            done += self._dispatch(notice, rules)
        return done

    def _fires(self, event: dict[str, Any]) -> list[Delivery]:
        since_us, until_us = int(event["since_us"]), int(event["until_us"])
        stack_rules: dict[int, list[Rule]] = {}
        done = []
        for load_test_id in event["load_tests"]:
            runnable = self._store.load_tests.runnable(int(load_test_id))
            if runnable is None:
                continue
            stack = runnable.stack
            if stack not in stack_rules:
                stack_rules[stack] = [
                    rule
                    for rule in self._notifications.rules.of_stack(stack)
                    if any(kind in rule.events for kind in FIRE_KINDS)
                ]
            test = self._load_test(stack, int(load_test_id))
            rules = [
                rule
                for rule in stack_rules[stack]
                if test is not None
                and rule.covers(project_id=test.project_id, load_test_id=test.id)
            ]
            if test is None or not rules:
                continue
            runs = self._notifications.runs_created(
                test.id, since_us=since_us, until_us=until_us, limit=SCAN_RUNS
            )
            done += self._skips(test, runs, rules)
            done += self._expiries(test, runs, rules)
        return done

    def _skips(
        self, test: LoadTestRecord, runs: Sequence[RunRecord], rules: list[Rule]
    ) -> list[Delivery]:
        by_reason: dict[str, list[RunRecord]] = {}
        for run in runs:
            if run.status == Status.SKIPPED:
                by_reason.setdefault(str(run.details.get("skip_reason", "unknown")), []).append(run)
        done = []
        for reason, skipped in by_reason.items():
            first = skipped[0]
            occurrences = [run.scheduled_for or run.created for run in skipped]
            last_at = max(
                [
                    _instant(run.details.get("last_at")) or occurrences[i]
                    for i, run in enumerate(skipped)
                ]
            )
            count = sum(1 + _int(run.details.get("more")) for run in skipped)
            notice = Notice(
                event_id=f"skip-{first.id}",
                kind=EventKind.OCCURRENCE_SKIPPED.value,
                at=first.created,
                stack=test.stack,
                load_test_id=test.id,
                load_test_name=test.name,
                project_id=test.project_id,
                skip=NoticeSkip(
                    reason=reason, count=count, first_at=min(occurrences), last_at=last_at
                ),
                **self._schedule_of(first.schedule_id),
            )
            done += self._dispatch(notice, rules, skip_reason=reason)
        return done

    def _expiries(
        self, test: LoadTestRecord, runs: Sequence[RunRecord], rules: list[Rule]
    ) -> list[Delivery]:
        done = []
        for schedule_id in sorted({run.schedule_id for run in runs if run.schedule_id is not None}):
            record = self._store.schedules.get_any(schedule_id)
            if record is None or record.next_at is not None or record.stack != test.stack:
                continue
            notice = Notice(
                event_id=f"expired-{schedule_id}-{to_us(record.fired_through)}",
                kind=EventKind.SCHEDULE_EXPIRED.value,
                at=record.fired_through,
                stack=test.stack,
                load_test_id=test.id,
                load_test_name=test.name,
                project_id=test.project_id,
                schedule_id=schedule_id,
            )
            done += self._dispatch(notice, rules)
        return done

    def _test(self, event_id: str, stack: int, channel_id: int) -> list[Delivery]:
        queued = self._notifications.delivery(event_id, channel_id)
        channel = self._notifications.channels.get_any(channel_id)
        if channel is None or channel.stack != stack:
            if queued is not None and not queued.finished:
                gone = "the channel was deleted before its test was sent"
                self._notifications.record(
                    replace(queued, status="failed", error=gone, updated=self._clock())
                )
            return []
        now = self._clock()
        notice = replace(
            sample_notice(stack=stack, at=now, public_url=self._runners.public_url),
            event_id=event_id,
        )
        delivered = self._deliver(channel, notice, rules=(), single=True, planned=queued)
        return [delivered] if delivered is not None else []

    # Rules, storm windows, deliveries

    def _load_test(self, stack: int, load_test_id: int) -> LoadTestRecord | None:
        try:
            return self._store.load_tests.get(stack, load_test_id)
        except NotFound:  # deleted, or a report's internal load test
            return None

    def _rules(self, stack: int, test: LoadTestRecord | None) -> list[Rule]:
        if test is None:
            return []
        return [
            rule
            for rule in self._notifications.rules.of_stack(stack)
            if rule.covers(project_id=test.project_id, load_test_id=test.id)
        ]

    def _dispatch(
        self, notice: Notice, rules: list[Rule], *, skip_reason: str | None = None, streak: int = 0
    ) -> list[Delivery]:
        targets: dict[int, tuple[int, list[int]]] = {}
        now = self._clock()
        for rule in rules:
            if not rule.wants(notice.kind, skip_reason=skip_reason, streak=streak):
                continue
            quiet_s = (
                rule.quiet_seconds if rule.quiet_seconds is not None else self._options.quiet_s
            )
            decision = self._notifications.decide(
                notice.event_id,
                rule_id=rule.id,
                window=f"{notice.kind}:{notice.load_test_id}",
                now=now,
                quiet=timedelta(seconds=quiet_s),
            )
            if decision.gone:
                continue
            if not decision.send:
                log.info(
                    "notification_held",
                    extra={"event_id": notice.event_id, "rule_id": rule.id, "kind": notice.kind},
                )
                continue
            for channel_id in rule.channels:
                held, senders = targets.get(channel_id, (0, []))
                targets[channel_id] = (max(held, decision.held), [*senders, rule.id])
        done = []
        for channel_id, (held, senders) in sorted(targets.items()):
            channel = self._notifications.channels.get_any(channel_id)
            if channel is None or channel.stack != notice.stack:
                continue  # deleted since the rule was read
            delivered = self._deliver(channel, replace(notice, more=held), rules=tuple(senders))
            if delivered is not None:
                done.append(delivered)
        return done

    def _deliver(
        self,
        channel: Channel,
        notice: Notice,
        *,
        rules: tuple[int, ...],
        single: bool = False,
        planned: Delivery | None = None,
    ) -> Delivery | None:
        now = self._clock()
        if planned is None:
            planned = Delivery(
                event_id=notice.event_id,
                channel_id=channel.id,
                stack=channel.stack,
                kind=notice.kind,
                title=notice.title,
                # A test's sample run is made up: it is in no run's log.
                run_id=notice.run.id
                if notice.run is not None and notice.kind != EventKind.TEST
                else None,
                load_test_id=notice.load_test_id,
                rules=rules,
                more=notice.more,
                created=now,
                updated=now,
            )
        started = self._notifications.claim(planned, now=now, stale_after=self._options.stale_after)
        fields = {"event_id": notice.event_id, "channel_id": channel.id, "kind": notice.kind}
        if started is None:
            log.info("notification_already_delivered", extra=fields)
            return None
        current = started
        try:
            send = self._sender(channel, notice)
        except _Unsendable as exc:
            failed = replace(current, status="failed", error=str(exc), updated=self._clock())
            self._notifications.record(failed)
            log.warning("notification_failed", extra={**fields, "error": str(exc), "attempts": 0})
            return failed

        def on_attempt(made: int, outcome: Attempt) -> None:
            nonlocal current
            current = replace(
                current,
                attempts=started.attempts + made,
                answer_status=outcome.status,
                error=outcome.error,
                response=outcome.response,
                updated=self._clock(),
            )
            self._notifications.record(current)

        try:
            outcome, _ = with_retries(
                send,
                deadline=time.monotonic() + self._options.retry_s,
                attempt_timeout_s=self._options.attempt_timeout_s,
                backoff_first_s=self._options.backoff_first_s,
                single=single,
                on_attempt=on_attempt,
                wait=self._wait,
            )
        except BaseException as exc:  # a cold shutdown, a job timeout: say so, then go
            stopped = f"stopped before it was sent ({type(exc).__name__})"
            self._notifications.record(
                replace(current, status="failed", error=stopped, updated=self._clock())
            )
            raise
        final = replace(current, status="sent" if outcome.sent else "failed", updated=self._clock())
        self._notifications.record(final)
        extra = {**fields, "status": final.status, "attempts": final.attempts}
        extra["answer_status"] = final.answer_status
        if outcome.sent:
            log.info("notification_sent", extra=extra)
        else:
            log.warning("notification_failed", extra={**extra, "error": final.error})
        return final

    def _sender(self, channel: Channel, notice: Notice) -> Callable[[float], Attempt]:
        """The attempt function of one delivery: the message built once, sent each time."""
        if channel.type is ChannelType.EMAIL:
            return self._mailer(channel, notice)
        try:
            body = http_body(channel.type, notice, template=channel.template)
        except ValueError as exc:
            raise _Unsendable(f"the template did not give JSON for this event: {exc}") from None
        headers = dict(channel.headers) if channel.type is ChannelType.WEBHOOK else {}
        headers |= {
            "Content-Type": "application/json",
            "User-Agent": f"tickwork/{__version__}",
            "X-Tickwork-Event-Id": notice.event_id,
            "X-Tickwork-Event-Kind": notice.kind,
        }
        if channel.type is ChannelType.WEBHOOK:
            secret = channel.secret or self._runners.webhook_secret
            if not secret:
                raise _Unsendable(
                    "webhook channels are signed: give the channel a secret, or set "
                    "TICKWORK_WEBHOOK_SECRET on the workers"
                )
            headers[SIGNATURE_HEADER] = signature(secret, body)
        url = channel.url or ""
        hidden = _secrets_of(channel)
        attempt_number = 0

        def attempt(timeout_s: float) -> Attempt:
            nonlocal attempt_number
            attempt_number += 1
            return post_once(
                url,
                body,
                {**headers, "X-Tickwork-Attempt": str(attempt_number)},
                timeout_s,
                policy=self._runners.egress,
                resolve=self._resolve,
                hidden=hidden,
            )

        return attempt

    def _mailer(self, channel: Channel, notice: Notice) -> Callable[[float], Attempt]:
        options = self._runners.smtp
        subject, text = mail_parts(notice, template=channel.template, subject=channel.subject)
        sender = options or SmtpOptions(host="")  # none: the attempt says so
        message = mail.message(sender, list(channel.to), subject, text)
        domain = sender.sender.rpartition("@")[2] or "tickwork"
        # The same Message-ID on every attempt: a mail system drops what it has seen.
        message.replace_header("Message-ID", f"<{notice.event_id}.{channel.id}@{domain}>")
        message["X-Tickwork-Event-Id"] = notice.event_id
        message["X-Tickwork-Event-Kind"] = notice.kind
        to = list(channel.to)
        return lambda timeout_s: mail_once(options, message, to, timeout_s)

    def _run_notice(self, event_id: str, run: RunRecord, test: LoadTestRecord) -> Notice:
        results = run_results(run.details)
        crossed = results.summary.crossed if results.summary is not None else ()
        reason = run.details.get("reason")
        last = run.status_history[-1] if run.status_history else None
        schedule_id = run.schedule_id
        if schedule_id is None:
            try:
                schedule_id = self._store.schedules.for_load_test(run.stack, run.load_test_id).id
            except NotFound:
                schedule_id = None
        return Notice(
            event_id=event_id,
            kind=EventKind.TEST.value,  # each kind's notice replaces it
            at=run.ended or run.created,
            stack=run.stack,
            load_test_id=run.load_test_id,
            load_test_name=test.name,
            project_id=run.project_id,
            run=NoticeRun(
                id=run.id,
                status=run.status,
                result=run.result,
                reason=reason if isinstance(reason, str) else None,
                message=last.message if last is not None else None,
                created=run.created,
                ended=run.ended,
                thresholds_failed=tuple(crossed),
            ),
            link=run_link(self._runners.public_url, run.id),
            **self._schedule_of(schedule_id),
        )

    def _schedule_of(self, schedule_id: int | None) -> dict[str, Any]:
        """``schedule_id`` and ``next_run`` of a notice: the schedule's next occurrence."""
        if schedule_id is None:
            return {"schedule_id": None, "next_run": None}
        record = self._store.schedules.get_any(schedule_id)
        upcoming = record.upcoming(now=self._clock()) if record is not None else None
        return {"schedule_id": schedule_id, "next_run": upcoming}


def _secrets_of(channel: Channel) -> list[str]:
    hidden = list(channel.headers.values())
    if channel.secret:
        hidden.append(channel.secret)
    if channel.url:
        hidden.append(channel.url)
        path = channel.url.split("://", 1)[-1].partition("/")[2]
        if path:
            hidden.append("/" + path)
    return hidden


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_instant(value)
    except ValueError:
        return None


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
