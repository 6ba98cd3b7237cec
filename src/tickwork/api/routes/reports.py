"""Report schedules: list (with filters and optional pages), get, create, update, and bulk
delete, in the document's envelopes (``data``, ``message``, ``status``).

Auth, tenancy and error codes are the k6 API's. Errors keep the document's envelope: the
operation's documented message, ``"status": "error"``, and tickwork's ``error`` object (code,
details) beside them, also for a body refused for its size before the app reads it and a
method the path does not serve (``enveloped``). A path that matches no route answers the k6
error body: it names no operation of this API. What an error says (status, code, message,
details) is decided once for every dialect (``errors_http.error_answer``); this API only
shapes it (``reports.error_envelope``).

tickwork's extensions, in the same envelope: a report's occurrences (``/schedules/{id}/
occurrences``: the k6 API's parameters and items, a report's schedule being a schedule record)
and its audit trail (``/schedules/{id}/audit``, newest first, ``page``/``page_size``; a deleted
report's stays readable by its stack). Writes record who made them (``Acting``).

A list reads one page of the stack's index when the index answers its filters (none, or the
scheduled_at range): O(page), whatever the stack holds. The other filters are not indexed: the
ids name the records to read, and name, type, schedule and scheduled_by are tested on every
record of the range, then the matches are paged.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from tickwork.api.deps import Acting, ApiContext, Caller, Context, JsonBody, PlainInt
from tickwork.api.errors_http import PayloadTooLarge, UnsupportedMediaType, error_answer
from tickwork.api.openapi import RETRY_AFTER
from tickwork.api.render import json_response
from tickwork.api.routes.audit import entry_model, trail
from tickwork.api.routes.ledger import (
    DEFAULT_LIMIT,
    After,
    Before,
    Limit,
    next_link,
    schedule_occurrences,
)
from tickwork.core import Schedule
from tickwork.dialects.k6 import render_error
from tickwork.dialects.reports import (
    INVALID,
    MAX_PAGE_SIZE,
    MAX_UNPAGINATED,
    CreateReportScheduleRequest,
    DeleteReportSchedulesRequest,
    Filters,
    MessageEnvelope,
    Period,
    ReportAuditEnvelope,
    ReportErrorEnvelope,
    ReportOccurrencesEnvelope,
    ReportScheduleEnvelope,
    ReportScheduleListEnvelope,
    UpdateReportScheduleRequest,
    apply_update,
    audit_envelope,
    deleted_envelope,
    error_envelope,
    list_envelope,
    occurrences_envelope,
    parse_create,
    parse_delete,
    parse_id,
    parse_ids,
    parse_patch,
    schedule_envelope,
    trigger,
)
from tickwork.dialects.wire import ErrorParts
from tickwork.errors import (
    AuthError,
    Conflict,
    NotFound,
    Problem,
    StoreUnavailable,
    ValidationError,
)
from tickwork.store import ReportRecord
from tickwork.store.audit import SCHEDULE_KINDS
from tickwork.store.quotas import Limits, interval_problem
from tickwork.store.reports import DIALECT

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


class ReportRoute(APIRoute):
    """A route whose errors come in the report envelope, with the operation's message."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        operation = (self.operation_id or "").rsplit("_", 1)[-1]

        async def enveloped(request: Request) -> Response:
            try:
                return await handler(request)
            except _ANSWERED as exc:
                answer = error_answer(request, exc)
                body = error_envelope(operation, answer.status, answer.parts)
                return JSONResponse(body, answer.status, headers=answer.headers)

        return enveloped


router = APIRouter(prefix="/api/v1/reports", tags=["reports"], route_class=ReportRoute)

_BY_METHOD = {"POST": "create", "PUT": "update", "DELETE": "delete"}


