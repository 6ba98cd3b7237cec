"""Report schedules: list (with filters and optional pages), get, create, update, and bulk
delete, in the document's envelopes (``data``, ``message``, ``status``).

Auth, tenancy and error codes are the k6 API's. Errors keep the document's envelope: the
operation's documented message, ``"status": "error"``, and tickwork's ``error`` object (code,
details) beside them, also for a body refused for its size before the app reads it and a
method the path does not serve (``enveloped``). A path that matches no route answers the k6
error body: it names no operation of this API.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from tickwork.api import errors_http
from tickwork.api.deps import Caller, Context, JsonBody, PlainInt
from tickwork.api.errors_http import PayloadTooLarge, UnsupportedMediaType
from tickwork.api.render import json_response
from tickwork.core import Schedule
from tickwork.core.instants import to_us
from tickwork.core.reports import report_schedule
from tickwork.dialects.reports import (
    MAX_PAGE_SIZE,
    MAX_UNPAGINATED,
    MESSAGES,
    CreateReportScheduleRequest,
    DeleteReportSchedulesRequest,
    Filters,
    MessageEnvelope,
    Period,
    RegistriesData,
    ReportErrorEnvelope,
    ReportSchedule,
    ReportScheduleEnvelope,
    ReportScheduleListEnvelope,
    ScheduleData,
    UpdateReportScheduleRequest,
    check,
    error_envelope,
    parse_create,
    parse_delete,
    parse_id,
    parse_ids,
    parse_patch,
    schedule_model,
)
from tickwork.errors import (
    AuthError,
    Conflict,
    NotFound,
    Problem,
    StoreUnavailable,
    ValidationError,
)
from tickwork.store import ReportRecord

UUID_PATTERN = r"^[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}$"
MAX_PAGE = (2**53 - 1) // MAX_PAGE_SIZE

_ANSWERED = (
    ValidationError,
    NotFound,
    Conflict,
    AuthError,
    StoreUnavailable,
    PayloadTooLarge,
    UnsupportedMediaType,
    RequestValidationError,
    StarletteHTTPException,
)
"""What the app's error handlers answer (anything else is a bug: the app's 500 handler)."""


async def _k6_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, RequestValidationError):
        return await errors_http.on_request_validation(request, exc)
    if isinstance(exc, StarletteHTTPException):
        return await errors_http.on_http_exception(request, exc)
    return await errors_http.on_tickwork_error(request, exc)


class ReportRoute(APIRoute):
    """A route whose errors come in the report envelope, with the operation's message."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        operation = (self.operation_id or "").rsplit("_", 1)[-1]

        async def enveloped(request: Request) -> Response:
            try:
                return await handler(request)
            except _ANSWERED as exc:
                plain = await _k6_error(request, exc)
                body = error_envelope(operation, plain.status_code, json.loads(bytes(plain.body)))
                headers = {k: v for k, v in plain.headers.items() if k.lower() != "content-length"}
                return JSONResponse(body, plain.status_code, headers=headers)

        return enveloped


router = APIRouter(prefix="/api/v1/reports", tags=["reports"], route_class=ReportRoute)

_BY_METHOD = {"POST": "create", "PUT": "update", "DELETE": "delete"}


def enveloped(method: str, path: str, status: int, k6_body: dict[str, Any]) -> dict[str, Any]:
    """The error body of a request answered before any of its routes ran (a body over the
    limit, a method the path does not serve): in this API's envelope when ``path`` is one of
    its routes', else ``k6_body`` as it is (as for a path no route serves)."""
    routes = [
        route
        for route in router.routes
        if isinstance(route, APIRoute) and route.path_regex.match(path)
    ]
    if not routes:
        return k6_body
    operation = next(
        (
            (route.operation_id or "").rsplit("_", 1)[-1]
            for route in routes
            if method in (route.methods or ())
        ),
        _BY_METHOD.get(method, "list"),
    )
    return error_envelope(operation, status, k6_body)


ScheduleId = Annotated[str, Path(pattern=UUID_PATTERN, description="The schedule's id (a UUID).")]

