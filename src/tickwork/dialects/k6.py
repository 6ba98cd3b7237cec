"""The k6 Cloud REST API v6 schedule shapes, exactly as its OpenAPI description names them,
and the dialect's error body.

``parse_create_schedule`` turns request JSON into the wire model and a core Schedule, with
one Problem per violation; ``schedule_api_model`` renders the stored wire model back;
``render_error`` gives an error's parts (``wire.ErrorParts``) this dialect's shape.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from tickwork.core import CronSpec, Frequency, RuleSpec, Schedule, Weekday, build_schedule
from tickwork.core.instants import ONE_MICROSECOND, format_instant
from tickwork.core.jitter import MAX_JITTER_S, widest_jitter
from tickwork.core.model import DstGap, DstRepeat
from tickwork.core.validation import MAX_COUNT, MAX_INTERVAL, instant_field
from tickwork.dialects.wire import DateTime, ErrorParts, StrictWire, from_json
from tickwork.errors import Problem, ValidationError


class ScheduleDst(StrictWire):
    """tickwork extension: what a fixed-time cron job does at DST changes (a job whose
    minute or hour field begins with '*' follows elapsed time and ignores it)."""

    gap: DstGap = Field(
        default=DstGap.SHIFT,
        description="A local time that does not exist (spring-forward): 'shift' runs right "
        "after the gap (cronie, the default), 'skip' runs nothing that day.",
    )
    repeat: DstRepeat = Field(
        default=DstRepeat.FIRST,
        description="A local time that happens twice (fall-back): 'first' runs at the first "
        "pass (cronie, the default), 'both' at both.",
    )


class ScheduleCron(StrictWire):
    schedule: str = Field(
        max_length=256,
        description="A cron expression with exactly 5 entries, or an alias. The allowed "
        "aliases are: @yearly, @annually, @monthly, @weekly, @daily, @hourly.",
    )
    time_zone: str = Field(max_length=128, description="The timezone of the cron expression.")
    dst: ScheduleDst | None = Field(
        default=None,
        # Absent unless set: k6 clients read exactly the k6 cron object.
        exclude_if=lambda value: value is None,
        description="tickwork extension: the DST policy (absent: cronie's).",
    )


class ScheduleRecurrenceRule(StrictWire):
    frequency: Frequency
    interval: int = Field(default=1, ge=1, le=MAX_INTERVAL)
    byday: (
        Annotated[list[Weekday], Field(max_length=7, json_schema_extra={"uniqueItems": True})]
        | None
    ) = None
    until: DateTime | None = Field(default=None, description="Not together with 'count'.")
    count: int | None = Field(
        default=None, ge=1, le=MAX_COUNT, description="Not together with 'until'."
    )


Overlap = Literal["skip", "allow"]


class CreateScheduleRequest(StrictWire):
    READ_ONLY = frozenset({"id", "load_test_id", "deactivated", "next_run", "created_by", "paused"})

    starts: DateTime
    recurrence_rule: ScheduleRecurrenceRule | None = None
    cron: ScheduleCron | None = None
    # tickwork extensions; k6 clients neither send nor read them.
    overlap: Overlap = Field(
        default="skip",
        description="tickwork extension. 'skip' (default): an occurrence whose load test's "
        "previous run has not finished is recorded as skipped; 'allow': it runs anyway.",
    )
    catch_up_seconds: int | None = Field(
        default=None,
        ge=0,
        # a year: beyond it the window means nothing, and the scheduler's timedelta would
        # overflow long before a client's 64-bit integer does
        le=365 * 86_400,
        description="tickwork extension. How late a missed occurrence may still fire (at "
        "most a year); null uses the deployment's TICKWORK_CATCH_UP_WINDOW_SECONDS.",
    )
    jitter_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_JITTER_S,
        description="tickwork extension. Each occurrence runs at its instant plus an offset "
        "in [0, jitter_seconds) fixed by the schedule and the occurrence (never earlier), so "
        "schedules due at one instant reach their target spread out. At most an hour and at "
        "most the schedule's shortest interval; null uses the deployment's "
        "TICKWORK_DEFAULT_JITTER_SECONDS.",
    )


class PauseApiModel(BaseModel):
    """tickwork extension: who paused a schedule, when, why, and until when."""

    since: DateTime
    by: str | None = None
    note: str = ""
    resume_at: DateTime | None = Field(
        default=None, description="The scheduler re-activates the schedule then."
    )


class DeactivateScheduleRequest(StrictWire):
    """tickwork extension: an optional body of ``deactivate``. Without a body, the k6
    API's plain deactivate."""

    note: str = Field(default="", max_length=1000, description="Why it is paused.")
    resume_at: DateTime | None = Field(
        default=None,
        description="When the scheduler re-activates it on its own (in the future).",
    )


