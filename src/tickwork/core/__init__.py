"""The pure core: schedules, triggers and the occurrence engine. No I/O, no clock."""

from tickwork.core.instants import format_instant, from_ms, parse_instant, to_ms
from tickwork.core.model import Cron, Frequency, Interval, Once, Rule, Schedule, Trigger, Weekday
from tickwork.core.occurrences import (
    is_expired,
    iter_after,
    next_after,
    next_run,
    occurrences_after,
)
from tickwork.core.validation import CronSpec, RuleSpec, build_schedule

__all__ = [
    "Cron",
    "CronSpec",
    "Frequency",
    "Interval",
    "Once",
    "Rule",
    "RuleSpec",
    "Schedule",
    "Trigger",
    "Weekday",
    "build_schedule",
    "format_instant",
    "from_ms",
    "is_expired",
    "iter_after",
    "next_after",
    "next_run",
    "occurrences_after",
    "parse_instant",
    "to_ms",
]
