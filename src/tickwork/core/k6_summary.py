"""What a k6 run found, read from the details its worker kept: thresholds and key metrics.

The k6 runner keeps k6's end-of-test summary (``--summary-export``), the output's tail, the
exit code and the k6 version in the run's ``details``. This module reads them, and nothing
else: no I/O, and a summary that is absent, cut or of an unknown shape gives ``None`` values,
never an exception (what a worker stored is data, not code we trust to be well-formed).

Two summary shapes are read, both written by k6 itself:

- ``--summary-export`` (what the runner keeps): a metric's statistics at its top level
  (``{"p(95)": 12.5, "max": 40.1}``; a rate metric has ``passes``, ``fails`` and ``value``),
  and its thresholds as ``{"p(95)<200": true}`` where **true means crossed** (k6's legacy
  format: the flag says whether the threshold failed);
- ``handleSummary``'s data: statistics under ``values`` and thresholds as
  ``{"p(95)<200": {"ok": false}}`` (``ok`` false means crossed).

Durations are in milliseconds and data in bytes, as k6 reports them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_EXPRESSION = re.compile(
    r"^\s*(?P<aggregation>count|rate|value|avg|min|med|max|p\(\s*\d+(?:\.\d+)?\s*\))"
    r"\s*(?P<operator><=|>=|===|==|!=|<|>)"
    r"\s*(?P<bound>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


@dataclass(frozen=True, slots=True)
class Threshold:
    """One threshold of one metric (``metric`` may name a sub-metric, as in
    ``http_req_duration{status:200}``), whether it held, and the value k6 compared when the
    summary has it (a percentile the summary does not list, such as p(99.9), has none)."""

    metric: str
    expression: str
    held: bool
    aggregation: str | None = None
    operator: str | None = None
    bound: float | None = None
    observed: float | None = None

    @property
    def excess(self) -> float | None:
        """How far the observed value is past the bound (for ``<``, observed minus bound;
        for ``>``, bound minus observed; for ``==``, the distance), when the threshold was
        crossed and both are known; None otherwise."""
        if self.held or self.observed is None or self.bound is None:
            return None
        if self.operator in ("<", "<="):
            return self.observed - self.bound
        if self.operator in (">", ">="):
            return self.bound - self.observed
        if self.operator in ("==", "==="):
            return abs(self.observed - self.bound)
        return None


@dataclass(frozen=True, slots=True)
class Durations:
    """A trend of durations, in milliseconds (p50 is k6's ``med``)."""

    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    max: float | None
    avg: float | None


@dataclass(frozen=True, slots=True)
class KeyMetrics:
    """The numbers people look at first; None where the test had none (no HTTP requests,
    no checks, a test too short for k6 to sample its VUs)."""

    http_req_duration: Durations | None
    http_reqs: int | None
    http_req_failed_rate: float | None
    iterations: int | None
    vus_max: int | None
    data_sent_bytes: int | None
    data_received_bytes: int | None
    checks_passed: int | None
    checks_failed: int | None


@dataclass(frozen=True, slots=True)
class K6Summary:
    thresholds: tuple[Threshold, ...]  # crossed first, then by metric and expression
    metrics: KeyMetrics

    @property
    def crossed(self) -> tuple[Threshold, ...]:
        return tuple(t for t in self.thresholds if not t.held)


@dataclass(frozen=True, slots=True)
class RunResults:
    """What a run's details say about its k6 execution."""

    runner: str | None
    exit_code: int | None
    k6_version: str | None
    summary: K6Summary | None
    note: str | None  # why there is no summary, when there is none
    output_tail: str | None


def read_summary(summary: object) -> K6Summary | None:
    """The thresholds and key metrics of a k6 summary (either shape); None when ``summary``
    is not one."""
    if not isinstance(summary, Mapping):
        return None
    metrics = summary.get("metrics")
    if not isinstance(metrics, Mapping):
        return None
    thresholds = [
        threshold
        for name, metric in metrics.items()
        if isinstance(name, str) and isinstance(metric, Mapping)
        for threshold in _thresholds(name, metric)
    ]
    thresholds.sort(key=lambda t: (t.held, t.metric, t.expression))
    return K6Summary(thresholds=tuple(thresholds), metrics=_key_metrics(metrics))


def run_results(details: Mapping[str, Any]) -> RunResults:
    """The k6 facts of a run's ``details`` (any runner's: a command run has no summary)."""
    runner = details.get("runner")
    summary_value = details.get("summary")
    summary = read_summary(summary_value)
    note = None
    if summary is None and runner == "k6":
        omitted = summary_value.get("omitted") if isinstance(summary_value, Mapping) else None
        note = (
            f"k6's summary was not kept: {omitted}"
            if isinstance(omitted, str)
            else "k6 wrote no end-of-test summary (it stopped before the test ran, or was killed)"
        )
    tail = details.get("output_tail")
    return RunResults(
        runner=runner if isinstance(runner, str) else None,
        exit_code=_integer(details.get("exit_code")),
        k6_version=_text(details.get("k6_version")),
        summary=summary,
        note=note,
        output_tail=tail if isinstance(tail, str) else None,
    )


def parse_expression(expression: str) -> tuple[str, str, float] | None:
    """``"p(95) < 200"`` → ``("p(95)", "<", 200.0)``; None for what k6's grammar does not
    allow (k6 refuses such a threshold before the test starts, so none should be stored)."""
    found = _EXPRESSION.match(expression)
    if found is None:
        return None
    bound = float(found["bound"])
    if not math.isfinite(bound):
        return None
    return re.sub(r"\s+", "", found["aggregation"]), found["operator"], bound


def _thresholds(name: str, metric: Mapping[str, Any]) -> list[Threshold]:
    declared = metric.get("thresholds")
    if not isinstance(declared, Mapping):
        return []
    found = []
    for expression, state in declared.items():
        held = _held(state)
        if not isinstance(expression, str) or held is None:
            continue
        parsed = parse_expression(expression)
        if parsed is None:
            found.append(Threshold(metric=name, expression=expression, held=held))
            continue
        aggregation, operator, bound = parsed
        found.append(
            Threshold(
                metric=name,
                expression=expression,
                held=held,
                aggregation=aggregation,
                operator=operator,
                bound=bound,
                observed=_aggregate(metric, aggregation),
            )
        )
    return found


def _held(state: object) -> bool | None:
    if isinstance(state, bool):
        return not state  # --summary-export: true when the threshold was crossed
    if isinstance(state, Mapping) and isinstance(state.get("ok"), bool):
        return bool(state["ok"])  # handleSummary data
    return None


def _values(metric: Mapping[str, Any]) -> Mapping[str, Any]:
    values = metric.get("values")
    return values if isinstance(values, Mapping) else metric


def _aggregate(metric: Mapping[str, Any], aggregation: str) -> float | None:
    """The value of ``aggregation`` ("p(95)", "rate", "count", ...) in a metric of either
    shape. The export writes a rate metric's rate as ``value`` (beside passes and fails)."""
    values = _values(metric)
    if aggregation in values:
        return _number(values[aggregation])
    if aggregation == "p(50)":
        return _number(values.get("med"))
    if aggregation == "rate" and "passes" in values:
        return _number(values.get("value"))
    return None


def _stat(metrics: Mapping[str, Any], name: str, aggregation: str) -> float | None:
    metric = metrics.get(name)
    return _aggregate(metric, aggregation) if isinstance(metric, Mapping) else None


def _count(metrics: Mapping[str, Any], name: str, aggregation: str) -> int | None:
    value = _stat(metrics, name, aggregation)
    return round(value) if value is not None else None


def _key_metrics(metrics: Mapping[str, Any]) -> KeyMetrics:
    duration = metrics.get("http_req_duration")
    durations = None
    if isinstance(duration, Mapping):
        durations = Durations(
            p50=_aggregate(duration, "med"),
            p90=_aggregate(duration, "p(90)"),
            p95=_aggregate(duration, "p(95)"),
            p99=_aggregate(duration, "p(99)"),
            max=_aggregate(duration, "max"),
            avg=_aggregate(duration, "avg"),
        )
    checks = metrics.get("checks")
    checks_passed = checks_failed = None
    if isinstance(checks, Mapping):
        checks_passed = _count(metrics, "checks", "passes")
        checks_failed = _count(metrics, "checks", "fails")
    vus_max = _count(metrics, "vus_max", "max")
    return KeyMetrics(
        http_req_duration=durations,
        http_reqs=_count(metrics, "http_reqs", "count"),
        http_req_failed_rate=_stat(metrics, "http_req_failed", "rate"),
        iterations=_count(metrics, "iterations", "count"),
        vus_max=vus_max if vus_max is not None else _count(metrics, "vus_max", "value"),
        # k6 writes data counters with no HTTP too (as 0); a test with no network has 0 B.
        data_sent_bytes=_count(metrics, "data_sent", "count"),
        data_received_bytes=_count(metrics, "data_received", "count"),
        checks_passed=checks_passed,
        checks_failed=checks_failed,
    )


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
