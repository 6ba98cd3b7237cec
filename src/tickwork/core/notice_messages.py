"""What a notification says: each channel's default message, and user templates. Pure.

A user template is text with ``${name}`` placeholders (``$$`` is a literal ``$``), filled
from a fixed dictionary of text values (``VARIABLES``): substitution only, in the manner of
``string.Template``. Nothing in a template is evaluated; there is no attribute access, no
call, no loop, no format specification. An unknown name is refused when the template is
written (400 naming it), so a template that was accepted always renders.

Per channel type a template is:

- ``webhook``: the JSON body. Values are inserted as the inside of a JSON string (quotes and
  backslashes escaped, no quotes added): put text variables between quotes. It must be JSON
  once filled in with the sample event's values, or it is refused.
- ``slack``: the message text (Slack's mrkdwn), sent as ``{"text": ...}``.
- ``teams``: the message text, sent as one text block of an Adaptive Card.
- ``email``: the plain-text body; the channel's ``subject`` is a template too (default: the
  event's title).
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tickwork.core.instants import format_instant
from tickwork.core.k6_summary import Threshold
from tickwork.core.notices import ChannelType, EventKind, Notice
from tickwork.errors import Problem

MAX_TEMPLATE_CHARS = 10_000

VARIABLES: Mapping[str, str] = {
    "event.id": "the event's id (also sent as X-Tickwork-Event-Id)",
    "event.kind": "run_failed, run_error, run_timed_out, run_aborted, worker_lost, "
    "occurrence_skipped, schedule_expired, consecutive_failures, recovered (test: a test)",
    "event.title": "one line saying what happened, with the count held back if any",
    "event.at": "when it happened (RFC 3339, UTC)",
    "event.more": "events of this rule, kind and load test held back since the last message",
    "event.more_text": '"and 12 more since the last message", or empty',
    "text": "the default message as plain text (title, then one fact a line)",
    "stack.id": "the stack",
    "project.id": "the load test's project",
    "load_test.id": "the load test",
    "load_test.name": "its name",
    "run.id": "the run (empty for a skip or an expiry)",
    "run.status": "completed or aborted",
    "run.result": "passed, failed or error",
    "run.reason": "passed, failed, error, timed_out, aborted_by_user, worker_lost, worker_stopped",
    "run.message": "the ending's status message",
    "run.created": "when the run was created",
    "run.ended": "when it ended",
    "run.duration_s": "seconds from created to ended",
    "run.url": "the run in the API, under TICKWORK_PUBLIC_URL",
    "run.thresholds_failed": "the crossed k6 thresholds, '; '-separated "
    "(http_req_duration p(95)<200: 250.5, 50.5 past the bound)",
    "run.thresholds_failed_count": "how many k6 thresholds were crossed",
    "schedule.id": "the load test's schedule (empty when none)",
    "schedule.next_run": "its next run (empty when none remains)",
    "skip.reason": "overlap, missed or missed_outside_catch_up_window",
    "skip.count": "occurrences skipped",
    "skip.first": "the first of them",
    "skip.last": "the last of them",
    "failures.count": "consecutive failures reached (or, recovered: before the pass)",
}


class _Template(string.Template):
    # Dotted names over a fixed dictionary; nothing else (no attribute access, no format).
    idpattern = r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*"
    flags = re.NOFLAG


def template_problems(
    text: str, target: str, *, channel_type: ChannelType | None, sample: Notice
) -> list[Problem]:
    """What is wrong with a user template (empty: nothing). ``channel_type`` webhook: it
    must also be JSON once filled in with ``sample``'s values."""
    if len(text) > MAX_TEMPLATE_CHARS:
        message = f"{target} is longer than {MAX_TEMPLATE_CHARS} characters."
        return [Problem("too_long", target, message)]
    template = _Template(text)
    if not template.is_valid():
        return [
            Problem(
                "invalid_template",
                target,
                f"{target}: a $ that starts no ${{name}} at {_bad_dollar(text)}; write $$ for a "
                "literal $.",
            )
        ]
    unknown = sorted(set(template.get_identifiers()) - set(VARIABLES))
    if unknown:
        names = ", ".join(f"${{{name}}}" for name in unknown)
        return [
            Problem(
                "unknown_variable",
                target,
                f"{target}: {names} {'is' if len(unknown) == 1 else 'are'} not a template "
                "variable (see the README's list).",
            )
        ]
    if channel_type is ChannelType.WEBHOOK:
        try:
            json.loads(render(text, variables(sample), json_values=True))
        except ValueError as exc:
            return [
                Problem(
                    "invalid_json",
                    target,
                    f"{target} is not JSON once its variables are filled in ({exc}); put text "
                    "variables between quotes.",
                )
            ]
    return []


