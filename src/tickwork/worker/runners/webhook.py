"""The webhook runner: POST a JSON description of the run, signed with HMAC-SHA256.

The receiver checks ``X-Tickwork-Signature-256: sha256=<hex>``, the HMAC-SHA256 of the raw
body under the shared secret (TICKWORK_WEBHOOK_SECRET), as GitHub's webhooks do. The body
is the same on every attempt (``X-Tickwork-Attempt`` says which one), so a receiver can
de-duplicate on ``run_id``. 2xx is passed; another answer failed. Connection errors and 5xx
answers are retried with exponential backoff and jitter, within the run's time limit.
Redirects are not followed: a 3xx is an answer, and failed. Only addresses the egress
policy allows are reached (tickwork.egress); a refused one ends the run in error, at once.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import secrets
import threading
import time
from typing import Any

from tickwork import __version__, egress
from tickwork.core.instants import format_instant
from tickwork.core.lifecycle import Outcome
from tickwork.core.runner_specs import WebhookSpec
from tickwork.worker.runners.base import RunInput, RunnerOptions, Verdict

SIGNATURE_HEADER = "X-Tickwork-Signature-256"
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 8.0
RESPONSE_KEPT_BYTES = 4096

_random = secrets.SystemRandom()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookRunner:
    def __init__(
        self,
        spec: WebhookSpec,
        options: RunnerOptions,
        *,
        backoff_first_s: float = BACKOFF_FIRST_S,
        resolve: egress.Resolver = egress.system_resolver,
    ) -> None:
        self._spec = spec
        self._options = options
        self._backoff_first_s = backoff_first_s
        self._resolve = resolve

    def run(self, run: RunInput, cancel: threading.Event) -> Verdict:
        secret = self._options.webhook_secret
        if not secret:
            return Verdict(
                outcome=Outcome.ERROR,
                detail="webhooks are signed: set TICKWORK_WEBHOOK_SECRET on the worker",
            )
        body = _body(run)
        headers = {
            **self._spec.headers,
            "Content-Type": "application/json",
            "User-Agent": f"tickwork/{__version__}",
            "X-Tickwork-Run-Id": str(run.run_id),
            SIGNATURE_HEADER: signature(secret, body),
        }
        deadline = time.monotonic() + run.time_limit_s
        attempts: list[dict[str, Any]] = []
        for attempt in range(1, self._spec.max_attempts + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            answer = self._post(body, {**headers, "X-Tickwork-Attempt": str(attempt)}, remaining)
            attempts.append(answer)
            if answer.get("refused"):
                return Verdict(
                    outcome=Outcome.ERROR, detail=answer["error"], details=_details(attempts)
                )
            status = answer.get("status")
            if isinstance(status, int) and 200 <= status < 300:
                return Verdict(outcome=Outcome.PASSED, details=_details(attempts))
            if isinstance(status, int) and status < 500:
                return Verdict(
                    outcome=Outcome.FAILED,
                    detail=f"the webhook answered {status}",
                    details=_details(attempts),
                )
            if attempt == self._spec.max_attempts:
                break
            delay = min(self._backoff_first_s * 2 ** (attempt - 1), BACKOFF_MAX_S)
            delay *= _random.uniform(0.5, 1.0)  # spread the retries of many runs apart
            if time.monotonic() + delay >= deadline:
                break  # no time left for another attempt: the last answer stands
            if cancel.wait(delay):
                return Verdict(
                    outcome=Outcome.ABORTED_BY_USER,
                    detail="webhook retries stopped",
                    details=_details(attempts),
                )
        return _last_word(attempts, deadline, run.time_limit_s)

    def _post(self, body: bytes, headers: dict[str, str], timeout_s: float) -> dict[str, Any]:
        started = time.monotonic()
        try:
            answer = egress.post(
                self._spec.url,
                body,
                headers,
                timeout_s=timeout_s,
                policy=self._options.egress,
                resolve=self._resolve,
                keep_bytes=RESPONSE_KEPT_BYTES,
            )
        except egress.EgressRefused as exc:
            # Not retried: the same name gives the same answer, or one not to be trusted.
            elapsed_s = round(time.monotonic() - started, 3)
            return {"error": str(exc), "refused": True, "elapsed_s": elapsed_s}
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # HTTPException: an answer that is not HTTP; retried like a dropped connection.
            return {"error": str(exc), "elapsed_s": round(time.monotonic() - started, 3)}
        return {
            "status": answer.status,
            "response": answer.body.decode("utf-8", errors="replace"),
            "elapsed_s": round(time.monotonic() - started, 3),
        }


def _body(run: RunInput) -> bytes:
    payload = {
        "event": "test_run",
        "run_id": run.run_id,
        "load_test_id": run.load_test_id,
        "project_id": run.project_id,
        "stack": run.stack,
        "schedule_id": run.schedule_id,
        "scheduled_for": format_instant(run.scheduled_for) if run.scheduled_for else None,
        "created": format_instant(run.created),
        "time_limit_s": run.time_limit_s,
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def _details(attempts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"runner": "webhook", "attempts": attempts}


def _last_word(attempts: list[dict[str, Any]], deadline: float, limit_s: float) -> Verdict:
    details = _details(attempts)
    if not attempts or (time.monotonic() >= deadline and "error" in attempts[-1]):
        return Verdict(
            outcome=Outcome.TIMED_OUT,
            detail=f"no answer from the webhook within the {limit_s:g} s limit",
            details=details,
        )
    last = attempts[-1]
    if "status" in last:
        return Verdict(
            outcome=Outcome.FAILED,
            detail=f"the webhook answered {last['status']} after {len(attempts)} attempts",
            details=details,
        )
    return Verdict(
        outcome=Outcome.ERROR,
        detail=f"the webhook could not be reached after {len(attempts)} attempts: {last['error']}",
        details=details,
    )