_DESCRIPTIONS = {
    400: "The request is not valid (the message names the operation).",
    401: "Invalid token or authentication scheme.",
    403: "Forbidden.",
    404: "No such report schedule in the stack.",
    413: "The request body is over the size limit.",
    415: "The request body is not JSON.",
    503: "The store (Redis) is unavailable.",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": ReportErrorEnvelope, "description": _DESCRIPTIONS[status]}
        for status in (400, 401, 403, 503, *statuses)
    }


def _extra(body: type | None = None) -> dict[str, Any]:
    extra: dict[str, Any] = {"parameters": [{"$ref": "#/components/parameters/stackId"}]}
    if body is not None:
        extra["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{body.__name__}"}}
            },
        }
    return extra


def _model(report: ReportRecord) -> ReportSchedule:
    return schedule_model(
        report_id=report.id,
        attrs=report.attrs,
        scheduled_at_us=to_us(report.scheduled_at),
        scheduled_by=report.scheduled_by,
        first_run_us=to_us(report.first_run_at) if report.first_run_at else None,
        last_run_us=to_us(report.last_run_at) if report.last_run_at else None,
    )


def _one(report: ReportRecord, operation: str) -> Response:
    envelope = ReportScheduleEnvelope(
        data=ScheduleData(schedule=_model(report)), message=MESSAGES[operation], status="ok"
    )
    return json_response(envelope)


def _pagination_problem(target: str, message: str) -> ValidationError:
    return ValidationError([Problem("invalid_pagination", target, message)], message)


@router.get(
    "/schedules",
    operation_id="reports_schedules_list",
    summary="List all schedules.",
    description="Oldest first. With paginate=false at most "
    f"{MAX_UNPAGINATED} schedules may match (else 400: paginate). Filters combine with AND; "
    "'name' matches any part of the name, ignoring case; scheduled_at_start and "
    "scheduled_by_end bound scheduled_at (microseconds), inclusive.",
    response_model=ReportScheduleListEnvelope,
    responses=_errors(),
    openapi_extra=_extra(),
)
def list_report_schedules(  # one parameter per documented filter
    *,
    caller: Caller,
    context: Context,
    paginate: Annotated[bool, Query(description="Whether the result is paginated.")],
    page: Annotated[
        int | None, PlainInt, Query(ge=1, le=MAX_PAGE, description="Page, from 1.")
    ] = None,
    page_size: Annotated[int | None, PlainInt, Query(ge=1, le=MAX_PAGE_SIZE)] = None,
    id: Annotated[str | None, Query(max_length=64)] = None,
    id_list: Annotated[list[str] | None, Query(max_length=MAX_UNPAGINATED)] = None,
    name: Annotated[str | None, Query(max_length=255)] = None,
    type: Annotated[str | None, Query(max_length=64)] = None,
    schedule: Annotated[Period | None, Query()] = None,
    scheduled_at_start: Annotated[int | None, PlainInt, Query(ge=0, le=2**63 - 1)] = None,
    scheduled_by_end: Annotated[int | None, PlainInt, Query(ge=0, le=2**63 - 1)] = None,
    scheduled_at_end: Annotated[
        int | None, PlainInt, Query(ge=0, le=2**63 - 1, include_in_schema=False)
    ] = None,
    scheduled_by: Annotated[str | None, Query(max_length=320)] = None,
) -> Response:
    if paginate and page is None:
        raise _pagination_problem("page", "'page' is required when paginate is true.")
    if paginate and page_size is None:
        raise _pagination_problem("page_size", "'page_size' is required when paginate is true.")
    filters = Filters(
        id=parse_id(id, "id") if id is not None else None,
        id_list=parse_ids(id_list, "id_list") if id_list is not None else None,
        name=name,
        type=type,
        schedule=schedule,
        scheduled_at_start=scheduled_at_start,
        # The document names the upper bound scheduled_by_end; scheduled_at_end is read too.
        scheduled_at_end=scheduled_by_end if scheduled_by_end is not None else scheduled_at_end,
        scheduled_by=scheduled_by,
    )
    reports = [
        report
        for report in context.store.reports.select(
            caller.stack,
            ids=filters.ids(),
            since_us=filters.scheduled_at_start,
            until_us=filters.scheduled_at_end,
        )
        if filters.matches(report.attrs, report.scheduled_by)
    ]
    if page is not None and page_size is not None and paginate:
        reports = reports[(page - 1) * page_size : page * page_size]
    elif len(reports) > MAX_UNPAGINATED:
        raise _pagination_problem(
            "paginate",
            f"{len(reports)} schedules match, over the {MAX_UNPAGINATED} an unpaginated list "
            "holds; set paginate=true.",
        )
    envelope = ReportScheduleListEnvelope(
        data=RegistriesData(registries=[_model(report) for report in reports]),
        message=MESSAGES["list"],
        status="ok",
    )
    return json_response(envelope)