def enveloped(method: str, path: str, status: int, parts: ErrorParts) -> dict[str, Any]:
    """The body of an error answered before any of its routes ran (a body over the limit, a
    method the path does not serve, a rate limit): in this API's envelope when ``path`` is
    one of its routes', else the k6 error body (as for a path no route serves). The
    middlewares that answer these hand over the error's parts (``limits.Reshape``)."""
    routes = [
        route
        for route in router.routes
        if isinstance(route, APIRoute) and route.path_regex.match(path)
    ]
    if not routes:
        return render_error(parts)
    operation = next(
        (
            (route.operation_id or "").rsplit("_", 1)[-1]
            for route in routes
            if method in (route.methods or ())
        ),
        _BY_METHOD.get(method, "list"),
    )
    return error_envelope(operation, status, parts)


ScheduleId = Annotated[str, Path(pattern=UUID_PATTERN, description="The schedule's id (a UUID).")]

_DESCRIPTIONS = {
    400: "The request is not valid (the message names the operation).",
    401: "Invalid token or authentication scheme.",
    403: "Forbidden.",
    404: "No such report schedule in the stack.",
    409: "The stack's quota of report schedules is reached (code quota_exceeded; the error's "
    "target names the quota).",
    413: "The request body is over the size limit.",
    415: "The request body is not JSON.",
    429: "Over a rate limit (per token, stack or client address): Retry-After says when to retry.",
    503: "The store (Redis) is unavailable.",
}
_HEADERS = {429: RETRY_AFTER}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": ReportErrorEnvelope, "description": _DESCRIPTIONS[status]}
        | ({"headers": _HEADERS[status]} if status in _HEADERS else {})
        for status in (400, 401, 403, 429, 503, *statuses)
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


def _one(report: ReportRecord, operation: str) -> Response:
    return json_response(schedule_envelope(report, operation))


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
    if paginate and page is not None and page_size is not None:
        skip, top = (page - 1) * page_size, page_size
    else:  # all of them, unless there are too many
        skip, top = 0, MAX_UNPAGINATED
    reports, total = _select(context, caller.stack, filters, skip=skip, top=top)
    if not paginate and total > MAX_UNPAGINATED:
        raise _pagination_problem(
            "paginate",
            f"{total} schedules match, over the {MAX_UNPAGINATED} an unpaginated list "
            "holds; set paginate=true.",
        )
    return json_response(list_envelope(reports))


def _select(
    context: ApiContext, stack: int, filters: Filters, *, skip: int, top: int
) -> tuple[list[ReportRecord], int]:
    """The reports ``skip`` .. ``skip + top - 1`` of those the filters match, oldest first,
    and how many match."""
    if filters.indexed():
        return context.store.reports.page(
            stack,
            skip=skip,
            top=top,
            since_us=filters.scheduled_at_start,
            until_us=filters.scheduled_at_end,
        )
    matching = [
        report
        for report in context.store.reports.select(
            stack,
            ids=filters.ids(),
            since_us=filters.scheduled_at_start,
            until_us=filters.scheduled_at_end,
        )
        if filters.matches(report.attrs, report.scheduled_by)
    ]
    return matching[skip : skip + top], len(matching)


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
    description="The first report is sent at the end of the first whole period after now. "
    "Past the stack's quota of report schedules: 409 quota_exceeded.",
    response_model=ReportScheduleEnvelope,
    responses=_errors(409, 413, 415),
    openapi_extra=_extra(CreateReportScheduleRequest),
)
def create_report_schedule(
    caller: Caller, actor: Acting, context: Context, body: JsonBody, http: Request
) -> Response:
    limits: Limits = http.app.state.limits
    attrs = parse_create(body)
    now = context.clock()
    schedule = trigger(attrs, now=now)
    _check_interval(schedule, now=now, limits=limits)
    report = context.store.reports.create(
        caller.stack,
        attrs=attrs,
        schedule=schedule,
        now=now,
        scheduled_by=caller.email,
        actor=actor,
        quotas=limits.of(caller.stack),
    )
    return _one(report, "create")


