"""Cross-field rules that a JSON schema cannot state, turned into a core Schedule.

Type checks (is ``interval`` an integer, is ``frequency`` one of the five) belong to the
dialect that parsed the wire shape; what is checked here holds for every dialect. Each
violation becomes one Problem with a stable ``code`` and the field in ``target``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from tickwork.core import cron as cron_rules
from tickwork.core.instants import InstantError, is_time_zone_name, out_of_range, parse_instant
from tickwork.core.model import Cron, DstGap, DstRepeat, Frequency, Once, Rule, Schedule, Weekday
from tickwork.errors import Problem, ValidationError

CRON_MAX_LENGTH = 256
TIME_ZONE_MAX_LENGTH = 128
MAX_INTERVAL = 10_000
"""The largest recurrence ``interval``: 10,000 hours is over a year, 10,000 years past the end
of the calendar. Beyond it a value is a mistake, and the rule arithmetic would overflow."""
MAX_COUNT = 1_000_000
"""The largest recurrence ``count``: an hourly rule runs out of it after 114 years."""


@dataclass(frozen=True, slots=True)
class RuleSpec:
    frequency: Frequency
    interval: int = 1
    byday: list[Weekday] | None = None
    count: int | None = None
    until: str | None = None


@dataclass(frozen=True, slots=True)
class CronSpec:
    schedule: str
    time_zone: str
    gap: DstGap = DstGap.SHIFT
    repeat: DstRepeat = DstRepeat.FIRST


def build_schedule(
    *, starts: str, cron: CronSpec | None = None, rule: RuleSpec | None = None
) -> Schedule:
    """The Schedule these fields describe, or ValidationError listing every problem."""
    found: list[Problem] = []
    starts_at = _instant(starts, "starts", found)
    trigger: Cron | Rule | Once = Once()
    if cron is not None and rule is not None:
        found.append(
            Problem(
                "cron_and_recurrence_rule",
                "cron",
                "Only one of 'cron' and 'recurrence_rule' can be set.",
            )
        )
    if cron is not None:
        trigger = _cron(cron, found)
    if rule is not None:
        trigger = _rule(rule, starts_at, found)
    if found or starts_at is None:
        raise ValidationError(found, "The schedule is not valid.")
    return Schedule(starts=starts_at, trigger=trigger)


def instant_field(text: str, target: str, found: list[Problem]) -> datetime | None:
    """An RFC 3339 instant within the accepted range, or None with its problem in
    ``found``."""
    return _instant(text, target, found)


def _instant(text: str, target: str, found: list[Problem]) -> datetime | None:
    try:
        value = parse_instant(text)
    except InstantError as exc:
        found.append(Problem(exc.code, target, str(exc)))
        return None
    beyond = out_of_range(value)
    if beyond is not None:
        found.append(Problem("out_of_range", target, f"{text!r} is out of range: {beyond}"))
        return None
    # A fixed offset keeps rule arithmetic on the wall clock of the given offset.
    offset = value.utcoffset()
    assert offset is not None  # parse_instant requires one
    return value.replace(tzinfo=timezone(offset))


def _cron(spec: CronSpec, found: list[Problem]) -> Cron:
    if len(spec.schedule) > CRON_MAX_LENGTH:
        found.append(Problem("too_long", "cron.schedule", f"At most {CRON_MAX_LENGTH} characters."))
    else:
        found.extend(cron_rules.problems(spec.schedule))
    if len(spec.time_zone) > TIME_ZONE_MAX_LENGTH:
        found.append(
            Problem("too_long", "cron.time_zone", f"At most {TIME_ZONE_MAX_LENGTH} characters.")
        )
    elif not is_time_zone_name(spec.time_zone):
        found.append(
            Problem(
                "time_zone_unknown",
                "cron.time_zone",
                f"{spec.time_zone!r} is not an IANA time zone name.",
            )
        )
    return Cron(
        expression=cron_rules.expand(spec.schedule),
        time_zone=spec.time_zone,
        gap=spec.gap,
        repeat=spec.repeat,
    )


def _rule(spec: RuleSpec, starts: datetime | None, found: list[Problem]) -> Rule:
    _bounded(spec.interval, "interval", MAX_INTERVAL, found)
    if spec.count is not None:
        _bounded(spec.count, "count", MAX_COUNT, found)
    if spec.byday and spec.frequency is not Frequency.WEEKLY:
        found.append(
            Problem(
                "byday_requires_weekly",
                "recurrence_rule.byday",
                "'byday' can only be set with the WEEKLY frequency.",
            )
        )
    until = None
    if spec.until is not None:
        until = _instant(spec.until, "recurrence_rule.until", found)
        if until is not None and starts is not None and until < starts:
            found.append(
                Problem(
                    "until_before_starts",
                    "recurrence_rule.until",
                    "'until' must not be before 'starts'.",
                )
            )
    return Rule(
        frequency=spec.frequency,
        interval=spec.interval,
        byday=tuple(spec.byday) if spec.byday else None,
        count=spec.count,
        until=until,
    )


def _bounded(value: int, name: str, most: int, found: list[Problem]) -> None:
    if value < 1:
        found.append(
            Problem("too_small", f"recurrence_rule.{name}", f"'{name}' must be at least 1.")
        )
    elif value > most:
        found.append(
            Problem("too_large", f"recurrence_rule.{name}", f"'{name}' must be at most {most:,}.")
        )
