"""The report digest (pure) and the pieces of gathering that need no store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tickwork.core.runner_specs import ReportSpec, parse_runner_spec
from tickwork.worker.reports import digest
from tickwork.worker.reports.digest import DigestRun
from tickwork.worker.reports.gather import hosts_in, p95_of
from tickwork.worker.reports.mail import SmtpOptions

START = datetime(2026, 11, 22, 23, tzinfo=UTC)
END = START + timedelta(days=1)


def _run(run_id: int, status: str, result: str | None = None, **extra: object) -> DigestRun:
    return DigestRun(
        run_id=run_id,
        load_test_id=1,
        load_test=str(extra.pop("load_test", "checkout")),
        status=status,
        result=result,
        created=START + timedelta(hours=run_id),
        **extra,  # type: ignore[arg-type]
    )


def _build(runs: list[DigestRun]) -> digest.Digest:
    return digest.build(
        runs,
        report_id="r",
        name="nightly",
        period="daily",
        time_zone="Europe/Rome",
        start=START,
        end=END,
        base_url="https://tw.example/",
    )


@pytest.mark.parametrize(
    ("status", "result", "kind"),
    [
        ("completed", "passed", "passed"),
        ("completed", "failed", "failed"),
        ("completed", "error", "failed"),
        ("aborted", "error", "failed"),
        ("skipped", None, "skipped"),
        ("created", None, "unfinished"),
        ("running", None, "unfinished"),
    ],
)
def test_each_run_counts_once(status: str, result: str | None, kind: str) -> None:
    assert digest.classify(_run(1, status, result)) == kind


def test_the_slowest_p95_and_failures_newest_first_with_links() -> None:
    result = _build(
        [
            _run(1, "completed", "failed", p95_ms=300.0, reason="failed"),
            _run(2, "completed", "passed", p95_ms=900.0, load_test="search"),
            _run(3, "aborted", "error", message="timed_out: too long"),
        ]
    )

    assert result.totals.as_json()["slowest_p95"] == {
        "p95_ms": 900.0,
        "run_id": 2,
        "load_test": "search",
        "link": "https://tw.example/cloud/v6/test_runs/2",
    }
    assert [f.run_id for f in result.failures] == [3, 1]
    assert result.load_tests["checkout"].failed == 2
    assert digest.subject(result) == "[tickwork] nightly: 1/3 passed, 2 failed (daily, 2026-11-23)"


def test_failures_past_the_cap_are_counted_not_listed() -> None:
    runs = [_run(i, "completed", "failed") for i in range(digest.FAILURES_LISTED + 7)]

    result = _build(runs)

    assert len(result.failures) == digest.FAILURES_LISTED
    assert result.failures_omitted == 7
    assert "... and 7 more" in digest.text(result)
    assert digest.as_json(result, run_id=9)["failures_omitted"] == 7


def test_a_quiet_period_says_so() -> None:
    text = digest.text(_build([]))

    assert "Runs: 0   passed: 0   failed: 0" in text
    assert "No test runs in this period." in text


def test_links_without_a_base_are_paths() -> None:
    assert digest.run_link(None, 7) == "/cloud/v6/test_runs/7"


def test_hosts_are_read_from_urls() -> None:
    text = "http.get('https://User@WWW.Example.com:8443/x'); fetch(`ws://[::1]:9/`) mailto:a@b"

    assert hosts_in(text) == {"www.example.com", "::1"}


@pytest.mark.parametrize(
    ("details", "p95"),
    [
        ({"summary": {"metrics": {"http_req_duration": {"p(95)": 12.5}}}}, 12.5),
        ({"summary": {"metrics": {"http_req_duration": {"values": {"p(95)": 7}}}}}, 7.0),
        ({"summary": {"metrics": {"http_req_duration": {"p(95)": "fast"}}}}, None),
        ({"summary": {"omitted": "too big"}}, None),
        ({"summary": None}, None),
        ({}, None),
    ],
)
def test_p95_comes_from_either_k6_summary_form(
    details: dict[str, object], p95: float | None
) -> None:
    assert p95_of(details) == p95


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example", SmtpOptions("mail.example", 25, "s@x.y")),
        (
            "smtp+starttls://u%40x:p%2Fw@mail.example",
            SmtpOptions("mail.example", 587, "s@x.y", "starttls", "u@x", "p/w"),
        ),
        ("smtps://mail.example:2465", SmtpOptions("mail.example", 2465, "s@x.y", "tls")),
    ],
)
def test_smtp_urls(url: str, expected: SmtpOptions) -> None:
    assert SmtpOptions.from_url(url, sender="s@x.y") == expected


def test_the_report_runner_spec() -> None:
    assert parse_runner_spec({"type": "report", "report_id": "abc"}) == ReportSpec(report_id="abc")
