"""What runs found (tickwork extensions of the k6 v6 API): a run's k6 summary and output
tail, and a load test's key metrics over its last runs.

Same auth and 404 rules as every run route: another stack's run or load test is a 404. The
numbers are those the worker kept in the run's details (see ``tickwork.core.k6_summary``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from tickwork.api.deps import Caller, Context, PlainInt, ResourceId
from tickwork.api.openapi import error_responses
from tickwork.api.render import json_response
from tickwork.core.instants import format_instant
from tickwork.core.k6_summary import KeyMetrics, RunResults, Threshold, run_results
from tickwork.core.lifecycle import Status, is_terminal
from tickwork.dialects.k6_runs import run_fields
from tickwork.store import RunRecord

router = APIRouter(prefix="/cloud/v6", tags=["test_runs"])

TREND_DEFAULT = 10
TREND_MAX = 100
_SCAN_PAGE = 200
"""Runs read per store call while looking for finished ones (skipped records are passed)."""


class ThresholdApiModel(BaseModel):
    metric: str = Field(
        description="The metric, or sub-metric such as `http_req_duration{status:200}`."
    )
    expression: str = Field(description="As the script wrote it, e.g. `p(95)<200`.")
    ok: bool = Field(description="Whether the threshold held.")
    aggregation: str | None = Field(description="`p(95)`, `rate`, `count`, `avg`, ...")
    operator: str | None
    bound: float | None
    observed: float | None = Field(
        description="The value k6 compared with the bound, when its summary lists it "
        "(milliseconds for durations, 0 to 1 for rates)."
    )
    excess: float | None = Field(
        description="For a crossed threshold: how far `observed` is past `bound`."
    )


class DurationsApiModel(BaseModel):
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    max: float | None
    avg: float | None


class KeyMetricsApiModel(BaseModel):
    http_req_duration: DurationsApiModel | None = Field(
        description="Milliseconds; null when the test made no HTTP request."
    )
    http_reqs: int | None
    http_req_failed_rate: float | None = Field(description="From 0 to 1.")
    iterations: int | None
    vus_max: int | None
    data_sent_bytes: int | None
    data_received_bytes: int | None
    checks_passed: int | None
    checks_failed: int | None


class TestRunSummaryApiModel(BaseModel):
    """tickwork extension: what the run's k6 execution found."""

    __test__ = False  # not a pytest test class, whatever its name says

    test_run_id: int
    runner: str | None = Field(description="`k6`, `command`, `webhook`; null before it ran.")
    k6_version: str | None
    exit_code: int | None
    thresholds: list[ThresholdApiModel] = Field(description="Crossed ones first.")
    metrics: KeyMetricsApiModel | None = Field(
        description="Null when there is no k6 summary (see `note`)."
    )
    note: str | None = Field(description="Why a k6 run has no summary.")


class TestRunOutputApiModel(BaseModel):
    """tickwork extension: the end of what the run's k6 (or command) printed."""

    __test__ = False

    test_run_id: int
    runner: str | None
    exit_code: int | None
    output_tail: str | None = Field(description="The last 16 KiB of the output.")


class TrendPointApiModel(BaseModel):
    test_run_id: int
    created: str = Field(json_schema_extra={"format": "date-time"})
    ended: str | None = Field(json_schema_extra={"format": "date-time"})
    status: str
    result: str | None
    execution_duration: int = Field(description="Seconds it ran.")
    thresholds_crossed: list[str] = Field(description="`metric: expression` of each.")
    metrics: KeyMetricsApiModel | None


class LoadTestTrendApiModel(BaseModel):
    """tickwork extension: key metrics of the load test's last finished runs."""

    load_test_id: int
    value: list[TrendPointApiModel] = Field(description="Newest first.")


def _threshold(threshold: Threshold) -> ThresholdApiModel:
    return ThresholdApiModel(
        metric=threshold.metric,
        expression=threshold.expression,
        ok=threshold.held,
        aggregation=threshold.aggregation,
        operator=threshold.operator,
        bound=threshold.bound,
        observed=threshold.observed,
        excess=threshold.excess,
    )


