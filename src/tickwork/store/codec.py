"""Core values as JSON text for Redis hashes. JSON only: nothing read back can run code."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from tickwork.core import Cron, Frequency, Interval, Once, Rule, Schedule, Weekday
from tickwork.core.instants import parse_instant
from tickwork.core.model import DstGap, DstRepeat
from tickwork.errors import StoreError


def encode_schedule(schedule: Schedule) -> str:
    trigger = schedule.trigger
    data: dict[str, Any] = {"starts": schedule.starts.isoformat()}
    if isinstance(trigger, Cron):
        data |= {"type": "cron", "expression": trigger.expression, "time_zone": trigger.time_zone}
        if trigger.gap is not DstGap.SHIFT:
            data["gap"] = trigger.gap.value
        if trigger.repeat is not DstRepeat.FIRST:
            data["repeat"] = trigger.repeat.value
    elif isinstance(trigger, Rule):
        data |= {
            "type": "rule",
            "frequency": trigger.frequency.value,
            "interval": trigger.interval,
            "byday": [day.value for day in trigger.byday] if trigger.byday else None,
            "count": trigger.count,
            "until": trigger.until.isoformat() if trigger.until else None,
        }
    elif isinstance(trigger, Interval):
        data |= {"type": "interval", "period_us": trigger.period // timedelta(microseconds=1)}
    else:
        data |= {"type": "once"}
    return json.dumps(data, separators=(",", ":"))


def decode_schedule(text: str | bytes) -> Schedule:
    try:
        data = json.loads(text)
        starts = parse_instant(data["starts"])
        kind = data["type"]
        if kind == "cron":
            return Schedule(
                starts,
                Cron(
                    data["expression"],
                    data["time_zone"],
                    gap=DstGap(data.get("gap", "shift")),
                    repeat=DstRepeat(data.get("repeat", "first")),
                ),
            )
        if kind == "rule":
            until = data.get("until")
            return Schedule(
                starts,
                Rule(
                    frequency=Frequency(data["frequency"]),
                    interval=int(data["interval"]),
                    byday=tuple(Weekday(d) for d in data["byday"]) if data.get("byday") else None,
                    count=data.get("count"),
                    until=parse_instant(until) if until else None,
                ),
            )
        if kind == "interval":
            return Schedule(starts, Interval(timedelta(microseconds=int(data["period_us"]))))
        if kind == "once":
            return Schedule(starts, Once())
    except (KeyError, ValueError, TypeError) as exc:
        raise StoreError(f"unreadable schedule trigger: {exc}") from exc
    raise StoreError(f"unknown schedule trigger type {kind!r}")
