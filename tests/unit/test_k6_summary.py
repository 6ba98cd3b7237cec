"""Reading k6's end-of-test summaries: tables over summaries the real k6 wrote.

Each file in ``k6_summaries/`` holds a script (its target was a local HTTP server on PORT),
the exit code and version of the k6 that ran it, and the summary it wrote: five through
tickwork's own K6Runner (``--summary-export``, with the runner's trend statistics), one
through the script's ``handleSummary`` (the other shape k6 writes). Their values are k6's,
not invented; tests/integration/test_run_results.py checks the parser against the installed
k6 as well.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tickwork.core.k6_summary import (
    Durations,
    KeyMetrics,
    parse_expression,
    read_summary,
    run_results,
)

SUMMARIES = Path(__file__).parent / "k6_summaries"


def _recorded(name: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((SUMMARIES / f"{name}.json").read_text())
    return record


def _thresholds(name: str) -> list[tuple[str, str, bool, float | None]]:
    summary = read_summary(_recorded(name)["summary"])
    assert summary is not None
    return [(t.metric, t.expression, t.held, t.observed) for t in summary.thresholds]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param(
            "http_p95_threshold_crossed",
            [
                ("http_req_duration", "p(95)<0.001", False, 9.241271600000001),
                ("checks", "rate==1", True, 1.0),
                ("http_req_duration", "p(99)<5000", True, 9.59665672),
                ("http_req_failed", "rate<0.01", True, 0.0),
            ],
            id="http_p95_crossed_listed_first_with_the_p95_k6_measured",
        ),
        pytest.param(
            "checks_without_http_crossed",
            [("checks", "rate>0.99", False, 0.75)],
            id="checks_rate_of_a_test_without_http",
        ),
        pytest.param(
            "counters_rates_and_submetrics",
            [
                ("http_req_failed", "rate<0.4", False, 0.48214285714285715),
                ("http_reqs", "count>1000000", False, 56.0),
                # p(99.9) is not among the summary's statistics: held, value unknown.
                ("http_req_duration", "p(99.9)<2000", True, None),
                ("http_req_duration{status:200}", "max<3000", True, 139.895998),
                ("iterations", "rate>1", True, 26.824036300619614),
            ],
            id="counter_rate_and_submetric_thresholds",
        ),
        pytest.param(
            "handle_summary_data_form",
            [
                ("checks", "rate>0.99", False, 0.5),
                ("iteration_duration", "max<0.0001", False, 0.042033),
                ("iteration_duration", "p(95)<60000", True, 0.040150649999999996),
            ],
            id="handle_summary_data_ok_false_is_crossed",
        ),
        pytest.param("no_http_no_thresholds", [], id="no_thresholds"),
        pytest.param(
            "http_passed",
            [
                ("checks", "rate==1", True, 1.0),
                ("http_req_duration", "p(95)<5000", True, 2.7778333999999996),
            ],
            id="every_threshold_held",
        ),
    ],
)
def test_thresholds_are_read_with_whether_they_held_and_the_value_k6_compared(
    name: str, expected: list[tuple[str, str, bool, float | None]]
) -> None:
    assert _thresholds(name) == expected


def test_crossed_thresholds_match_the_exit_code_k6_gave() -> None:
    for path in sorted(SUMMARIES.glob("*.json")):
        record = json.loads(path.read_text())
        summary = read_summary(record["summary"])
        assert summary is not None
        assert bool(summary.crossed) == (record["exit_code"] == 99), path.name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param(
            "http_p95_threshold_crossed",
            KeyMetrics(
                http_req_duration=Durations(
                    p50=0.7597455,
                    p90=7.998369400000001,
                    p95=9.241271600000001,
                    p99=9.59665672,
                    max=9.685503,
                    avg=2.828995400000001,
                ),
                http_reqs=20,
                http_req_failed_rate=0.0,
                iterations=20,
                vus_max=None,  # under a second: k6 never sampled its VUs
                data_sent_bytes=1460,
                data_received_bytes=2660,
                checks_passed=20,
                checks_failed=0,
            ),
            id="http_with_checks",
        ),
        pytest.param(
            "counters_rates_and_submetrics",
            KeyMetrics(
                http_req_duration=Durations(
                    p50=1.1743185,
                    p90=10.395018,
                    p95=57.95977375,
                    p99=121.49597185000009,
                    max=139.895998,
                    avg=9.406134482142855,
                ),
                http_reqs=56,
                http_req_failed_rate=0.48214285714285715,
                iterations=56,
                vus_max=3,
                data_sent_bytes=4142,
                data_received_bytes=7907,
                checks_passed=None,
                checks_failed=None,
            ),
            id="http_without_checks_long_enough_to_sample_vus",
        ),
        pytest.param(
            "checks_without_http_crossed",
            KeyMetrics(
                http_req_duration=None,
                http_reqs=None,
                http_req_failed_rate=None,
                iterations=4,
                vus_max=None,
                data_sent_bytes=0,
                data_received_bytes=0,
                checks_passed=6,
                checks_failed=2,
            ),
            id="checks_without_http",
        ),
        pytest.param(
            "no_http_no_thresholds",
            KeyMetrics(
                http_req_duration=None,
                http_reqs=None,
                http_req_failed_rate=None,
                iterations=2,
                vus_max=None,
                data_sent_bytes=0,
                data_received_bytes=0,
                checks_passed=None,
                checks_failed=None,
            ),
            id="no_http_at_all",
        ),
        pytest.param(
            "handle_summary_data_form",
            KeyMetrics(
                http_req_duration=None,
                http_reqs=None,
                http_req_failed_rate=None,
                iterations=4,
                vus_max=None,
                data_sent_bytes=0,
                data_received_bytes=0,
                checks_passed=2,
                checks_failed=2,
            ),
            id="handle_summary_data_form",
        ),
    ],
)
def test_key_metrics_are_read_from_either_summary_shape(name: str, expected: KeyMetrics) -> None:
    summary = read_summary(_recorded(name)["summary"])
    assert summary is not None
    assert summary.metrics == expected


def test_a_crossed_threshold_says_by_how_much() -> None:
    summary = read_summary(_recorded("counters_rates_and_submetrics")["summary"])
    assert summary is not None
    excess = {t.expression: t.excess for t in summary.thresholds}
    assert excess["rate<0.4"] == pytest.approx(0.0821428571)  # 48.2 % failed, 40 % allowed
    assert excess["count>1000000"] == 999_944  # 56 requests of a million wanted
    assert excess["max<3000"] is None  # held
    assert excess["p(99.9)<2000"] is None  # value unknown


@pytest.mark.parametrize(
    ("expression", "parsed"),
    [
        ("p(95)<200", ("p(95)", "<", 200.0)),
        ("p( 99.9 ) <= 1.5e3", ("p(99.9)", "<=", 1500.0)),
        ("rate==1", ("rate", "==", 1.0)),
        ("count > 10", ("count", ">", 10.0)),
        ("avg!=0", ("avg", "!=", 0.0)),
        ("value===-1", ("value", "===", -1.0)),
        ("med>=.5", ("med", ">=", 0.5)),
        ("p95<200", None),
        ("rate<", None),
        ("rate<nan", None),
        ("rate<1e999", None),
        ("1 < rate", None),
    ],
)
def test_threshold_expressions_follow_k6s_grammar(
    expression: str, parsed: tuple[str, str, float] | None
) -> None:
    assert parse_expression(expression) == parsed


@pytest.mark.parametrize(
    "summary",
    [
        None,
        "a string",
        [],
        {},
        {"metrics": None},
        {"omitted": "summary larger than 524288 bytes"},
    ],
)
def test_what_is_not_a_summary_reads_as_none(summary: object) -> None:
    assert read_summary(summary) is None


def test_a_malformed_summary_never_raises_and_keeps_what_it_can() -> None:
    summary = read_summary(
        {
            "metrics": {
                "http_req_duration": {
                    "p(95)": "fast",
                    "max": True,
                    "med": float("nan"),
                    "thresholds": {"p(95)<200": "yes", "max<1": True, "nonsense": False},
                },
                "iterations": {"count": 3.0},
                "checks": [],
                7: {},
            }
        }
    )
    assert summary is not None
    assert [(t.expression, t.held, t.observed, t.aggregation) for t in summary.thresholds] == [
        ("max<1", False, None, "max"),  # a bool is no measurement
        ("nonsense", True, None, None),  # kept as written, not parsed
    ]
    assert summary.metrics.http_req_duration == Durations(None, None, None, None, None, None)
    assert summary.metrics.iterations == 3
    assert summary.metrics.checks_passed is None


def test_run_results_of_a_k6_run_carry_version_exit_code_and_tail() -> None:
    record = _recorded("http_p95_threshold_crossed")
    results = run_results(
        {
            "runner": "k6",
            "exit_code": 99,
            "k6_version": "v1.1.0",
            "output_tail": "time=... level=error\n",
            "summary": record["summary"],
            "reason": "failed",
        }
    )
    assert (results.runner, results.exit_code, results.k6_version) == ("k6", 99, "v1.1.0")
    assert results.output_tail == "time=... level=error\n"
    assert results.summary is not None
    assert results.note is None


@pytest.mark.parametrize(
    ("details", "note"),
    [
        (
            {"runner": "k6", "exit_code": 107, "summary": None},
            "k6 wrote no end-of-test summary (it stopped before the test ran, or was killed)",
        ),
        (
            {"runner": "k6", "summary": {"omitted": "summary larger than 524288 bytes"}},
            "k6's summary was not kept: summary larger than 524288 bytes",
        ),
        ({"runner": "command", "exit_code": 1, "output_tail": "x"}, None),
        ({}, None),
    ],
)
def test_run_results_say_why_a_run_has_no_summary(
    details: dict[str, Any], note: str | None
) -> None:
    results = run_results(details)
    assert results.summary is None
    assert results.note == note
