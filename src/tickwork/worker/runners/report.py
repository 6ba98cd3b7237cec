"""The report runner: build the digest a report schedule asks for, and send it.

Unlike the other runners it reads the store (the report, the load tests and runs it covers)
and notes the execution on the report (its ``start_timestamp``/``end_timestamp``); the run's
own record is still written by the job. The window is the last whole period that ended at or
before the occurrence the run is for (or, for a run started by hand, before it was created).

Outcomes: passed when every address took the report; failed when one refused it (an SMTP
recipient refused, a webhook answered non-2xx); error when it could not be sent at all (no
SMTP server configured or reachable, no webhook secret, a webhook unreachable) or the report
is gone.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tickwork.core.instants import format_instant
from tickwork.core.lifecycle import Outcome
from tickwork.core.reports import report_window
from tickwork.core.runner_specs import ReportSpec
from tickwork.store import ReportRecord, Store
from tickwork.worker.reports import digest, gather, mail, webhooks
from tickwork.worker.runners.base import RunInput, RunnerOptions, Verdict

SMTP_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class _Delivery:
    outcome: Outcome
    detail: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class ReportRunner:
    def __init__(
        self,
        spec: ReportSpec,
        options: RunnerOptions,
        store: Store,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self._spec = spec
        self._options = options
        self._store = store
        self._clock = clock

    def run(self, run: RunInput, cancel: threading.Event) -> Verdict:
        deadline = time.monotonic() + run.time_limit_s
        report = self._store.reports.get_any(self._spec.report_id)
        if report is None or report.stack != run.stack:
            return Verdict(
                outcome=Outcome.ERROR,
                detail=f"report schedule {self._spec.report_id} no longer exists",
            )
        attrs = report.attrs
        start, end = report_window(
            attrs["schedule"], attrs["timezone"], at=run.scheduled_for or run.created
        )
        runs = [
            found
            for test in gather.covered(self._store, report)
            for found in gather.runs_within(self._store, test, start, end)
        ]
        result = digest.build(
            runs,
            report_id=report.id,
            name=attrs["name"],
            period=attrs["schedule"],
            time_zone=attrs["timezone"],
            start=start,
            end=end,
            base_url=self._options.public_url,
        )
        details: dict[str, Any] = {
            "runner": "report",
            "report_id": report.id,
            "window": {"start": format_instant(start), "end": format_instant(end)},
            "totals": result.totals.as_json(),
        }
        if cancel.is_set():
            return Verdict(outcome=Outcome.ABORTED_BY_USER, detail="not sent", details=details)
        if attrs["send_via"] == "email":
            delivery = self._mail(report, result, deadline)
        else:
            delivery = self._post(report, result, run.run_id, deadline, cancel)
        self._store.reports.record_run(report.id, at=self._clock())
        return Verdict(
            outcome=delivery.outcome,
            detail=delivery.detail,
            details=details | delivery.details,
        )

    def _mail(self, report: ReportRecord, result: digest.Digest, deadline: float) -> _Delivery:
        smtp = self._options.smtp
        if smtp is None:
            return _Delivery(
                Outcome.ERROR, "no SMTP server: set TICKWORK_SMTP_URL or TICKWORK_SMTP_HOST"
            )
        to = list(report.attrs["send_to"])
        message = mail.message(smtp, to, digest.subject(result), digest.text(result))
        timeout_s = max(min(deadline - time.monotonic(), SMTP_TIMEOUT_S), 1.0)
        sent = mail.send(smtp, message, to, timeout_s=timeout_s)
        details = {"sent_to": [a for a in to if a not in sent.refused], "refused": sent.refused}
        if sent.error is not None:
            return _Delivery(Outcome.ERROR, f"the report could not be mailed: {sent.error}")
        if sent.rejected is not None:
            return _Delivery(Outcome.FAILED, f"the SMTP server refused the report: {sent.rejected}")
        if sent.refused:
            refused = ", ".join(sorted(sent.refused))
            return _Delivery(Outcome.FAILED, f"refused by the SMTP server for {refused}", details)
        return _Delivery(Outcome.PASSED, details=details)

    def _post(
        self,
        report: ReportRecord,
        result: digest.Digest,
        run_id: int,
        deadline: float,
        cancel: threading.Event,
    ) -> _Delivery:
        secret = self._options.webhook_secret
        if not secret:
            return _Delivery(
                Outcome.ERROR, "webhooks are signed: set TICKWORK_WEBHOOK_SECRET on the worker"
            )
        body = json.dumps(digest.as_json(result, run_id=run_id), separators=(",", ":")).encode()
        posted = webhooks.post_all(
            list(report.attrs["send_to"]),
            body,
            secret=secret,
            deadline=deadline,
            cancel=cancel,
            policy=self._options.egress,
        )
        details = {"webhooks": [p.as_json() for p in posted]}
        if all(p.delivered for p in posted):
            return _Delivery(Outcome.PASSED, details=details)
        answered = [p for p in posted if p.status is not None and not p.delivered]
        if answered:
            what = ", ".join(f"{p.url} answered {p.status}" for p in answered)
            return _Delivery(Outcome.FAILED, what, details)
        unreachable = ", ".join(f"{p.url}: {p.error}" for p in posted if not p.delivered)
        return _Delivery(Outcome.ERROR, f"webhooks unreachable: {unreachable}", details)
