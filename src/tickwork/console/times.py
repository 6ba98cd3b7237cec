"""Instants as the console shows them: always with their zone. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

from markupsafe import Markup, escape

from tickwork.core.instants import format_instant, is_time_zone_name, zone
from tickwork.core.model import Cron, Schedule
from tickwork.core.wording import offset_label


def tz_of(name: str) -> tzinfo:
    """The zone named (an IANA name the browser reported), UTC when unknown."""
    return zone(name) if name and is_time_zone_name(name) else UTC


def local_text(value: datetime, tz: tzinfo) -> str:
    """ "2026-11-23 10:00:05 CET": the wall time in ``tz`` and the zone's abbreviation."""
    local = value.astimezone(tz)
    seconds = f":{local:%S}" if local.second or local.microsecond else ""
    name = local.tzname() or offset_label(local)
    if name.startswith(("+", "-")):  # zones without an abbreviation: "+0530" -> UTC+05:30
        name = offset_label(local)
    return f"{local:%Y-%m-%d %H:%M}{seconds} {name}"


def at_html(value: datetime | None, zone_name: str = "UTC", empty: str = "—") -> Markup:
    """A ``<time>`` element: the instant in the viewer's zone, the exact UTC instant as its
    machine-readable value and tooltip."""
    if value is None:
        return escape(empty)
    exact = format_instant(value.astimezone(UTC))
    text = local_text(value, tz_of(zone_name))
    return Markup('<time datetime="{0}" title="{0}">{1}</time>').format(exact, text)


def schedule_zone(schedule: Schedule) -> tuple[tzinfo, str]:
    """The zone a schedule's times are read in, and its label: a cron's IANA zone, else the
    UTC offset of ``starts`` (a rule or a one-shot keeps that offset)."""
    trigger = schedule.trigger
    if isinstance(trigger, Cron):
        return zone(trigger.time_zone), trigger.time_zone
    tz = schedule.starts.tzinfo or UTC
    return tz, offset_label(schedule.starts)


def zone_label(zone_name: str) -> str:
    return zone_name if zone_name and is_time_zone_name(zone_name) else "UTC"


def ago(value: datetime | None, now: datetime) -> str:
    """ "3 min ago", "in 2 h" (rounded down); "" for None."""
    if value is None:
        return ""
    delta = value - now
    text = _span(abs(delta))
    return f"in {text}" if delta > timedelta(0) else f"{text} ago"


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86_400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86_400} d {seconds % 86_400 // 3600} h"


def duration(start: datetime | None, end: datetime | None) -> str:
    """How long from ``start`` to ``end``: "1.2 s", "3 min 5 s"; "" when either is None."""
    if start is None or end is None:
        return ""
    seconds = (end - start).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"
