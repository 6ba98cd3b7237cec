"""Five-field cron in an IANA zone, with the DST behaviour of cronie/ISC cron.

Parsing is ours: it accepts exactly the standard grammar (numbers, names, ranges, steps,
lists, 7 = Sunday, the six aliases k6 allows) and rejects the extensions some libraries add
(L, W, #, ?, H, a seconds field), naming the field at fault. Evaluation is delegated to
cronsim, whose DST handling matches cronie (croniter 7 fires a fixed-time job twice on a
fall-back day; see README, "Why cronsim"):

* a job whose minute and hour fields are both fixed runs on local wall-clock time: a local
  time skipped by spring-forward runs once, right after the gap; a repeated one runs once, at
  the first pass;
* a job whose minute or hour field begins with ``*`` follows elapsed time.

When both day-of-month and day-of-week are restricted, either may match; a field beginning
with ``*`` counts as unrestricted.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

from cronsim import CronSim, CronSimError

from tickwork.core.instants import ONE_MICROSECOND, zone
from tickwork.core.model import Cron
from tickwork.errors import Problem

ALIASES: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_FIELDS: Final = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    (
        "month",
        1,
        12,
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
    ),
    ("day-of-week", 0, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
_ITEM = re.compile(r"^(?P<base>\*|[0-9A-Z]+(?:-[0-9A-Z]+)?)(?:/(?P<step>[0-9]+))?$")
_EXTENSION = re.compile(r"[LW#?H]")
# A fold can make a fixed-time job's candidates fall before `after` (cronsim walks wall-clock
# time); at most one hour of minutes is ever skipped that way.
_MAX_SKIPS: Final = 2000


def expand(expression: str) -> str:
    """The five-field form of an expression or alias (no validation)."""
    text = expression.strip()
    return ALIASES.get(text.lower(), text)


def problems(expression: str, target: str = "cron.schedule") -> list[Problem]:
    """Every reason ``expression`` is not a cron expression k6 accepts; empty when valid."""
    text = expression.strip()
    if text.startswith("@"):
        if text.lower() in ALIASES:
            return []
        return [
            Problem(
                "cron_alias_unknown",
                target,
                f"Unknown alias {text!r}; use one of {', '.join(ALIASES)}.",
            )
        ]
    fields = text.split()
    if len(fields) != 5:
        return [
            Problem(
                "cron_field_count",
                target,
                f"A cron expression has exactly 5 fields; {len(fields)} given.",
            )
        ]
    found: list[Problem] = []
    for raw, (name, low, high, names) in zip(fields, _FIELDS, strict=True):
        reason = _field_problem(raw.upper(), low, high, names)
        if reason is not None:
            code, message = reason
            found.append(Problem(code, target, f"Bad {name} field {raw!r}: {message}"))
    if not found:
        try:
            CronSim(text.upper(), datetime(2000, 1, 1, tzinfo=UTC))
        except CronSimError:
            found.append(
                Problem(
                    "cron_never_matches",
                    target,
                    "The day-of-month never occurs in the given months.",
                )
            )
    return found


def _field_problem(raw: str, low: int, high: int, names: tuple[str, ...]) -> tuple[str, str] | None:
    for item in raw.split(","):
        match = _ITEM.match(item)
        if match is None:
            if _EXTENSION.search(item):
                return (
                    "cron_unsupported",
                    "non-standard extensions (L, W, #, ?, H) are not supported.",
                )
            return ("cron_field_invalid", f"{item!r} is not a number, name, range or step.")
        base, step = match.group("base"), match.group("step")
        if step is not None and int(step) == 0:
            return ("cron_field_invalid", "a step must be at least 1.")
        if base == "*":
            continue
        bounds = base.split("-")
        values: list[int] = []
        for bound in bounds:
            if bound.isdigit():
                value = int(bound)
            elif bound in names:
                value = names.index(bound) + (1 if low == 1 else 0)
            elif _EXTENSION.search(bound):
                return (
                    "cron_unsupported",
                    "non-standard extensions (L, W, #, ?, H) are not supported.",
                )
            else:
                return ("cron_field_invalid", f"{bound!r} is not a valid value.")
            if not low <= value <= high:
                return ("cron_field_invalid", f"{value} is outside {low}-{high}.")
            values.append(value)
        if len(values) == 2 and values[1] < values[0]:
            return ("cron_field_invalid", f"the range {base!r} runs backwards.")
    return None


def next_after(cron: Cron, starts: datetime, after: datetime) -> datetime | None:
    """The first occurrence strictly after ``after`` and at or after ``starts``, in UTC."""
    floor = max(after, starts - ONE_MICROSECOND)
    tz = zone(cron.time_zone)
    try:
        candidates = CronSim(cron.expression.upper(), floor.astimezone(tz))
        for _ in range(_MAX_SKIPS):
            candidate = next(candidates).astimezone(UTC)
            if candidate > floor:
                return candidate
    except (StopIteration, OverflowError):
        return None
    return None
