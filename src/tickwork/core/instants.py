"""Aware-UTC instants: parsing and formatting ISO-8601, milliseconds, zone lookup.

Instants inside tickwork are aware ``datetime`` values; UTC is the canonical zone. On the
wire and in Redis they are ISO-8601 text or integer milliseconds since the epoch.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)

# RFC 3339 date-time, the "format: date-time" of the OpenAPI documents. fromisoformat alone
# accepts too much (week dates, missing seconds, ", " separators), so the shape is checked first.
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(?P<offset>[Zz]|[+-]\d{2}:\d{2})?$"
)


class InstantError(ValueError):
    """Text that is not an instant we accept; ``code`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_instant(text: str) -> datetime:
    """Parse an RFC 3339 date-time that carries a UTC offset. Keeps the given offset."""
    match = _RFC3339.match(text)
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


@lru_cache(maxsize=512)
def zone(name: str) -> tzinfo:
    """The IANA zone called ``name``; raises KeyError for anything else."""
    if not name or name != name.strip() or name.startswith(("/", ".")) or ".." in name:
        raise KeyError(name)
    if name in ("UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise KeyError(name) from exc