@router.get(
    "/schedules/{schedule_id}",
    operation_id="reports_schedules_get",
    summary="List a specific schedule.",
    response_model=ReportScheduleEnvelope,
    responses=_errors(404),
    openapi_extra=_extra(),
)
def get_report_schedule(schedule_id: ScheduleId, caller: Caller, context: Context) -> Response:
    report = context.store.reports.get(caller.stack, parse_id(schedule_id))
    return _one(report, "get")


@router.post(
    "/schedules",
    operation_id="reports_schedules_create",
    summary="Create a schedule.",
    description="The first report is sent at the end of the first whole period after now.",
    response_model=ReportScheduleEnvelope,
    responses=_errors(413, 415),
    openapi_extra=_extra(CreateReportScheduleRequest),
)
def create_report_schedule(caller: Caller, context: Context, body: JsonBody) -> Response:
    attrs = parse_create(body)
    now = context.clock()
    report = context.store.reports.create(
        caller.stack,
        attrs=attrs,
        schedule=report_schedule(attrs["schedule"], attrs["timezone"], now=now),
        now=now,
        scheduled_by=caller.email,
    )
    return _one(report, "create")


@router.put(
    "/schedules/{schedule_id}",
    operation_id="reports_schedules_update",
    summary="Update a schedule.",
    description="Only the attrs given change. A new 'schedule' or 'timezone' moves the next "
    "report to the end of the first whole new period after now.",
    response_model=ReportScheduleEnvelope,
    responses=_errors(404, 413, 415),
    openapi_extra=_extra(UpdateReportScheduleRequest),
)
def update_report_schedule(
    schedule_id: ScheduleId, caller: Caller, context: Context, body: JsonBody
) -> Response:
    report_id = parse_id(schedule_id)
    context.store.reports.get(caller.stack, report_id)  # 404 before a body problem
    changed = parse_patch(body)
    now = context.clock()

    def change(report: ReportRecord) -> tuple[ReportRecord, Schedule | None]:
        merged = {**report.attrs, **changed}
        check(merged)
        timing = ("schedule", "timezone")
        moved = any(merged[key] != report.attrs[key] for key in timing)
        trigger = report_schedule(merged["schedule"], merged["timezone"], now=now)
        return replace(report, attrs=merged), trigger if moved else None

    updated = context.store.reports.update(caller.stack, report_id, change, now=now)
    return _one(updated, "update")


@router.delete(
    "/registries",
    operation_id="reports_registries_delete",
    summary="Delete multiple schedules.",
    description="All or none: when one of the ids is not a schedule of the stack, nothing is "
    "deleted (404 naming it). Their test runs stay readable.",
    response_model=MessageEnvelope,
    responses=_errors(404, 413, 415),
    openapi_extra=_extra(DeleteReportSchedulesRequest),
)
def delete_report_schedules(caller: Caller, context: Context, body: JsonBody) -> Response:
    context.store.reports.delete_many(caller.stack, parse_delete(body))
    return json_response(MessageEnvelope(message=MESSAGES["delete"], status="ok"))