def parse_deactivate(body: bytes, *, now: datetime) -> tuple[str, datetime | None]:
    """The note and resume_at of a deactivate body; ValidationError naming the field."""
    request = from_json(DeactivateScheduleRequest, body, "The deactivation is not valid.")
    if request.resume_at is None:
        return request.note, None
    found: list[Problem] = []
    resume_at = instant_field(request.resume_at, "resume_at", found)
    if resume_at is not None and resume_at <= now:
        found.append(Problem("not_in_future", "resume_at", "'resume_at' must be later than now."))
    if found or resume_at is None:
        raise ValidationError(found, "The deactivation is not valid.")
    return request.note, resume_at


class BulkFilter(StrictWire):
    """Which of the stack's schedules a bulk operation acts on: those of the load tests in
    ``project_id`` and/or called ``load_test_name``; ``{}`` for every one."""

    project_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    load_test_name: str | None = Field(default=None, min_length=1, max_length=200)


class BulkDeactivateRequest(StrictWire):
    """tickwork extension: pause every matching schedule with one note."""

    filter: BulkFilter
    note: str = Field(default="", max_length=1000)
    resume_at: DateTime | None = None


class BulkActivateRequest(StrictWire):
    """tickwork extension: re-activate every matching schedule."""

    filter: BulkFilter


class BulkRefusal(BaseModel):
    id: int
    code: str
    message: str


class BulkResult(BaseModel):
    changed: list[int] = Field(description="Schedules this call paused or re-activated.")
    unchanged: list[int] = Field(description="Already in that state (or expired, for a pause).")
    refused: list[BulkRefusal] = Field(
        default_factory=list, description="Schedules it could not change, and why."
    )


class ScheduleApiModel(BaseModel):
    id: int
    load_test_id: int
    starts: DateTime
    recurrence_rule: ScheduleRecurrenceRule | None
    cron: ScheduleCron | None
    deactivated: bool
    next_run: DateTime | None
    created_by: str | None
    overlap: Overlap = "skip"
    catch_up_seconds: int | None = None
    jitter_seconds: int = Field(
        default=0, description="tickwork extension: the jitter in force (0: none)."
    )
    paused: PauseApiModel | None = Field(
        default=None,
        description="tickwork extension, read-only: the pause in force while deactivated.",
    )


class ScheduleListResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    value: list[ScheduleApiModel]
    count: int | None = Field(default=None, alias="@count")
    next_link: str | None = Field(default=None, alias="@nextLink")


class ErrorDetailsApiModel(BaseModel):
    message: str
    code: str
    target: str | None = None


class ErrorApiModel(BaseModel):
    message: str
    code: str
    target: str | None = None
    details: list[ErrorDetailsApiModel] | None = None


class ErrorResponseApiModel(BaseModel):
    error: ErrorApiModel


def parse_create_schedule(body: str | bytes) -> tuple[CreateScheduleRequest, Schedule]:
    """Validate a CreateScheduleRequest JSON document; ValidationError lists every problem."""
    request = from_json(CreateScheduleRequest, body, "The schedule is not valid.")
    return request, to_core(request)


def jitter_of(
    request: CreateScheduleRequest, schedule: Schedule, *, default_s: int, now: datetime
) -> int:
    """The jitter a schedule set at ``now`` runs with: the request's, else the deployment's
    default narrowed to the schedule's shortest interval (so occurrences stay in order). A
    requested jitter wider than that interval is refused, naming the field."""
    asked = request.jitter_seconds
    wanted = default_s if asked is None else asked
    if wanted == 0:
        return 0
    widest = widest_jitter(schedule, now - ONE_MICROSECOND)
    if widest is None or wanted <= widest:
        return wanted
    if asked is None:
        return widest
    problem = Problem(
        "out_of_range",
        "jitter_seconds",
        f"'jitter_seconds' must be at most {widest}, the shortest time between two of the "
        "schedule's occurrences (so they run in order).",
    )
    raise ValidationError([problem], "The schedule is not valid.")


