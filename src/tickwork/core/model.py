"""Frozen value types of the core: schedules and their triggers.

A schedule is a first instant (``starts``) and a trigger saying how it repeats. Everything
about who owns it, whether it is deactivated and what has fired lives outside the core.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Frequency(StrEnum):
    HOURLY = "HOURLY"
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"
    YEARLY = "YEARLY"


class Weekday(StrEnum):
    MO = "MO"
    TU = "TU"
    WE = "WE"
    TH = "TH"
    FR = "FR"
    SA = "SA"
    SU = "SU"

    @property
    def number(self) -> int:
        """Monday is 0, as in ``date.weekday()``."""
        return _WEEKDAY_ORDER.index(self)


_WEEKDAY_ORDER = list(Weekday)


class DstGap(StrEnum):
    """A fixed-time job's local time that does not exist (spring-forward)."""

    SHIFT = "shift"  # run at the first instant after the gap (cronie; the default)
    SKIP = "skip"  # no run that day


class DstRepeat(StrEnum):
    """A fixed-time job's local time that happens twice (fall-back)."""

    FIRST = "first"  # run at the first pass only (cronie; the default)
    BOTH = "both"  # run at both passes


@dataclass(frozen=True, slots=True)
class Cron:
    """A five-field cron expression (aliases already expanded) evaluated in an IANA zone.
    ``gap`` and ``repeat`` say what a fixed-time job does at DST changes; a job whose minute
    or hour field begins with ``*`` follows elapsed time and ignores them."""

    expression: str
    time_zone: str
    gap: DstGap = DstGap.SHIFT
    repeat: DstRepeat = DstRepeat.FIRST


@dataclass(frozen=True, slots=True)
class Rule:
    """The RFC 5545 subset of the k6 API: times of day and UTC offset come from ``starts``."""

    frequency: Frequency
    interval: int = 1
    byday: tuple[Weekday, ...] | None = None
    count: int | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Interval:
    """Every ``period`` from ``starts`` (the Kragle dialect's ``config.period``)."""

    period: timedelta


@dataclass(frozen=True, slots=True)
class Once:
    """A single occurrence, at ``starts``."""


Trigger = Cron | Rule | Interval | Once


@dataclass(frozen=True, slots=True)
class Schedule:
    starts: datetime
    trigger: Trigger
