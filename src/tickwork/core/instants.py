"""Aware-UTC instants: parsing and formatting ISO-8601, milliseconds, zone lookup.

Instants inside tickwork are aware ``datetime`` values; UTC is the canonical zone. On the
wire and in Redis they are ISO-8601 text or integer milliseconds since the epoch.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)

EARLIEST = EPOCH
"""The earliest instant a request may name: millisecond scores and job ids stay positive."""
LATEST = datetime(9999, 12, 30, 23, 59, 59, 999_999, tzinfo=UTC)
"""The latest instant a request may name: a day short of the end of Python's calendar, so the
instant still has a wall time in every zone and offset (all are within 24 hours of UTC)."""

NOT_A_PLACE = frozenset({"Factory"})
"""tzdata names that are not a place's time: "Factory" means "zone not set yet"."""
_HOST_FILES = frozenset({"localtime", "posixrules"})

# RFC 3339 date-time, the "format: date-time" of the OpenAPI documents. fromisoformat alone
# accepts too much (week dates, missing seconds, ", " separators), so the shape is checked first.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(?P<offset>[Zz]|[+-]\d{2}:\d{2})?",
    re.ASCII,  # \d is 0-9 only: fromisoformat would read other scripts' digits
)


class InstantError(ValueError):
    """Text that is not an instant we accept; ``code`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_instant(text: str) -> datetime:
    """Parse an RFC 3339 date-time that carries a UTC offset. Keeps the given offset."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise InstantError("invalid_datetime", f"{text!r} is not an ISO-8601 date-time.")
    if match.group("offset") is None:
        raise InstantError(
            "offset_required", f"{text!r} has no UTC offset; add 'Z' or an offset like '+02:00'."
        )
    normalized = text
    fraction = match.group(1)
    if fraction and len(fraction) > 7:  # Python keeps microseconds: drop digits beyond them
        normalized = text.replace(fraction, fraction[:7], 1)
    try:
        value = datetime.fromisoformat(normalized.replace("z", "Z"))
    except ValueError as exc:
        raise InstantError("invalid_datetime", f"{text!r} is not a valid date-time.") from exc
    return value


def out_of_range(value: datetime) -> str | None:
    """Why ``value`` is outside the instants a request may name; None when inside.

    Checked on the wall time and offset as given, never by converting first: converting
    9999-12-31T23:59:59-12:00 to UTC already overflows."""
    offset = value.utcoffset() or timedelta(0)
    naive = value.replace(tzinfo=None)
    if naive < EARLIEST.replace(tzinfo=None) + offset:
        return f"{format_instant(EARLIEST)} is the earliest instant accepted."
    if naive > LATEST.replace(tzinfo=None) + offset:
        return f"{format_instant(LATEST)} is the latest instant accepted."
    return None


def format_instant(value: datetime) -> str:
    """ISO-8601 in UTC with 'Z'; the fraction only when non-zero (milliseconds when exact)."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        if value.microsecond % 1000 == 0:
            text += f".{value.microsecond // 1000:03d}"
        else:
            text += f".{value.microsecond:06d}"
    return text + "Z"


def to_ms(value: datetime) -> int:
    """Integer milliseconds since the epoch (floor), for Redis scores and job ids."""
    delta = value - EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def to_us(value: datetime) -> int:
    """Integer microseconds since the epoch: exact for every instant we store."""
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


@lru_cache(maxsize=1)
def time_zone_names() -> frozenset[str]:
    """The IANA names a request may use: those the tzdata package lists (its own list, not the
    host's zone directory, where ``localtime`` and ``posixrules`` are host files), minus
    ``NOT_A_PLACE``."""
    try:
        listed = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split()
    except ModuleNotFoundError:  # tzdata is a dependency; a host's list is the fallback
        listed = [name for name in available_timezones() if name not in _HOST_FILES]
    return frozenset(listed) - NOT_A_PLACE


def is_time_zone_name(name: str) -> bool:
    """Whether ``name`` is an IANA zone a request may use (see ``time_zone_names``)."""
    return name in time_zone_names()


@lru_cache(maxsize=512)
def zone(name: str) -> tzinfo:
    """The zone called ``name``; raises KeyError for anything that is no zone at all.

    Requests are checked with ``is_time_zone_name`` first; this lookup stays as it was so a
    schedule stored before that check still evaluates."""
    if not name or name != name.strip() or name.startswith(("/", ".")) or ".." in name:
        raise KeyError(name)
    if name in ("UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise KeyError(name) from exc