def stored_request(text: str | bytes) -> CreateScheduleRequest:
    """A request as the store kept it. It was valid when stored; one that a check added since
    refuses (an interval over today's bound, say) is read back as it is, not refused again,
    so a stored schedule never becomes unreadable."""
    try:
        return CreateScheduleRequest.model_validate_json(text)
    except PydanticValidationError:
        pass
    data = json.loads(text)
    rule, cron = data.get("recurrence_rule"), data.get("cron")
    return CreateScheduleRequest.model_construct(
        **_known(CreateScheduleRequest, data),
        recurrence_rule=_stored_rule(rule) if rule is not None else None,
        cron=ScheduleCron.model_construct(**_known(ScheduleCron, cron))
        if cron is not None
        else None,
    )


def _stored_rule(rule: dict[str, Any]) -> ScheduleRecurrenceRule:
    fields = _known(ScheduleRecurrenceRule, rule)
    fields["frequency"] = Frequency(fields["frequency"])
    if fields.get("byday") is not None:
        fields["byday"] = [Weekday(day) for day in fields["byday"]]
    return ScheduleRecurrenceRule.model_construct(**fields)


def _known(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    nested = {"recurrence_rule", "cron"}
    return {k: v for k, v in data.items() if k in model.model_fields and k not in nested}


def to_core(request: CreateScheduleRequest) -> Schedule:
    """The core Schedule of a request; ValidationError listing every problem, the rules of
    this dialect's recurrence rule (below) with the core's."""
    found = _rule_problems(request.recurrence_rule)
    try:
        schedule = _build(request)
    except ValidationError as exc:
        raise ValidationError(found + exc.problems, exc.message) from exc
    if found:
        raise ValidationError(found, "The schedule is not valid.")
    return schedule


def _cron_spec(cron: ScheduleCron) -> CronSpec:
    dst = cron.dst or ScheduleDst()
    return CronSpec(cron.schedule, cron.time_zone, gap=dst.gap, repeat=dst.repeat)


def _rule_problems(rule: ScheduleRecurrenceRule | None) -> list[Problem]:
    """RFC 5545's rules of the wire rule. The core's engine reads a rule with both ``count``
    and ``until`` (whichever ends it first), as stored before this check; a request may not
    set both."""
    found: list[Problem] = []
    if rule is None:
        return found
    if rule.count is not None and rule.until is not None:
        found.append(
            Problem(
                "count_and_until",
                "recurrence_rule.count",
                "Only one of 'count' and 'until' can be set (RFC 5545).",
            )
        )
    if rule.byday is not None and len(set(rule.byday)) != len(rule.byday):
        found.append(
            Problem(
                "byday_repeated",
                "recurrence_rule.byday",
                "'byday' names each day at most once.",
            )
        )
    return found


def _build(request: CreateScheduleRequest) -> Schedule:
    rule = request.recurrence_rule
    return build_schedule(
        starts=request.starts,
        cron=_cron_spec(request.cron) if request.cron else None,
        rule=RuleSpec(
            frequency=rule.frequency,
            interval=rule.interval,
            byday=rule.byday,
            count=rule.count,
            until=rule.until,
        )
        if rule
        else None,
    )


def schedule_api_model(
    *,
    schedule_id: int,
    load_test_id: int,
    request: CreateScheduleRequest,
    deactivated: bool,
    next_run: datetime | None,
    created_by: str | None,
    paused: PauseApiModel | None = None,
    jitter_seconds: int = 0,
) -> ScheduleApiModel:
    """All eight keys; omitted rule fields come back filled, ``starts`` echoed as given."""
    return ScheduleApiModel(
        id=schedule_id,
        load_test_id=load_test_id,
        starts=request.starts,
        recurrence_rule=request.recurrence_rule,
        cron=request.cron,
        deactivated=deactivated,
        next_run=format_instant(next_run) if next_run is not None else None,
        created_by=created_by,
        overlap=request.overlap,
        catch_up_seconds=request.catch_up_seconds,
        jitter_seconds=jitter_seconds,
        paused=paused,
    )


def error_model(parts: ErrorParts) -> ErrorApiModel:
    """The error object of this dialect's body (the report envelope carries it too)."""
    details = [
        ErrorDetailsApiModel(message=p.message, code=p.code, target=p.target) for p in parts.details
    ]
    return ErrorApiModel(
        message=parts.message, code=parts.code, target=parts.target, details=details or None
    )


def render_error(parts: ErrorParts) -> dict[str, Any]:
    """An ErrorResponseApiModel as a plain dict, ready for JSON."""
    return ErrorResponseApiModel(error=error_model(parts)).model_dump(mode="json")


def error_body(
    code: str, message: str, *, target: str | None = None, problems: list[Problem] | None = None
) -> dict[str, Any]:
    """``render_error`` of the parts given one by one."""
    return render_error(ErrorParts(code, message, tuple(problems or ()), target))