def _bad_dollar(text: str) -> str:
    found = _Template.pattern.search(text)
    while found is not None and found.group("invalid") is None:
        found = _Template.pattern.search(text, found.end())
    if found is None:
        return "?"
    index = found.start("invalid") - 1  # the group is empty, just after the $
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"line {line}, column {column}"


def render(text: str, values: Mapping[str, str], *, json_values: bool = False) -> str:
    """``text`` with its placeholders filled (a name not in ``values`` is left as written;
    templates are checked when written, so none is)."""
    if json_values:
        values = {name: json.dumps(value)[1:-1] for name, value in values.items()}
    return _Template(text).safe_substitute(values)


def variables(notice: Notice) -> dict[str, str]:
    """The template variables of ``notice``: every name of VARIABLES, as text."""
    run, skip = notice.run, notice.skip
    values = {
        "event.id": notice.event_id,
        "event.kind": notice.kind,
        "event.title": notice.title,
        "event.at": format_instant(notice.at),
        "event.more": str(notice.more),
        "event.more_text": f"and {notice.more} more since the last message" if notice.more else "",
        "text": plain_text(notice),
        "stack.id": str(notice.stack),
        "project.id": _text(notice.project_id),
        "load_test.id": _text(notice.load_test_id),
        "load_test.name": notice.load_test_name,
        "run.id": _text(run.id if run else None),
        "run.status": run.status if run else "",
        "run.result": (run.result or "") if run else "",
        "run.reason": (run.reason or "") if run else "",
        "run.message": (run.message or "") if run else "",
        "run.created": _instant(run.created if run else None),
        "run.ended": _instant(run.ended if run else None),
        "run.duration_s": _duration(notice),
        "run.url": notice.link or "",
        "run.thresholds_failed": "; ".join(
            threshold_text(t) for t in (run.thresholds_failed if run else ())
        ),
        "run.thresholds_failed_count": str(len(run.thresholds_failed)) if run else "0",
        "schedule.id": _text(notice.schedule_id),
        "schedule.next_run": _instant(notice.next_run),
        "skip.reason": skip.reason if skip else "",
        "skip.count": str(skip.count) if skip else "",
        "skip.first": _instant(skip.first_at if skip else None),
        "skip.last": _instant(skip.last_at if skip else None),
        "failures.count": str(notice.failures),
    }
    assert values.keys() == VARIABLES.keys()
    return values


def _text(value: int | None) -> str:
    return "" if value is None else str(value)


def _instant(value: datetime | None) -> str:
    return "" if value is None else format_instant(value)


def _duration(notice: Notice) -> str:
    run = notice.run
    if run is None or run.ended is None:
        return ""
    return f"{(run.ended - run.created).total_seconds():.1f}"


def _number(value: float) -> str:
    return f"{value:.6g}"


def threshold_text(threshold: Threshold) -> str:
    """``http_req_duration p(95)<200: 250.5, 50.5 past the bound``"""
    text = f"{threshold.metric} {threshold.expression}"
    if threshold.observed is None:
        return text + ": crossed"
    text += f": {_number(threshold.observed)}"
    excess = threshold.excess
    return text + (f", {_number(excess)} past the bound" if excess is not None else "")


def facts(notice: Notice) -> list[tuple[str, str]]:
    """The default message's facts, one (label, value) each, in the order shown."""
    run, skip = notice.run, notice.skip
    found: list[tuple[str, str]] = [("When", format_instant(notice.at))]
    if notice.load_test_id is not None:
        name = f"{notice.load_test_name} " if notice.load_test_name else ""
        found.append(("Load test", f"{name}(id {notice.load_test_id})"))
    if run is not None:
        outcome = run.status if run.result is None else f"{run.status}, {run.result}"
        found.append(("Result", outcome + (f" ({run.reason})" if run.reason else "")))
        if run.message:
            found.append(("Reason", run.message))
        duration = _duration(notice)
        if duration:
            found.append(("Duration", f"{duration} s"))
        if run.thresholds_failed:
            found.append(
                ("Thresholds failed", "; ".join(threshold_text(t) for t in run.thresholds_failed))
            )
    if skip is not None:
        found.append(("Skipped", f"{skip.count} ({skip.reason})"))
        span = format_instant(skip.first_at)
        if skip.last_at != skip.first_at:
            span += f" to {format_instant(skip.last_at)}"
        found.append(("Occurrences", span))
    if notice.kind in (EventKind.CONSECUTIVE_FAILURES, EventKind.RECOVERED):
        found.append(("Failures in a row", str(notice.failures)))
    if notice.schedule_id is not None:
        upcoming = format_instant(notice.next_run) if notice.next_run else "none remains"
        found.append(("Schedule", f"{notice.schedule_id}, next run: {upcoming}"))
    if notice.more:
        found.append(("Held back", f"{notice.more} more since the last message"))
    if notice.link:
        found.append(("Run", notice.link))
    found.append(("Event", notice.event_id))
    return found


