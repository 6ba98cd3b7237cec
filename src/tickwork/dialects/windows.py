"""Blackout windows on the wire (a tickwork extension of the k6 dialect): when no run
starts, for a whole stack or one schedule.

A window is one-off (``from``, ``to``) or recurring (``cron`` for when each span starts, in
an IANA ``time_zone``, and ``duration_seconds``); its ``policy`` is ``skip`` or ``defer``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tickwork.core import CronSpec, build_schedule
from tickwork.core.instants import format_instant
from tickwork.core.model import Cron
from tickwork.core.validation import instant_field
from tickwork.core.windows import Window, WindowPolicy
from tickwork.dialects.wire import DateTime, StrictWire, from_json
from tickwork.errors import Problem, ValidationError

MAX_DURATION_S = 31 * 86_400
UPCOMING_SPANS = 3
INVALID = "The blackout window is not valid."


class WindowCron(StrictWire):
    schedule: str = Field(
        max_length=100, description="When each span starts: a five-field cron expression."
    )
    time_zone: str = Field(default="UTC", max_length=100, description="An IANA time zone.")


class BlackoutWindowRequest(StrictWire):
    """A one-off window (``from``, ``to``) or a recurring one (``cron``, ``duration_seconds``)."""

    READ_ONLY = frozenset({"id", "schedule_id", "created", "created_by", "upcoming"})
    model_config = ConfigDict(populate_by_name=True)

    policy: Literal["skip", "defer"] = Field(
        default="skip",
        description="skip: an occurrence planned inside is recorded skipped (reason "
        "'blackout'); defer: it runs at the window's end, several collapsing into one run "
        "(the others recorded skipped, reason 'deferred').",
    )
    from_: DateTime | None = Field(default=None, alias="from", description="One-off: start.")
    to: DateTime | None = Field(default=None, description="One-off: end (exclusive, future).")
    cron: WindowCron | None = Field(default=None, description="Recurring: when spans start.")
    duration_seconds: int | None = Field(
        default=None, ge=60, le=MAX_DURATION_S, description="Recurring: how long each lasts."
    )
    note: str = Field(default="", max_length=1000, description="Why (shown with it).")


class Span(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    to: str


class BlackoutWindowApiModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: int
    schedule_id: int | None = Field(description="null: every schedule of the stack.")
    policy: Literal["skip", "defer"]
    from_: str | None = Field(default=None, alias="from")
    to: str | None = None
    cron: WindowCron | None = None
    duration_seconds: int | None = None
    note: str
    created: str
    created_by: str | None
    upcoming: list[Span] = Field(
        description=f"Its spans that have not ended yet, at most {UPCOMING_SPANS}."
    )


class BlackoutWindowListResponse(BaseModel):
    value: list[BlackoutWindowApiModel]


def parse_window(body: bytes, *, now: datetime) -> tuple[Window, str | None, str]:
    """The core window a request describes (id 0 until stored), its cron as written and its
    note; ValidationError naming every field at fault."""
    request = from_json(BlackoutWindowRequest, body, INVALID)
    cron_given = request.cron.schedule if request.cron else None
    return window_of(request, window_id=0, now=now), cron_given, request.note


def window_of(request: BlackoutWindowRequest, *, window_id: int, now: datetime) -> Window:
    found: list[Problem] = []
    policy = WindowPolicy(request.policy)
    one_off = request.from_ is not None or request.to is not None
    recurring = request.cron is not None or request.duration_seconds is not None
    if one_off and recurring:
        found.append(
            Problem(
                "one_off_and_recurring",
                "cron",
                "A window is one-off ('from', 'to') or recurring ('cron', "
                "'duration_seconds'), not both.",
            )
        )
        raise ValidationError(found, INVALID)
    if not one_off and not recurring:
        found.append(
            Problem(
                "required",
                "from",
                "Give 'from' and 'to' (one-off) or 'cron' and 'duration_seconds' (recurring).",
            )
        )
        raise ValidationError(found, INVALID)
    if one_off:
        starts = _required_instant(request.from_, "from", found)
        ends = _required_instant(request.to, "to", found)
        if starts is not None and ends is not None:
            if ends <= starts:
                found.append(Problem("invalid", "to", "'to' must be later than 'from'."))
            elif ends <= now:
                found.append(Problem("not_in_future", "to", "'to' must be later than now."))
        if found or starts is None or ends is None:
            raise ValidationError(found, INVALID)
        return Window(window_id, policy, starts_at=starts, ends_at=ends)
    cron = _cron(request.cron, found)
    if request.duration_seconds is None:
        found.append(Problem("required", "duration_seconds", "A recurring window needs it."))
    if found or cron is None or request.duration_seconds is None:
        raise ValidationError(found, INVALID)
    return Window(
        window_id, policy, cron=cron, duration=timedelta(seconds=request.duration_seconds)
    )


def _required_instant(text: str | None, target: str, found: list[Problem]) -> datetime | None:
    if text is None:
        found.append(Problem("required", target, f"A one-off window needs '{target}'."))
        return None
    return instant_field(text, target, found)


def _cron(given: WindowCron | None, found: list[Problem]) -> Cron | None:
    if given is None:
        found.append(Problem("required", "cron", "A recurring window needs 'cron'."))
        return None
    try:
        schedule = build_schedule(
            starts="2000-01-01T00:00:00Z", cron=CronSpec(given.schedule, given.time_zone)
        )
    except ValidationError as exc:
        found.extend(exc.problems)
        return None
    assert isinstance(schedule.trigger, Cron)
    return schedule.trigger


def window_model(
    window: Window,
    *,
    schedule_id: int | None,
    note: str,
    created: datetime,
    created_by: str | None,
    cron_given: str | None,
    now: datetime,
) -> BlackoutWindowApiModel:
    cron = None
    if window.cron is not None:
        cron = WindowCron(
            schedule=cron_given or window.cron.expression, time_zone=window.cron.time_zone
        )
    spans = window.spans(now, now + timedelta(days=400))[:UPCOMING_SPANS]
    return BlackoutWindowApiModel.model_validate(
        {
            "id": window.id,
            "schedule_id": schedule_id,
            "policy": window.policy.value,
            "from": format_instant(window.starts_at) if window.starts_at else None,
            "to": format_instant(window.ends_at) if window.ends_at else None,
            "cron": cron,
            "duration_seconds": int(window.duration.total_seconds()) if window.duration else None,
            "note": note,
            "created": format_instant(created),
            "created_by": created_by,
            "upcoming": [{"from": format_instant(a), "to": format_instant(b)} for a, b in spans],
        }
    )
