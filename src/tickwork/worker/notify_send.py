"""Sending one notification: a POST (webhook, Slack, Teams) or an e-mail, retried with
backoff while it may still pass, within a bounded time.

Retried: network errors, HTTP 5xx and 429, SMTP 4xx replies and unreachable servers. Not
retried: other answers (a 4xx, a 3xx: redirects are not followed), an address the egress
policy refuses, an SMTP 5xx. Every attempt of one delivery sends the same bytes with the same
``X-Tickwork-Event-Id`` (an e-mail: the same Message-ID), so a receiver that took an attempt
whose answer was lost can recognise the retry and drop it.

Nothing a receiver learns from tickwork is written where people read: errors and answers are
scrubbed of the channel's URL, secret and header values before they are kept or logged.
"""

from __future__ import annotations

import http.client
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.message import EmailMessage

from tickwork import egress
from tickwork.core.egress import EgressPolicy
from tickwork.worker.reports import mail
from tickwork.worker.reports.mail import SmtpOptions

BACKOFF_MAX_S = 15.0
RESPONSE_KEPT_CHARS = 512
_random = secrets.SystemRandom()


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt's outcome: the answer's status (HTTP, or the SMTP reply code) if any."""

    status: int | None
    error: str | None = None
    response: str | None = None
    sent: bool = False
    retry: bool = False  # worth another attempt


def with_retries(
    attempt: Callable[[float], Attempt],
    *,
    deadline: float,
    attempt_timeout_s: float,
    backoff_first_s: float,
    single: bool,
    on_attempt: Callable[[int, Attempt], None],
    wait: Callable[[float], None] = time.sleep,
) -> tuple[Attempt, int]:
    """Attempts until one is sent or refused for good, or the next would start after
    ``deadline`` (monotonic); the last outcome and how many attempts were made. The first
    attempt is always made; ``single``: only it."""
    made = 0
    while True:
        remaining = deadline - time.monotonic()
        outcome = attempt(max(1.0, min(attempt_timeout_s, remaining)))
        made += 1
        on_attempt(made, outcome)
        if outcome.sent or not outcome.retry or single:
            return outcome, made
        delay = min(backoff_first_s * 2 ** (made - 1), BACKOFF_MAX_S)
        delay *= _random.uniform(0.5, 1.0)  # spread the retries of many deliveries apart
        if time.monotonic() + delay >= deadline:
            return outcome, made
        wait(delay)


def scrub(text: str, hidden: Iterable[str]) -> str:
    """``text`` with every secret in ``hidden`` (URLs, their paths, keys, header values)
    replaced, longest first."""
    for secret in sorted({s for s in hidden if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "[secret]")
    return text


def post_once(
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
    *,
    policy: EgressPolicy,
    resolve: egress.Resolver,
    hidden: Iterable[str],
) -> Attempt:
    try:
        answer = egress.post(
            url,
            body,
            headers,
            timeout_s=timeout_s,
            policy=policy,
            resolve=resolve,
            keep_bytes=RESPONSE_KEPT_CHARS * 4,
        )
    except egress.EgressRefused as exc:
        return Attempt(None, scrub(str(exc), hidden))
    except ValueError as exc:  # a URL http.client cannot send to: the same on every attempt
        return Attempt(None, scrub(f"{type(exc).__name__}: {exc}", hidden))
    except (OSError, http.client.HTTPException) as exc:
        text = str(exc) or type(exc).__name__
        return Attempt(None, scrub(f"{type(exc).__name__}: {text}", hidden), retry=True)
    response = scrub(answer.body.decode("utf-8", errors="replace"), hidden)[:RESPONSE_KEPT_CHARS]
    if 200 <= answer.status < 300:
        return Attempt(answer.status, response=response, sent=True)
    return Attempt(
        answer.status,
        f"the receiver answered {answer.status}",
        response,
        retry=answer.status == 429 or answer.status >= 500,
    )


def mail_once(
    options: SmtpOptions | None, message: EmailMessage, to: list[str], timeout_s: float
) -> Attempt:
    if options is None:
        return Attempt(
            None, "no SMTP server is configured: set TICKWORK_SMTP_URL (or _HOST) on the workers"
        )
    outcome = mail.send(options, message, to, timeout_s=timeout_s)
    if outcome.error is not None:
        return Attempt(None, f"the SMTP server could not be reached: {outcome.error}", retry=True)
    if outcome.rejected is not None:
        code = _code(outcome.rejected)
        return Attempt(
            code,
            f"the SMTP server refused the message: {outcome.rejected}",
            retry=code is not None and 400 <= code < 500,
        )
    if outcome.refused:
        refused = "; ".join(
            f"{address}: {answer}" for address, answer in sorted(outcome.refused.items())
        )
        if len(outcome.refused) == len(to):
            codes = [_code(answer) for answer in outcome.refused.values()]
            transient = all(c is not None and 400 <= c < 500 for c in codes)
            return Attempt(codes[0], f"every recipient was refused: {refused}", retry=transient)
        return Attempt(250, f"some recipients were refused: {refused}", sent=True)
    return Attempt(250, sent=True)


def _code(reply: str) -> int | None:
    head = reply[:3]
    return int(head) if head.isdigit() else None
