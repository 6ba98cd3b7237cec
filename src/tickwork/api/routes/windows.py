"""Blackout windows (tickwork extension): a stack's, over all its schedules, and a k6
schedule's own. The scheduler decides with them inside its fenced fire commit."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response

from tickwork.api.deps import Acting, Caller, Context, JsonBody, ResourceId
from tickwork.api.openapi import error_responses, json_request
from tickwork.api.render import json_response
from tickwork.dialects.windows import (
    BlackoutWindowApiModel,
    BlackoutWindowListResponse,
    BlackoutWindowRequest,
    parse_window,
    window_model,
)
from tickwork.errors import NotFound
from tickwork.store.windows import MAX_SCHEDULE_WINDOWS, MAX_STACK_WINDOWS, WindowRecord

router = APIRouter(prefix="/cloud/v6", tags=["blackout windows"])


_WHAT = (
    "A window is one-off (`from`, `to`) or recurring (`cron` {schedule, time_zone} for when "
    "each span starts, and `duration_seconds`). Policy `skip`: an occurrence planned inside "
    "is recorded skipped (reason `blackout`, with the window's id); `defer`: it runs at the "
    "window's end, several deferred occurrences of a schedule collapsing into one run (the "
    "others recorded skipped, reason `deferred`). Decided in the scheduler's fire commit: a "
    "window created a moment before an occurrence is honoured, or the occurrence ran before "
    "it existed — never both."
)


def _model(record: WindowRecord, now: datetime) -> BlackoutWindowApiModel:
    return window_model(
        record.window,
        schedule_id=record.schedule_id,
        note=record.note,
        created=record.created,
        created_by=record.created_by,
        cron_given=record.cron_given,
        now=now,
    )


def _new(
    body: bytes, *, stack: int, schedule_id: int | None, context: Context, created_by: str | None
) -> WindowRecord:
    now = context.clock()
    window, cron_given, note = parse_window(body, now=now)
    # No id yet: the store takes one once the window fits, so a refused one leaves no trace.
    return WindowRecord(
        window=window,
        stack=stack,
        schedule_id=schedule_id,
        note=note,
        created=now,
        created_by=created_by,
        cron_given=cron_given,
    )


@router.post(
    "/blackout_windows",
    operation_id="blackout_windows_create",
    summary="Create a blackout window for every schedule of the stack (tickwork extension).",
    description=_WHAT + f" At most {MAX_STACK_WINDOWS} per stack (409 past it).",
    status_code=201,
    response_model=BlackoutWindowApiModel,
    responses=error_responses(409),
    openapi_extra=json_request(BlackoutWindowRequest),
)
def create_stack_window(
    caller: Caller, actor: Acting, context: Context, body: JsonBody
) -> Response:
    record = _new(
        body, stack=caller.stack, schedule_id=None, context=context, created_by=caller.email
    )
    added = context.store.windows.add(record, actor=actor)
    return json_response(_model(added, context.clock()), status_code=201)


@router.get(
    "/blackout_windows",
    operation_id="blackout_windows_list",
    summary="List the stack's blackout windows (tickwork extension).",
    response_model=BlackoutWindowListResponse,
)
def list_stack_windows(caller: Caller, context: Context) -> Response:
    now = context.clock()
    records = context.store.windows.list(caller.stack)
    return json_response(BlackoutWindowListResponse(value=[_model(r, now) for r in records]))


@router.get(
    "/blackout_windows/{id}",
    operation_id="blackout_windows_retrieve",
    summary="Get one of the stack's blackout windows (tickwork extension).",
    response_model=BlackoutWindowApiModel,
    responses=error_responses(404),
)
def get_stack_window(id: ResourceId, caller: Caller, context: Context) -> Response:
    return json_response(_model(context.store.windows.get(caller.stack, id), context.clock()))


@router.delete(
    "/blackout_windows/{id}",
    operation_id="blackout_windows_destroy",
    summary="Delete one of the stack's blackout windows (tickwork extension).",
    status_code=204,
    response_class=Response,
    responses=error_responses(404),
)
def delete_stack_window(
    id: ResourceId, caller: Caller, actor: Acting, context: Context
) -> Response:
    context.store.windows.delete(caller.stack, id, now=context.clock(), actor=actor)
    return Response(status_code=204)


@router.post(
    "/schedules/{id}/blackout_windows",
    operation_id="schedules_blackout_windows_create",
    summary="Create a blackout window of one schedule (tickwork extension).",
    description=_WHAT + f" At most {MAX_SCHEDULE_WINDOWS} per schedule (409 past it).",
    status_code=201,
    response_model=BlackoutWindowApiModel,
    responses=error_responses(404, 409),
    openapi_extra=json_request(BlackoutWindowRequest),
)
def create_schedule_window(
    id: ResourceId, caller: Caller, actor: Acting, context: Context, body: JsonBody
) -> Response:
    context.store.schedules.get(caller.stack, id)
    record = _new(
        body, stack=caller.stack, schedule_id=id, context=context, created_by=caller.email
    )
    added = context.store.schedules.add_window(caller.stack, id, record, actor=actor).windows[-1]
    return json_response(_model(added, context.clock()), status_code=201)


@router.get(
    "/schedules/{id}/blackout_windows",
    operation_id="schedules_blackout_windows_list",
    summary="List a schedule's own blackout windows (tickwork extension).",
    description="The stack's windows apply too: `GET /cloud/v6/blackout_windows`.",
    response_model=BlackoutWindowListResponse,
    responses=error_responses(404),
)
def list_schedule_windows(id: ResourceId, caller: Caller, context: Context) -> Response:
    now = context.clock()
    record = context.store.schedules.get(caller.stack, id)
    return json_response(BlackoutWindowListResponse(value=[_model(w, now) for w in record.windows]))


@router.get(
    "/schedules/{id}/blackout_windows/{window_id}",
    operation_id="schedules_blackout_windows_retrieve",
    summary="Get one of a schedule's blackout windows (tickwork extension).",
    response_model=BlackoutWindowApiModel,
    responses=error_responses(404),
)
def get_schedule_window(
    id: ResourceId, window_id: ResourceId, caller: Caller, context: Context
) -> Response:
    record = context.store.schedules.get(caller.stack, id)
    found = [window for window in record.windows if window.id == window_id]
    if not found:
        raise NotFound(f"Blackout window {window_id} not found.")
    return json_response(_model(found[0], context.clock()))


@router.delete(
    "/schedules/{id}/blackout_windows/{window_id}",
    operation_id="schedules_blackout_windows_destroy",
    summary="Delete one of a schedule's blackout windows (tickwork extension).",
    status_code=204,
    response_class=Response,
    responses=error_responses(404),
)
def delete_schedule_window(
    id: ResourceId, window_id: ResourceId, caller: Caller, actor: Acting, context: Context
) -> Response:
    context.store.schedules.remove_window(
        caller.stack, id, window_id, now=context.clock(), actor=actor
    )
    return Response(status_code=204)