def _metrics(metrics: KeyMetrics) -> KeyMetricsApiModel:
    durations = metrics.http_req_duration
    return KeyMetricsApiModel(
        http_req_duration=DurationsApiModel(
            p50=durations.p50,
            p90=durations.p90,
            p95=durations.p95,
            p99=durations.p99,
            max=durations.max,
            avg=durations.avg,
        )
        if durations is not None
        else None,
        http_reqs=metrics.http_reqs,
        http_req_failed_rate=metrics.http_req_failed_rate,
        iterations=metrics.iterations,
        vus_max=metrics.vus_max,
        data_sent_bytes=metrics.data_sent_bytes,
        data_received_bytes=metrics.data_received_bytes,
        checks_passed=metrics.checks_passed,
        checks_failed=metrics.checks_failed,
    )


def _summary_model(run_id: int, results: RunResults) -> TestRunSummaryApiModel:
    summary = results.summary
    return TestRunSummaryApiModel(
        test_run_id=run_id,
        runner=results.runner,
        k6_version=results.k6_version,
        exit_code=results.exit_code,
        thresholds=[_threshold(t) for t in summary.thresholds] if summary else [],
        metrics=_metrics(summary.metrics) if summary else None,
        note=results.note,
    )


@router.get(
    "/test_runs/{id}/summary",
    operation_id="test_runs_summary_retrieve",
    summary="Get what a test run's k6 found (tickwork extension).",
    description="Each threshold with its expression, whether it held and the value k6 "
    "compared; the key metrics (http_req_duration p50/p90/p95/p99/max, http_req_failed rate, "
    "iterations, VUs, data sent and received, checks); the k6 version and exit code. Empty "
    "until the run has ended, and for runners other than k6.",
    response_model=TestRunSummaryApiModel,
    responses=error_responses(404),
)
def get_test_run_summary(id: ResourceId, caller: Caller, context: Context) -> Response:
    run = context.store.runs.get(caller.stack, id)
    return json_response(_summary_model(run.id, run_results(run.details)))


@router.get(
    "/test_runs/{id}/output",
    operation_id="test_runs_output_retrieve",
    summary="Get the end of a test run's output (tickwork extension).",
    response_model=TestRunOutputApiModel,
    responses=error_responses(404),
)
def get_test_run_output(id: ResourceId, caller: Caller, context: Context) -> Response:
    run = context.store.runs.get(caller.stack, id)
    results = run_results(run.details)
    return json_response(
        TestRunOutputApiModel(
            test_run_id=run.id,
            runner=results.runner,
            exit_code=results.exit_code,
            output_tail=results.output_tail,
        )
    )


TrendLimit = Annotated[
    int,
    PlainInt,
    Query(ge=1, le=TREND_MAX, description="How many runs (default 10, at most 100)."),
]


@router.get(
    "/load_tests/{id}/trend",
    operation_id="load_tests_trend_retrieve",
    summary="Get the key metrics of a load test's last runs (tickwork extension).",
    description="Its last `limit` finished runs (completed or aborted; skipped occurrences "
    "are left out), newest first, each with its key metrics and crossed thresholds.",
    tags=["load_tests"],
    response_model=LoadTestTrendApiModel,
    responses=error_responses(404),
)
def get_load_test_trend(
    id: ResourceId, caller: Caller, context: Context, limit: TrendLimit = TREND_DEFAULT
) -> Response:
    context.store.load_tests.get(caller.stack, id)
    now = context.clock()
    points = [_point(run, now=now) for run in _finished(context, caller.stack, id, limit)]
    return json_response(LoadTestTrendApiModel(load_test_id=id, value=points))


def _finished(context: Context, stack: int, load_test_id: int, limit: int) -> list[RunRecord]:
    """The newest ``limit`` runs of the load test that ran and ended."""
    found: list[RunRecord] = []
    skip = 0
    while len(found) < limit:
        runs, total = context.store.runs.page(
            stack, skip=skip, top=_SCAN_PAGE, load_test_id=load_test_id, newest_first=True
        )
        found += [r for r in runs if is_terminal(r.status) and r.status != Status.SKIPPED]
        skip += _SCAN_PAGE
        if skip >= total:
            break
    return found[:limit]


def _point(run: RunRecord, *, now: datetime) -> TrendPointApiModel:
    summary = run_results(run.details).summary
    duration = run_fields(run, now=now)["execution_duration"]
    return TrendPointApiModel(
        test_run_id=run.id,
        created=format_instant(run.created),
        ended=format_instant(run.ended) if run.ended else None,
        status=run.status,
        result=run.result,
        execution_duration=duration if isinstance(duration, int) else 0,
        thresholds_crossed=[f"{t.metric}: {t.expression}" for t in summary.crossed]
        if summary
        else [],
        metrics=_metrics(summary.metrics) if summary else None,
    )
