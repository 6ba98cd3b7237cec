"""A small client of the k6 v6 API for people (tables) and scripts (``--json``).

Only the standard library: the CLI client must work in any tickwork install.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tickwork.errors import TickworkError


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
    ) -> Any:
        """Send one request; the decoded JSON answer (None for 204). ApiError otherwise."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310  (the URL is the operator's setting)
            self.base_url.rstrip("/") + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "X-Stack-Id": str(self.stack),
                "Accept": "application/json",
                **({"Content-Type": "application/json"} if data is not None else {}),
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
                message = error["error"]["message"]
                details = error["error"].get("details") or []
                message += "".join(
                    f"\n  {d.get('target') or '-'}: {d['message']} ({d['code']})" for d in details
                )
            except (ValueError, KeyError, TypeError):
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


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table, one row per item, columns sized to their widest cell."""
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


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
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
