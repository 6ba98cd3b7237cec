"""The k6 Cloud REST API v6 schedule shapes, exactly as its OpenAPI description names them.

``parse_create_schedule`` turns request JSON into the wire model and a core Schedule, with
one Problem per violation; ``schedule_api_model`` renders the stored wire model back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from tickwork.core import CronSpec, Frequency, RuleSpec, Schedule, Weekday, build_schedule
from tickwork.core.instants import format_instant
from tickwork.errors import Problem, ValidationError

DateTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class _Wire(BaseModel):
    # JSON types as written: "2" is not an integer and 1 is not a string.
    model_config = ConfigDict(strict=True, extra="ignore")


class ScheduleCron(_Wire):
    schedule: str = Field(
        max_length=256,
        description="A cron expression with exactly 5 entries, or an alias. The allowed "
        "aliases are: @yearly, @annually, @monthly, @weekly, @daily, @hourly.",
    )
    time_zone: str = Field(max_length=128, description="The timezone of the cron expression.")


class ScheduleRecurrenceRule(_Wire):
    frequency: Frequency
    interval: int = Field(default=1, ge=1)
    byday: list[Weekday] | None = None
    until: DateTime | None = None
    count: int | None = Field(default=None, ge=1)


Overlap = Literal["skip", "allow"]


class CreateScheduleRequest(_Wire):
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


_PYDANTIC_CODES = {
    "missing": "required",
    "greater_than_equal": "too_small",
    "less_than_equal": "too_large",
    "string_too_long": "too_long",
    "enum": "invalid_choice",
    "json_invalid": "invalid_json",
    "json_type": "invalid_json",
}


def problems_from_pydantic(exc: PydanticValidationError, prefix: str = "") -> list[Problem]:
    """One Problem per pydantic error, with stable codes and dotted targets."""
    found = []
    for error in exc.errors(include_url=False):
        path = [str(part) for part in error["loc"]]
        target = ".".join([prefix, *path] if prefix else path) or None
        code = _PYDANTIC_CODES.get(error["type"], "invalid_type")
        found.append(Problem(code, target, str(error["msg"])))
    return found


def parse_create_schedule(body: str | bytes) -> tuple[CreateScheduleRequest, Schedule]:
    """Validate a CreateScheduleRequest JSON document; ValidationError lists every problem."""
    try:
        request = CreateScheduleRequest.model_validate_json(body)
    except PydanticValidationError as exc:
        raise ValidationError(problems_from_pydantic(exc), "The schedule is not valid.") from exc
    return request, to_core(request)


def to_core(request: CreateScheduleRequest) -> Schedule:
    rule = request.recurrence_rule
    return build_schedule(
        starts=request.starts,
        cron=CronSpec(request.cron.schedule, request.cron.time_zone) if request.cron else None,
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
    )


def error_body(
    code: str, message: str, *, target: str | None = None, problems: list[Problem] | None = None
) -> dict[str, Any]:
    """An ErrorResponseApiModel as a plain dict, ready for JSON."""
    details = (
        [ErrorDetailsApiModel(message=p.message, code=p.code, target=p.target) for p in problems]
        if problems
        else None
    )
    model = ErrorResponseApiModel(
        error=ErrorApiModel(message=message, code=code, target=target, details=details)
    )
    return model.model_dump(mode="json")