def plain_text(notice: Notice) -> str:
    lines = [notice.title, ""] + [f"{label}: {value}" for label, value in facts(notice)]
    return "\n".join(lines)


def http_body(
    channel_type: ChannelType,
    notice: Notice,
    *,
    template: str | None,
) -> bytes:
    """The request body of a webhook, Slack or Teams message. ValueError when a webhook
    template did not give JSON for this event."""
    values = variables(notice)
    payload: Any
    if channel_type is ChannelType.WEBHOOK:
        if template is not None:
            text = render(template, values, json_values=True)
            json.loads(text)  # checked: a receiver gets JSON or nothing
            return text.encode()
        payload = webhook_payload(notice)
    elif channel_type is ChannelType.SLACK:
        payload = (
            {"text": render(template, values)} if template is not None else slack_payload(notice)
        )
    elif channel_type is ChannelType.TEAMS:
        payload = (
            _adaptive_card([_text_block(render(template, values))], link=None)
            if template is not None
            else teams_payload(notice)
        )
    else:
        raise ValueError(f"{channel_type} is not an HTTP channel")
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def mail_parts(notice: Notice, *, template: str | None, subject: str | None) -> tuple[str, str]:
    """(subject, plain-text body) of an e-mail."""
    values = variables(notice)
    title = render(subject, values) if subject is not None else notice.title
    body = render(template, values) if template is not None else plain_text(notice)
    return " ".join(title.split())[:250], body  # one line: a header cannot fold a newline in


def webhook_payload(notice: Notice) -> dict[str, Any]:
    run, skip = notice.run, notice.skip
    return {
        "event": {
            "id": notice.event_id,
            "kind": notice.kind,
            "title": notice.title,
            "at": format_instant(notice.at),
            "more": notice.more,
        },
        "stack": notice.stack,
        "project_id": notice.project_id,
        "load_test": None
        if notice.load_test_id is None
        else {"id": notice.load_test_id, "name": notice.load_test_name},
        "run": None
        if run is None
        else {
            "id": run.id,
            "status": run.status,
            "result": run.result,
            "reason": run.reason,
            "message": run.message,
            "created": format_instant(run.created),
            "ended": _instant(run.ended) or None,
            "url": notice.link,
            "thresholds_failed": [
                {
                    "metric": t.metric,
                    "expression": t.expression,
                    "observed": t.observed,
                    "bound": t.bound,
                    "excess": t.excess,
                }
                for t in run.thresholds_failed
            ],
        },
        "schedule": None
        if notice.schedule_id is None
        else {"id": notice.schedule_id, "next_run": _instant(notice.next_run) or None},
        "skip": None
        if skip is None
        else {
            "reason": skip.reason,
            "count": skip.count,
            "first": format_instant(skip.first_at),
            "last": format_instant(skip.last_at),
        },
        "consecutive_failures": notice.failures
        if notice.kind in (EventKind.CONSECUTIVE_FAILURES, EventKind.RECOVERED)
        else None,
        "text": plain_text(notice),
    }


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn reads these three as markup (links, mentions): escaped as it documents.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(notice: Notice) -> dict[str, Any]:
    lines = []
    for label, value in facts(notice):
        if label == "Run" and value.startswith(("http://", "https://")):
            lines.append(f"*Run:* <{value}|open the run>")
        else:
            lines.append(f"*{label}:* {_slack_escape(value)}")
    return {
        "text": notice.title,  # what notifications and clients without blocks show
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*{_slack_escape(notice.title)}*"},
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
        ],
    }


def _text_block(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _adaptive_card(body: list[dict[str, Any]], *, link: str | None) -> dict[str, Any]:
    """A Teams message: one Adaptive Card, the shape both Teams' Workflows webhooks and its
    older incoming webhooks accept."""
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if link is not None:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open the run", "url": link}]
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def teams_payload(notice: Notice) -> dict[str, Any]:
    shown = [(label, value) for label, value in facts(notice) if label != "Run"]
    link = notice.link if notice.link and notice.link.startswith(("http://", "https://")) else None
    if notice.link and link is None:
        shown.append(("Run", notice.link))
    body = [
        _text_block(notice.title, weight="Bolder", size="Medium"),
        {"type": "FactSet", "facts": [{"title": label, "value": value} for label, value in shown]},
    ]
    return _adaptive_card(body, link=link)
