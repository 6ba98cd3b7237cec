"""The schedule edit form <-> a CreateScheduleRequest document, and the API's validation
problems placed next to the fields they name. Pure.

The form's field names are the request's own dotted targets (``cron.schedule``,
``recurrence_rule.count``), so a problem the API reports for a target is shown beside the
field of that name, in the API's words. Integers are passed as typed: "3" becomes 3, and
anything else is passed through as text so that the API's own type error names the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from tickwork.core.instants import format_instant
from tickwork.errors import Problem

KINDS = ("once", "cron", "rule")
FIELDS = (
    "starts",
    "cron.schedule",
    "cron.time_zone",
    "cron.dst.gap",
    "cron.dst.repeat",
    "recurrence_rule.frequency",
    "recurrence_rule.interval",
    "recurrence_rule.byday",
    "recurrence_rule.count",
    "recurrence_rule.until",
    "overlap",
    "catch_up_seconds",
    "jitter_seconds",
)
GENERAL = "form"
"""Where a problem that names no field of the form is shown."""
_INTEGER = re.compile(r"-?[0-9]+")

Values = Mapping[str, Sequence[str]]


def _first(values: Values, name: str) -> str:
    found = values.get(name)
    return found[0].strip() if found else ""


def _integer(text: str) -> int | str:
    return int(text) if _INTEGER.fullmatch(text) else text


def request_document(values: Values) -> dict[str, Any]:
    """The CreateScheduleRequest the form describes (not validated: the API does that)."""
    kind = _first(values, "kind") or "once"
    document: dict[str, Any] = {"starts": _first(values, "starts")}
    if kind == "cron":
        document["cron"] = {
            "schedule": _first(values, "cron.schedule"),
            "time_zone": _first(values, "cron.time_zone"),
        }
        gap = _first(values, "cron.dst.gap") or "shift"
        repeat = _first(values, "cron.dst.repeat") or "first"
        if (gap, repeat) != ("shift", "first"):  # absent unless set, as the API echoes it
            document["cron"]["dst"] = {"gap": gap, "repeat": repeat}
    elif kind == "rule":
        rule: dict[str, Any] = {"frequency": _first(values, "recurrence_rule.frequency")}
        for name in ("interval", "count"):
            text = _first(values, f"recurrence_rule.{name}")
            if text:
                rule[name] = _integer(text)
        days = [day for day in values.get("recurrence_rule.byday", ()) if day]
        if days:
            rule["byday"] = days
        until = _first(values, "recurrence_rule.until")
        if until:
            rule["until"] = until
        document["recurrence_rule"] = rule
    overlap = _first(values, "overlap")
    if overlap:
        document["overlap"] = overlap
    catch_up = _first(values, "catch_up_seconds")
    if catch_up:
        document["catch_up_seconds"] = _integer(catch_up)
    jitter = _first(values, "jitter_seconds")
    if jitter:
        document["jitter_seconds"] = _integer(jitter)
    return document


def field_of(target: str | None) -> str:
    """The form field a problem's target names ("recurrence_rule.byday.1" -> the byday
    boxes; "cron" or "recurrence_rule" as a whole -> the choice of kind)."""
    if not target:
        return GENERAL
    for name in FIELDS:
        if target == name or target.startswith(name + "."):
            return name
    if target in ("cron", "recurrence_rule"):
        return "kind"
    return GENERAL


def field_errors(problems: Sequence[Problem]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for problem in problems:
        found.setdefault(field_of(problem.target), []).append(problem.message)
    return found


def form_values(stored: Mapping[str, Any] | None, *, now: datetime, zone: str) -> dict[str, Any]:
    """The form's initial values: a stored request's (its JSON as the store echoes it), or
    a one-shot a minute from now for a load test without a schedule."""
    if stored is None:
        starts = (now + timedelta(minutes=1)).replace(microsecond=0)
        return {
            "kind": "once",
            "starts": format_instant(starts),
            "cron.schedule": "0 9 * * 1-5",
            "cron.time_zone": zone,
            "recurrence_rule.frequency": "DAILY",
            "recurrence_rule.interval": "1",
            "recurrence_rule.byday": [],
            "recurrence_rule.count": "",
            "recurrence_rule.until": "",
            "cron.dst.gap": "shift",
            "cron.dst.repeat": "first",
            "overlap": "skip",
            "catch_up_seconds": "",
            "jitter_seconds": "",
        }
    cron = stored.get("cron") or {}
    rule = stored.get("recurrence_rule") or {}
    kind = "cron" if stored.get("cron") else "rule" if stored.get("recurrence_rule") else "once"
    catch_up = stored.get("catch_up_seconds")
    jitter = stored.get("jitter_seconds")
    dst = cron.get("dst") or {}
    return {
        "kind": kind,
        "starts": str(stored.get("starts") or ""),
        "cron.schedule": cron.get("schedule", "0 9 * * 1-5"),
        "cron.time_zone": cron.get("time_zone", zone),
        "cron.dst.gap": dst.get("gap") or "shift",
        "cron.dst.repeat": dst.get("repeat") or "first",
        "recurrence_rule.frequency": rule.get("frequency", "DAILY"),
        "recurrence_rule.interval": str(rule.get("interval") or 1),
        "recurrence_rule.byday": list(rule.get("byday") or []),
        "recurrence_rule.count": "" if rule.get("count") is None else str(rule["count"]),
        "recurrence_rule.until": str(rule.get("until") or ""),
        "overlap": stored.get("overlap") or "skip",
        "catch_up_seconds": "" if catch_up is None else str(catch_up),
        "jitter_seconds": "" if jitter is None else str(jitter),
    }


def values_of(values: Values) -> dict[str, Any]:
    """Submitted values in ``form_values``' shape (to show the form again as it was sent)."""
    shown: dict[str, Any] = {name: _first(values, name) for name in ("kind", *FIELDS)}
    shown["recurrence_rule.byday"] = list(values.get("recurrence_rule.byday", ()))
    shown["kind"] = shown["kind"] if shown["kind"] in KINDS else "once"
    return shown