def _check_interval(schedule: Schedule, *, now: datetime, limits: Limits) -> None:
    """Reports are daily at the most often: refused only under a minimum interval over a
    day, as every schedule is."""
    problem = interval_problem(
        schedule, now=now, minimum_s=limits.min_interval_s, target="attrs.schedule"
    )
    if problem is not None:
        raise ValidationError([problem], INVALID)


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
    schedule_id: ScheduleId,
    caller: Caller,
    actor: Acting,
    context: Context,
    body: JsonBody,
    *,
    http: Request,
) -> Response:
    limits: Limits = http.app.state.limits
    report_id = parse_id(schedule_id)
    context.store.reports.get(caller.stack, report_id)  # 404 before a body problem
    changed = parse_patch(body)
    now = context.clock()

    def change(report: ReportRecord) -> tuple[ReportRecord, Schedule | None]:
        attrs, new_trigger = apply_update(report.attrs, changed, now=now)
        if new_trigger is not None:
            _check_interval(new_trigger, now=now, limits=limits)
        return replace(report, attrs=attrs), new_trigger

    updated = context.store.reports.update(caller.stack, report_id, change, now=now, actor=actor)
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
def delete_report_schedules(
    caller: Caller, actor: Acting, context: Context, body: JsonBody
) -> Response:
    context.store.reports.delete_many(
        caller.stack, parse_delete(body), now=context.clock(), actor=actor
    )
    return json_response(deleted_envelope())


# tickwork extensions: a report's occurrences and its audit trail


@router.get(
    "/schedules/{schedule_id}/occurrences",
    operation_id="reports_schedules_occurrences",
    summary="List a schedule's occurrences, with notes and what happened (tickwork extension).",
    description="As the k6 API's /cloud/v6/schedules/{id}/occurrences, in this API's "
    "envelope: oldest first, strictly after `after` (default now) and before `before` (RFC "
    "3339), at most `limit`; each with its local time in the report's zone, notes (DST), and "
    "for past ones what happened (fired with its run, skipped with its reason, ...). "
    "`next_link` continues the list.",
    response_model=ReportOccurrencesEnvelope,
    responses=_errors(404),
    openapi_extra=_extra(),
)
def list_report_occurrences(
    *,
    schedule_id: ScheduleId,
    caller: Caller,
    context: Context,
    request: Request,
    after: After = None,
    before: Before = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Response:
    report = context.store.reports.get(caller.stack, parse_id(schedule_id))
    record = context.store.schedules.get(caller.stack, report.schedule_id, dialect=DIALECT)
    page = schedule_occurrences(
        context.store, record, after=after, before=before, limit=limit, now=context.clock()
    )
    link = next_link(request, context.public_url, page, limit=limit, before=before)
    return json_response(occurrences_envelope(page.items, link))


DEFAULT_AUDIT_PAGE_SIZE = 100


@router.get(
    "/schedules/{schedule_id}/audit",
    operation_id="reports_schedules_audit",
    summary="A schedule's audit trail, newest first (tickwork extension).",
    description="Created, updated (each attr that changed, old -> new), deleted: when, by "
    "whom (the token's e-mail), from where (api, cli, console). A deleted schedule's trail "
    f"stays readable by its stack. `page` from 1, `page_size` {DEFAULT_AUDIT_PAGE_SIZE} "
    f"unless given (at most {MAX_PAGE_SIZE}); `count` is the number of entries.",
    response_model=ReportAuditEnvelope,
    responses=_errors(404),
    openapi_extra=_extra(),
)
def report_audit(
    schedule_id: ScheduleId,
    caller: Caller,
    context: Context,
    page: Annotated[int, PlainInt, Query(ge=1, le=MAX_PAGE, description="Page, from 1.")] = 1,
    page_size: Annotated[int, PlainInt, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_AUDIT_PAGE_SIZE,
) -> Response:
    report_id = parse_id(schedule_id)
    try:
        context.store.reports.get(caller.stack, report_id)
        exists = True
    except NotFound:
        exists = False
    entries, total = trail(
        context.store,
        caller.stack,
        SCHEDULE_KINDS[DIALECT],
        report_id,
        exists=exists,
        skip=(page - 1) * page_size,
        top=page_size,
    )
    return json_response(audit_envelope([entry_model(entry) for entry in entries], total))
