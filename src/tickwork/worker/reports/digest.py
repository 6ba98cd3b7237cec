"""A digest of test runs over one period: counts, the slowest p95, failures with links. Pure.

Each run is counted once: ``skipped`` (an occurrence a policy passed over), ``unfinished``
(still created, queued or running when the report was made), ``passed`` (result passed), or
``failed`` (anything else that ended: thresholds crossed, errors, aborts, timeouts). Failures
are listed newest first, each with a link to its test run; past FAILURES_LISTED the rest are
counted, not listed, so a broken week cannot make a megabyte of mail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tickwork.core.instants import ONE_MICROSECOND, format_instant, zone
from tickwork.core.lifecycle import Status, is_terminal

FAILURES_LISTED = 50


@dataclass(frozen=True, slots=True)
class DigestRun:
    """What a digest needs of one test run."""

    run_id: int
    load_test_id: int
    load_test: str  # its name
    status: str
    result: str | None
    created: datetime
    reason: str | None = None  # why it ended (details.reason)
    message: str | None = None  # its last status message
    p95_ms: float | None = None  # http_req_duration p(95) of its k6 summary


@dataclass(frozen=True, slots=True)
class Slowest:
    p95_ms: float
    run_id: int
    load_test: str
    link: str


@dataclass(slots=True)
class Counts:
    runs: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    unfinished: int = 0
    slowest: Slowest | None = None

    def add(self, run: DigestRun, link: str) -> None:
        self.runs += 1
        kind = classify(run)
        setattr(self, kind, getattr(self, kind) + 1)
        if run.p95_ms is not None and (self.slowest is None or run.p95_ms > self.slowest.p95_ms):
            self.slowest = Slowest(run.p95_ms, run.run_id, run.load_test, link)

    def as_json(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "passed": self.passed,
            "failed": self.failed,
            "skipped": self.skipped,
            "unfinished": self.unfinished,
            "slowest_p95": _slowest_json(self.slowest),
        }


@dataclass(frozen=True, slots=True)
class Failure:
    run_id: int
    load_test: str
    created: datetime
    status: str
    result: str | None
    reason: str | None
    message: str | None
    link: str


@dataclass(slots=True)
class Digest:
    report_id: str
    name: str
    period: str
    time_zone: str
    start: datetime
    end: datetime
    totals: Counts
    load_tests: dict[str, Counts] = field(default_factory=dict)  # by load test name
    failures: list[Failure] = field(default_factory=list)
    failures_omitted: int = 0


def classify(run: DigestRun) -> str:
    if run.status == Status.SKIPPED:
        return "skipped"
    if not is_terminal(run.status):
        return "unfinished"
    return "passed" if run.result == "passed" else "failed"


def run_link(base_url: str | None, run_id: int) -> str:
    """The test run in the k6 API: absolute under TICKWORK_PUBLIC_URL, else a path."""
    return f"{(base_url or '').rstrip('/')}/cloud/v6/test_runs/{run_id}"


def build(
    runs: Iterable[DigestRun],
    *,
    report_id: str,
    name: str,
    period: str,
    time_zone: str,
    start: datetime,
    end: datetime,
    base_url: str | None,
) -> Digest:
    digest = Digest(report_id, name, period, time_zone, start, end, Counts())
    failures: list[Failure] = []
    for run in sorted(runs, key=lambda r: (r.created, r.run_id)):
        link = run_link(base_url, run.run_id)
        digest.totals.add(run, link)
        digest.load_tests.setdefault(run.load_test, Counts()).add(run, link)
        if classify(run) == "failed":
            failures.append(
                Failure(
                    run.run_id,
                    run.load_test,
                    run.created,
                    run.status,
                    run.result,
                    run.reason,
                    run.message,
                    link,
                )
            )
    failures.reverse()  # newest first
    digest.failures = failures[:FAILURES_LISTED]
    digest.failures_omitted = max(len(failures) - FAILURES_LISTED, 0)
    return digest


def _slowest_json(slowest: Slowest | None) -> dict[str, Any] | None:
    if slowest is None:
        return None
    return {
        "p95_ms": slowest.p95_ms,
        "run_id": slowest.run_id,
        "load_test": slowest.load_test,
        "link": slowest.link,
    }


def as_json(digest: Digest, *, run_id: int) -> dict[str, Any]:
    """The webhook body: everything the mail says, as data."""
    return {
        "event": "report",
        "report_id": digest.report_id,
        "run_id": run_id,
        "name": digest.name,
        "schedule": digest.period,
        "timezone": digest.time_zone,
        "window": {"start": format_instant(digest.start), "end": format_instant(digest.end)},
        "totals": digest.totals.as_json(),
        "load_tests": [
            {"name": name} | counts.as_json() for name, counts in sorted(digest.load_tests.items())
        ],
        "failures": [
            {
                "run_id": f.run_id,
                "load_test": f.load_test,
                "created": format_instant(f.created),
                "status": f.status,
                "result": f.result,
                "reason": f.reason,
                "message": f.message,
                "link": f.link,
            }
            for f in digest.failures
        ],
        "failures_omitted": digest.failures_omitted,
    }


def _local(value: datetime, time_zone: str) -> str:
    return value.astimezone(zone(time_zone)).strftime("%Y-%m-%d %H:%M")


def _days(digest: Digest) -> str:
    """The period's local dates, inclusive: "2026-02-28", or "2026-02-16 to 2026-02-22"."""
    tz = zone(digest.time_zone)
    first = digest.start.astimezone(tz).date()
    last = (digest.end - ONE_MICROSECOND).astimezone(tz).date()
    return first.isoformat() if first == last else f"{first} to {last}"


def subject(digest: Digest) -> str:
    t = digest.totals
    return (
        f"[tickwork] {digest.name}: {t.passed}/{t.runs} passed, {t.failed} failed "
        f"({digest.period}, {_days(digest)})"
    )


def _p95(slowest: Slowest | None) -> str:
    return "-" if slowest is None else f"{slowest.p95_ms:.1f} ms"


def text(digest: Digest) -> str:
    """The mail body: plain text, one screen for a quiet period."""
    t, tz = digest.totals, digest.time_zone
    lines = [
        f'Report "{digest.name}" ({digest.period}, {tz})',
        f"Period: {_local(digest.start, tz)} to {_local(digest.end, tz)} ({_days(digest)})",
        "",
        f"Runs: {t.runs}   passed: {t.passed}   failed: {t.failed}   skipped: {t.skipped}   "
        f"unfinished: {t.unfinished}",
    ]
    if t.slowest is not None:
        s = t.slowest
        lines.append(f"Slowest p95: {_p95(s)} ({s.load_test}, run {s.run_id}) {s.link}")
    if not digest.load_tests:
        lines += ["", "No test runs in this period."]
    else:
        lines += ["", "By load test:"]
        for name, c in sorted(digest.load_tests.items()):
            lines.append(
                f"  {name}: runs {c.runs}, passed {c.passed}, failed {c.failed}, "
                f"skipped {c.skipped}, unfinished {c.unfinished}, slowest p95 {_p95(c.slowest)}"
            )
    if digest.failures:
        lines += ["", "Failures (newest first):"]
        for f in digest.failures:
            why = f.message or f.reason or f.result or f.status
            lines.append(f"  run {f.run_id}, {f.load_test}, {_local(f.created, tz)}: {why}")
            lines.append(f"    {f.link}")
        if digest.failures_omitted:
            lines.append(f"  ... and {digest.failures_omitted} more")
    lines += ["", f"tickwork report schedule {digest.report_id}"]
    return "\n".join(lines) + "\n"
