"""Notifications as values: channels, rules, the events a rule names, and the facts a message
is made of. Pure: no I/O, no clock.

An **event** is something that happened to a load test: a run ended (failed, in error, timed
out, aborted, its worker lost), occurrences were skipped, its schedule expired, it failed N
times in a row, or it passed again after failures. A **rule** of a stack binds event kinds to
**channels** (webhook, Slack, Microsoft Teams, e-mail) for the whole stack, one project or
one load test. Which kind a run's ending is, and how long a load test's failure streak is,
are decided here::

    completed passed                         -> (recovered, when failures came before it)
    completed failed                         -> run_failed   (k6 thresholds crossed, exit != 0)
    completed error                          -> run_error
    aborted   timed_out                      -> run_timed_out
    aborted   aborted_by_user, worker_stopped-> run_aborted
    aborted   worker_lost                    -> worker_lost

A failure is any finished run that did not pass (the ledger's health counts the same way);
skipped records and unfinished runs neither extend nor break a streak.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from tickwork.core.k6_summary import Threshold
from tickwork.core.lifecycle import Outcome, Result, Status, is_terminal
from tickwork.core.policies import MISSED, MISSED_OUTSIDE_WINDOW, OVERLAP


class EventKind(StrEnum):
    RUN_FAILED = "run_failed"
    RUN_ERROR = "run_error"
    RUN_TIMED_OUT = "run_timed_out"
    RUN_ABORTED = "run_aborted"
    WORKER_LOST = "worker_lost"
    OCCURRENCE_SKIPPED = "occurrence_skipped"
    SCHEDULE_EXPIRED = "schedule_expired"
    CONSECUTIVE_FAILURES = "consecutive_failures"
    RECOVERED = "recovered"
    TEST = "test"  # a channel's test message: no rule names it


RULE_KINDS: tuple[str, ...] = tuple(kind.value for kind in EventKind if kind is not EventKind.TEST)
"""The event kinds a rule may name, in the order the documentation lists them."""
FIRE_KINDS = frozenset({EventKind.OCCURRENCE_SKIPPED.value, EventKind.SCHEDULE_EXPIRED.value})
"""Kinds the scheduler's fire commit causes (the others come from a run's ending)."""
SKIP_REASONS: tuple[str, ...] = (OVERLAP, MISSED, MISSED_OUTSIDE_WINDOW)
"""Why an occurrence is recorded as skipped (core.policies); a rule may name some of them."""


class ChannelType(StrEnum):
    WEBHOOK = "webhook"
    SLACK = "slack"
    TEAMS = "teams"
    EMAIL = "email"


@dataclass(frozen=True, slots=True, kw_only=True)
class Channel:
    """Where messages go. ``url``, ``secret`` and the values of ``headers`` are secrets: the
    API never answers them once set (only whether they are, and the URL's origin)."""

    id: int
    stack: int
    name: str
    type: ChannelType
    url: str | None = None  # webhook, slack, teams
    secret: str | None = None  # webhook: the HMAC key (else the worker's TICKWORK_WEBHOOK_SECRET)
    headers: Mapping[str, str] = field(default_factory=dict)  # webhook: added to each request
    to: tuple[str, ...] = ()  # email: the recipients of one message
    template: str | None = None  # the user's message template (None: the channel's default)
    subject: str | None = None  # email: the subject template (None: the event's title)
    created: datetime
    updated: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """Which events of which load tests go to which channels. Scope: ``load_test_id`` (one
    load test), else ``project_id`` (its load tests), else the whole stack."""

    id: int
    stack: int
    name: str
    events: tuple[str, ...]
    channels: tuple[int, ...]
    project_id: int | None = None
    load_test_id: int | None = None
    consecutive_failures: int | None = None  # N of the consecutive_failures event
    skip_reasons: tuple[str, ...] = ()  # occurrence_skipped only for these (empty: any)
    quiet_seconds: int | None = None  # the storm window (None: TICKWORK_NOTIFY_QUIET_SECONDS)
    enabled: bool = True
    created: datetime
    updated: datetime

    def covers(self, *, project_id: int | None, load_test_id: int | None) -> bool:
        if not self.enabled:
            return False
        if self.load_test_id is not None:
            return self.load_test_id == load_test_id
        if self.project_id is not None:
            return self.project_id == project_id
        return True

    def wants(self, kind: str, *, skip_reason: str | None = None, streak: int = 0) -> bool:
        """Whether an event of ``kind`` (with its skip reason, or the failure streak it
        reached) is one this rule names."""
        if kind not in self.events:
            return False
        if kind == EventKind.OCCURRENCE_SKIPPED and self.skip_reasons:
            return skip_reason in self.skip_reasons
        if kind == EventKind.CONSECUTIVE_FAILURES:
            return streak == self.consecutive_failures
        return True


def ending_kind(status: str, result: str | None, reason: str | None) -> EventKind | None:
    """The event a run's ending is (None for a pass, or a run that has not ended)."""
    if status == Status.COMPLETED:
        if result == Result.FAILED:
            return EventKind.RUN_FAILED
        if result == Result.PASSED:
            return None
        return EventKind.RUN_ERROR
    if status != Status.ABORTED:
        return None
    if reason == Outcome.TIMED_OUT:
        return EventKind.RUN_TIMED_OUT
    if reason == Outcome.WORKER_LOST:
        return EventKind.WORKER_LOST
    return EventKind.RUN_ABORTED


@dataclass(frozen=True, slots=True)
class Streak:
    """A run's place in its load test's record: ``failures`` in a row ending with it (0 when
    it passed), and ``before``: failures in a row just before it."""

    failures: int
    before: int

    @property
    def recovered(self) -> bool:
        return self.failures == 0 and self.before > 0


def streak(newest_first: Sequence[tuple[str, str | None]]) -> Streak:
    """The streak of the first run of ``newest_first`` (status, result of a load test's runs,
    newest first, that run first). Skipped and unfinished runs are passed over."""
    counted = [
        result == Result.PASSED
        for status, result in newest_first
        if status != Status.SKIPPED and is_terminal(status)
    ]
    if not counted:
        return Streak(0, 0)
    run_in_a_row = 0
    for passed in counted:
        if passed:
            break
        run_in_a_row += 1
    if not counted[0]:
        return Streak(run_in_a_row, 0)
    before = 0
    for passed in counted[1:]:
        if passed:
            break
        before += 1
    return Streak(0, before)


@dataclass(frozen=True, slots=True, kw_only=True)
class NoticeRun:
    id: int
    status: str
    result: str | None
    reason: str | None
    message: str | None  # the ending's status message ("timed_out: ...")
    created: datetime
    ended: datetime | None
    thresholds_failed: tuple[Threshold, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class NoticeSkip:
    reason: str
    count: int  # occurrences skipped
    first_at: datetime
    last_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    """Everything a message about one event may say."""

    event_id: str
    kind: str
    at: datetime  # when it happened
    stack: int
    load_test_id: int | None = None
    load_test_name: str = ""
    project_id: int | None = None
    run: NoticeRun | None = None
    schedule_id: int | None = None
    next_run: datetime | None = None
    skip: NoticeSkip | None = None
    failures: int = 0  # consecutive failures: reached, or (recovered) before the pass
    more: int = 0  # events of the same rule, kind and load test held back since the last
    link: str | None = None  # the run, under TICKWORK_PUBLIC_URL

    @property
    def title(self) -> str:
        """One line saying what happened (and how many more were held back)."""
        return _title(self) + (
            f" (and {self.more} more since the last message)" if self.more else ""
        )


def _title(notice: Notice) -> str:
    what = (
        f'Load test "{notice.load_test_name}"'
        if notice.load_test_name
        else f"Load test {notice.load_test_id}"
    )
    kind = notice.kind
    if kind == EventKind.RUN_FAILED:
        crossed = len(notice.run.thresholds_failed) if notice.run else 0
        if crossed:
            return f"{what} failed: {crossed} threshold{'s' if crossed > 1 else ''} crossed"
        return f"{what} failed"
    if kind == EventKind.RUN_ERROR:
        return f"{what} ended in error"
    if kind == EventKind.RUN_TIMED_OUT:
        return f"{what} timed out"
    if kind == EventKind.RUN_ABORTED:
        return f"{what} was aborted"
    if kind == EventKind.WORKER_LOST:
        return f"{what} lost its worker mid-run"
    if kind == EventKind.OCCURRENCE_SKIPPED:
        skip = notice.skip
        count = skip.count if skip else 1
        reason = f" ({skip.reason})" if skip else ""
        if count == 1:
            return f"An occurrence of {what[0].lower()}{what[1:]} was skipped{reason}"
        return f"{count} occurrences of {what[0].lower()}{what[1:]} were skipped{reason}"
    if kind == EventKind.SCHEDULE_EXPIRED:
        return f"The schedule of {what[0].lower()}{what[1:]} has ended: no occurrence remains"
    if kind == EventKind.CONSECUTIVE_FAILURES:
        return f"{what} failed {notice.failures} times in a row"
    if kind == EventKind.RECOVERED:
        failures = f"{notice.failures} failure{'s' if notice.failures != 1 else ''}"
        return f"{what} passed again after {failures}"
    return "Test notification from tickwork: this channel works"


def run_link(public_url: str | None, run_id: int) -> str:
    """The run in the API (absolute under TICKWORK_PUBLIC_URL, else a path)."""
    return f"{(public_url or '').rstrip('/')}/cloud/v6/test_runs/{run_id}"


def sample_notice(*, stack: int, at: datetime, public_url: str | None) -> Notice:
    """What a channel's test message says (and what a template is checked against): a
    made-up failed run, with a crossed threshold, of a scheduled load test."""
    run = NoticeRun(
        id=12345,
        status=Status.COMPLETED,
        result=Result.FAILED,
        reason=Outcome.FAILED,
        message='failed: k6 thresholds were crossed (a "sample" run)',
        created=at,
        ended=at,
        thresholds_failed=(
            Threshold(
                metric="http_req_duration",
                expression="p(95)<200",
                held=False,
                aggregation="p(95)",
                operator="<",
                bound=200.0,
                observed=250.5,
            ),
        ),
    )
    return Notice(
        event_id="test",
        kind=EventKind.TEST,
        at=at,
        stack=stack,
        load_test_id=678,
        load_test_name="sample load test",
        project_id=90,
        run=run,
        schedule_id=34,
        next_run=at,
        failures=1,
        link=run_link(public_url, run.id),
    )
