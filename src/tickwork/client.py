"""A small client of the k6 v6 API for people (tables) and scripts (``--json``).

Only the standard library (and tickwork's pure core): the CLI client must work in any
tickwork install. Also here: how the client commands write values for people (tables,
durations, sizes) and read the instants people type.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tickwork.core.instants import InstantError, parse_instant
from tickwork.errors import Problem, TickworkError


class ApiError(TickworkError):
    """The API answered with an error body, or could not be reached."""

    code = "api_error"

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass(frozen=True, slots=True)
class Client:
    base_url: str
    token: str
    stack: int
    timeout_s: float = 30.0

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> Any:
        """Send one request (``body`` as JSON, or ``data`` as ``content_type``); the decoded
        JSON answer (None for 204). ApiError otherwise."""
        if body is not None:
            data, content_type = json.dumps(body).encode(), "application/json"
        request = urllib.request.Request(  # noqa: S310  (the URL is the operator's setting)
            self.base_url.rstrip("/") + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "X-Stack-Id": str(self.stack),
                "Accept": "application/json",
                "X-Tickwork-Client": "cli",  # the audit trail says a change came from here
                **({"Content-Type": content_type} if content_type else {}),
                **(headers or {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                error = json.loads(raw)
                details = error["error"].get("details") or []
                message = problem_lines(
                    error["error"]["message"],
                    [Problem(d["code"], d.get("target"), d["message"]) for d in details],
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                error, message = raw.decode(errors="replace"), f"HTTP {exc.code}"
            raise ApiError(exc.code, message, error) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ApiError(0, f"cannot reach {self.base_url}: {exc}") from exc
        return json.loads(raw) if raw else None

    def all_pages(self, path: str) -> list[dict[str, Any]]:
        """Every item of a paginated k6 list, following ``$skip`` until the last page."""
        items: list[dict[str, Any]] = []
        while True:
            separator = "&" if "?" in path else "?"
            page = self.call("GET", f"{path}{separator}$skip={len(items)}&$top=1000")
            items += page["value"]
            if "@nextLink" not in page or not page["value"]:
                return items


def problem_lines(message: str, problems: Sequence[Problem]) -> str:
    """An error as the client commands print it: the message, then one line per field."""
    return message + "".join(f"\n  {p.target or '-'}: {p.message} ({p.code})" for p in problems)


def instant_argument(text: str, *, now: datetime | None = None) -> datetime:
    """An instant as people type it on a command line: an RFC 3339 date-time (UTC when it
    has no offset, as the API's run filters read it), a date (its midnight, UTC), or with
    ``now`` a span back from it ("90m", "6h", "2d"). InstantError otherwise."""
    text = text.strip()
    span = re.fullmatch(r"(\d{1,6})\s*([smhd])", text)
    if span is not None and now is not None:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[span[2]]
        return now - timedelta(**{unit: int(span[1])})
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        except ValueError as exc:
            raise InstantError("invalid_datetime", f"{text!r} is not a valid date.") from exc
    try:
        try:
            return parse_instant(text)
        except InstantError as exc:
            if exc.code != "offset_required":
                raise
            return parse_instant(text + "Z")
    except InstantError as exc:
        if exc.code != "invalid_datetime":
            raise
        forms = (
            "an ISO-8601 date-time, a date (YYYY-MM-DD), or a span back from now (90m, 6h, 2d)"
            if now is not None
            else "an ISO-8601 date-time or a date (YYYY-MM-DD)"
        )
        raise InstantError("invalid_datetime", f"{text!r} is not {forms}.") from None


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table, one row per item, columns sized to their widest cell."""
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def fields(pairs: Sequence[tuple[str, Any]]) -> str:
    """``key: value`` lines, values aligned; None is written "-"."""
    width = max((len(key) for key, _ in pairs), default=0) + 1
    return "\n".join(f"{(key + ':').ljust(width)} {_cell(value)}" for key, value in pairs)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        if "schedule" in value:  # a ScheduleCron
            return f"{value['schedule']} ({value.get('time_zone')})"
        if "frequency" in value:  # a ScheduleRecurrenceRule
            text = f"{value['frequency']}/{value.get('interval', 1)}"
            if value.get("byday"):
                text += " " + ",".join(value["byday"])
            return text
        return json.dumps(value)
    if isinstance(value, list):
        return json.dumps(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def short_instant(text: str | None) -> str | None:
    """An API instant to the second, for tables: "2026-12-02T16:17:00Z"."""
    return re.sub(r"\.\d+(?=Z$)", "", text) if text else text


def seconds_text(seconds: float) -> str:
    """A duration people read at a glance: "45 s", "2 min 05 s", "1 h 02 min"."""
    whole = max(int(seconds), 0)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def ms_text(ms: float) -> str:
    """A k6 duration (milliseconds) with three significant digits: "0.412 ms", "12.3 ms",
    "1.52 s"."""
    if abs(ms) >= 1000:
        return f"{_significant(ms / 1000)} s"
    return f"{_significant(ms)} ms"


def bytes_text(count: float) -> str:
    """Bytes as k6 writes them (decimal units): "665 B", "2.66 kB", "1.2 MB"."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(count) >= size:
            return f"{_significant(count / size)} {unit}"
    return f"{round(count)} B"


def percent_text(rate: float) -> str:
    return f"{rate * 100:.2f} %"


def number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else _significant(value)


def _significant(value: float) -> str:
    if value == 0:
        return "0"
    digits = max(3 - len(str(int(abs(value)))), 0) if abs(value) >= 1 else 3
    text = f"{value:.{digits}f}" if abs(value) >= 1 else f"{value:.3g}"
    return text.rstrip("0").rstrip(".") if "." in text and "e" not in text else text


@dataclass(frozen=True, slots=True)
class Shown:
    """What a client command shows: ``raw`` for ``--json`` (nothing when None), ``text`` for
    people, and the exit status."""

    raw: Any = None
    text: str | None = None
    status: int = 0
