"""Five-field cron in an IANA zone, with the DST behaviour of cronie/ISC cron.

Parsing is ours: it accepts exactly the standard grammar (numbers, names, ranges, steps,
lists, 7 = Sunday, the six aliases k6 allows) and rejects the extensions some libraries add
(L, W, #, ?, H, a seconds field), naming the field at fault. Calendar matching is delegated to
cronsim; the DST behaviour is that of cronie (croniter 7 fires a fixed-time job twice on a
fall-back day; see README, "Why cronsim"):

* a job whose minute and hour fields are both fixed runs on local wall-clock time: a local
  time skipped by spring-forward runs once, right after the gap; a repeated one runs once, at
  the first pass (cronsim's own wall-clock mode);
* a job whose minute or hour field begins with ``*`` follows elapsed time: it fires at every
  real instant whose local wall time matches, never for a wall time that does not exist, twice
  for a repeated one. cronsim's zone-aware walk gets this wrong near transitions (it steps
  local time by whole hours and lands on non-existent midnights), so cronsim walks naive wall
  time here too and each matching wall time is mapped to the instants that show it.

When both day-of-month and day-of-week are restricted, either may match; a field beginning
with ``*`` counts as unrestricted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from itertools import islice
from typing import Final

from cronsim import CronSim, CronSimError

from tickwork.core.instants import ONE_MICROSECOND, zone
from tickwork.core.model import Cron, DstGap, DstRepeat
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
# A fold can make a fixed-time job's candidates fall before `after`, and a gap holds wall times
# an elapsed-time job skips (cronsim walks wall-clock time); each is at most a day of minutes.
_MAX_SKIPS: Final = 2000
_ONE_MINUTE: Final = timedelta(minutes=1)
_FOLD_REACH: Final = timedelta(hours=3)


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
            CronSim(_for_cronsim(text.upper()), datetime(2000, 1, 1, tzinfo=UTC))
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


@lru_cache(maxsize=4096)  # a handful of expressions are evaluated over and over
def _for_cronsim(expression: str) -> str:
    """A valid five-field expression in the form cronsim reads as cron does.

    cronsim takes a one-value range with a step (``5-5/10``) for ``5/10``, which it reads as
    5 to the field's maximum; the range is just its one value.
    """
    fields = []
    for raw, (_, low, _, names) in zip(expression.split(), _FIELDS, strict=True):
        items = []
        for item in raw.split(","):
            match = _ITEM.match(item)
            bounds = match.group("base").split("-") if match else []
            single = len(bounds) == 2 and _value(bounds[0], low, names) == _value(
                bounds[1], low, names
            )
            items.append(bounds[0] if single else item)
        fields.append(",".join(items))
    return " ".join(fields)


def _value(bound: str, low: int, names: tuple[str, ...]) -> int:
    return int(bound) if bound.isdigit() else names.index(bound) + (1 if low == 1 else 0)


def next_after(cron: Cron, starts: datetime, after: datetime) -> datetime | None:
    """The first occurrence strictly after ``after`` and at or after ``starts``, in UTC."""
    floor = max(after, starts - ONE_MICROSECOND)
    tz = zone(cron.time_zone)
    expression = _for_cronsim(cron.expression.upper())
    try:
        if not _follows_wall_clock(expression):
            return _next_in_elapsed_time(expression, tz, floor)
        found = _next_on_wall_clock(expression, tz, floor)
        if cron.gap is DstGap.SKIP:
            # A time shifted out of a gap shows a wall time the expression does not match.
            for _ in range(_MAX_SKIPS):
                if found is None or _matches(expression, found.astimezone(tz)):
                    break
                found = _next_on_wall_clock(expression, tz, found)
        if cron.repeat is DstRepeat.BOTH:
            second = _next_second_pass(expression, tz, floor, until=found)
            if second is not None and (found is None or second < found):
                found = second
        return found
    except (StopIteration, OverflowError):
        return None


def _matches(expression: str, local: datetime) -> bool:
    wall = local.replace(second=0, microsecond=0, tzinfo=None)
    return bool(next(CronSim(expression, wall - _ONE_MINUTE), None) == wall)


def _next_second_pass(
    expression: str, tz: tzinfo, floor: datetime, *, until: datetime | None
) -> datetime | None:
    """The earliest second pass of a repeated wall time that matches, after ``floor`` and
    before ``until`` (the first-pass candidate). Folds last at most a few hours: wall times
    are walked from a little before ``floor``'s to a little after ``until``'s."""
    start = floor.astimezone(tz).replace(tzinfo=None) - _FOLD_REACH
    stop = (until or floor + _FOLD_REACH * 4).astimezone(tz).replace(tzinfo=None) + _FOLD_REACH
    for wall in islice(_matching_walls(expression, start), _MAX_SKIPS):
        if wall > stop:
            break
        instants = _instants(wall, tz)
        if len(instants) == 2 and instants[1] > floor:
            return instants[1]
    return None


def _follows_wall_clock(expression: str) -> bool:
    minute, hour = expression.split()[:2]
    return not minute.startswith("*") and not hour.startswith("*")


def _next_on_wall_clock(expression: str, tz: tzinfo, floor: datetime) -> datetime | None:
    candidates = CronSim(expression, floor.astimezone(tz))
    for _ in range(_MAX_SKIPS):
        candidate = next(candidates).astimezone(UTC)
        if candidate > floor:
            return candidate
    return None


def _next_in_elapsed_time(expression: str, tz: tzinfo, floor: datetime) -> datetime | None:
    local = floor.astimezone(tz)
    wall = local.replace(tzinfo=None)
    found: list[datetime] = []
    second_pass = local.replace(fold=1).astimezone(UTC)
    if second_pass > floor:
        # floor is in the first pass of a fold: the wall times up to its own come round again,
        # and those are all later than floor.
        for candidate in _matching_walls(expression, wall - (second_pass - floor)):
            if candidate > wall:
                break
            instants = _instants(candidate, tz)
            if len(instants) == 2:
                found.append(instants[1])
                break
    for candidate in islice(_matching_walls(expression, wall), _MAX_SKIPS):
        later = [instant for instant in _instants(candidate, tz) if instant > floor]
        if later:  # none for a wall time in a gap
            found.append(later[0])
            break
    return min(found, default=None)


def _matching_walls(expression: str, wall: datetime) -> Iterator[datetime]:
    """Naive local wall times after ``wall`` that match, in order (no zone, no DST)."""
    return CronSim(expression, wall.replace(tzinfo=None))


def _instants(wall: datetime, tz: tzinfo) -> list[datetime]:
    """The instants showing ``wall`` in ``tz``, in order: none in a gap, two in a fold."""
    found: list[datetime] = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)
        if instant.astimezone(tz).replace(tzinfo=None) == wall and instant not in found:
            found.append(instant)
    return found


def follows_wall_clock(cron: Cron) -> bool:
    """Whether the job runs on local wall-clock time (minute and hour fixed), rather than
    following elapsed time."""
    return _follows_wall_clock(_for_cronsim(cron.expression.upper()))


def wall_matches(cron: Cron, wall: datetime) -> bool:
    """Whether the naive local wall time ``wall`` (to the minute) matches the expression."""
    expression = _for_cronsim(cron.expression.upper())
    minute = wall.replace(second=0, microsecond=0, tzinfo=None)
    return bool(next(CronSim(expression, minute - _ONE_MINUTE), None) == minute)


def wall_before(cron: Cron, wall: datetime) -> datetime | None:
    """The latest naive wall time before ``wall`` that matches the expression."""
    expression = _for_cronsim(cron.expression.upper())
    return next(CronSim(expression, wall.replace(tzinfo=None), reverse=True), None)
