"""Which test runs a report covers, read from the store.

A load test of the report's stack is covered when its name, or its project's name, is in
``services``, or when a URL in its runner settings or its script (the first 256 KiB) names
one of ``hosts``, or an environment value of its runner is one of them. Its runs are those
created within the period, read newest first from its run index, which is scored by
creation time.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from tickwork.core.runs import RunRecord
from tickwork.store import ReportRecord, Store
from tickwork.store.load_tests import LoadTestRecord
from tickwork.worker.reports.digest import DigestRun

SCRIPT_SCANNED_BYTES = 256 * 1024
RUNS_READ_CAP = 100_000
"""Runs read for one load test and one report at most: a bound on a report's cost."""

_URL_HOST = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/\s'\"`]*@)?(\[[0-9A-Fa-f:.]+\]|[^:/\s'\"`?#\\]+)"
)


def hosts_in(text: str) -> set[str]:
    """The host names of the URLs in ``text``, lower case."""
    return {match.group(1).strip("[]").lower() for match in _URL_HOST.finditer(text)}


def _targets(test: LoadTestRecord, script: bytes | None) -> set[str]:
    found = hosts_in(json.dumps(test.runner))
    env = test.runner.get("env")
    if isinstance(env, dict):
        found |= {value.lower() for value in env.values() if isinstance(value, str)}
    if script:
        found |= hosts_in(script.decode("utf-8", errors="replace"))
    return found


def covered(store: Store, report: ReportRecord) -> list[LoadTestRecord]:
    """The stack's load tests the report covers, by id."""
    hosts = {host.lower() for host in report.attrs.get("hosts") or []}
    services = set(report.attrs.get("services") or [])
    tests = store.load_tests.with_script_heads(report.stack, head_bytes=SCRIPT_SCANNED_BYTES)
    projects = store.projects.names(test.project_id for test, _ in tests) if services else {}
    chosen = []
    for test, script in tests:
        if test.stack != report.stack or test.kind:
            continue
        named = test.name in services or projects.get(test.project_id) in services
        if named or (hosts and hosts & _targets(test, script or None)):
            chosen.append(test)
    return chosen


def runs_within(
    store: Store, test: LoadTestRecord, start: datetime, end: datetime
) -> list[DigestRun]:
    """The load test's runs created in [start, end), newest first (at most RUNS_READ_CAP)."""
    runs, _ = store.runs.page(
        test.stack,
        skip=0,
        top=RUNS_READ_CAP,
        load_test_id=test.id,
        created_after=start,
        created_before=end,
        newest_first=True,
    )
    return [_digest_run(run, test.name) for run in runs]


def _digest_run(run: RunRecord, name: str) -> DigestRun:
    reason = run.details.get("reason")
    return DigestRun(
        run_id=run.id,
        load_test_id=run.load_test_id,
        load_test=name,
        status=run.status,
        result=run.result,
        created=run.created,
        reason=reason if isinstance(reason, str) else None,
        message=run.status_history[-1].message if run.status_history else None,
        p95_ms=p95_of(run.details),
    )


def p95_of(details: dict[str, Any]) -> float | None:
    """http_req_duration's p(95) from a k6 summary: the ``--summary-export`` form
    (``metrics.x["p(95)"]``) or the handleSummary form (``metrics.x.values["p(95)"]``)."""
    summary = details.get("summary")
    metrics = summary.get("metrics") if isinstance(summary, dict) else None
    metric = metrics.get("http_req_duration") if isinstance(metrics, dict) else None
    if not isinstance(metric, dict):
        return None
    values = metric.get("values")
    value = metric.get("p(95)", values.get("p(95)") if isinstance(values, dict) else None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
