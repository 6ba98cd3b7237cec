"""Schedules: the seven operations of the k6 Cloud v6 Schedules API."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Request, Response

from tickwork.api.deps import Acting, Caller, Context, JsonBody, ResourceId
from tickwork.api.openapi import error_responses, json_request
from tickwork.api.pagination import Paging, page_response
from tickwork.api.render import json_response, schedule_model
from tickwork.dialects.k6 import (
    CreateScheduleRequest,
    ScheduleApiModel,
    ScheduleListResponse,
    parse_create_schedule,
)
from tickwork.errors import NotFound

router = APIRouter(prefix="/cloud/v6", tags=["schedules"])


@router.get(
    "/load_tests/{id}/schedule",
    operation_id="load_tests_schedule_retrieve",
    summary="Get the load test schedule.",
    response_model=ScheduleApiModel,
    responses=error_responses(404),
)
def get_load_test_schedule(id: ResourceId, caller: Caller, context: Context) -> Response:
    record = context.store.schedules.for_load_test(caller.stack, id)
    return json_response(schedule_model(record, now=context.clock()))


@router.post(
    "/load_tests/{id}/schedule",
    operation_id="load_tests_schedule_create",
    summary="Set a schedule for the load test.",
    description="This operation overwrites any existing test schedule and keeps its id.",
    response_model=ScheduleApiModel,
    responses=error_responses(404),
    openapi_extra=json_request(CreateScheduleRequest),
)
def set_load_test_schedule(
    id: ResourceId, caller: Caller, actor: Acting, context: Context, body: JsonBody
) -> Response:
    store = context.store
    store.load_tests.get(caller.stack, id)
    request, schedule = parse_create_schedule(body)
    now = context.clock()
    record = store.schedules.put(
        stack=caller.stack,
        load_test_id=id,
        schedule=schedule,
        request=request.model_dump_json(),
        created_by=caller.email,
        now=now,
        overlap=request.overlap,
        catch_up_s=request.catch_up_seconds,
        actor=actor,
    )
    try:
        store.load_tests.get(caller.stack, id)
    except NotFound:
        # The load test was deleted while the schedule was being written: the deletion
        # could not see this schedule, so remove it here rather than leave it to fire.
        with contextlib.suppress(NotFound):
            store.schedules.delete(caller.stack, record.id, now=now, actor=actor)
        raise
    return json_response(schedule_model(record, now=now))


@router.get(
    "/schedules",
    operation_id="schedules_list",
    summary="List all schedules.",
    response_model=ScheduleListResponse,
)
def list_schedules(caller: Caller, context: Context, paging: Paging, request: Request) -> Response:
    records, total = context.store.schedules.page(caller.stack, skip=paging.skip, top=paging.top)
    now = context.clock()
    return page_response(
        ScheduleListResponse,
        [schedule_model(record, now=now) for record in records],
        total,
        query=paging,
        request=request,
        public_url=context.public_url,
    )


@router.get(
    "/schedules/{id}",
    operation_id="schedules_retrieve",
    summary="Get a schedule by ID.",
    response_model=ScheduleApiModel,
    responses=error_responses(404),
)
def get_schedule(id: ResourceId, caller: Caller, context: Context) -> Response:
    record = context.store.schedules.get(caller.stack, id)
    return json_response(schedule_model(record, now=context.clock()))


@router.delete(
    "/schedules/{id}",
    operation_id="schedules_destroy",
    summary="Delete a schedule.",
    responses=error_responses(404),
    status_code=204,
    response_class=Response,
)
def delete_schedule(id: ResourceId, caller: Caller, actor: Acting, context: Context) -> Response:
    context.store.schedules.delete(caller.stack, id, now=context.clock(), actor=actor)
    return Response(status_code=204)


@router.post(
    "/schedules/{id}/activate",
    operation_id="schedule_activate",
    summary="Re-activate deactivated schedule.",
    description="A deactivated schedule can be re-activated only if it still has at least "
    "one future recurrence; otherwise 409. Occurrences that passed while it was deactivated "
    "do not fire.",
    responses=error_responses(404, 409),
    status_code=204,
    response_class=Response,
)
def activate_schedule(id: ResourceId, caller: Caller, actor: Acting, context: Context) -> Response:
    context.store.schedules.activate(caller.stack, id, now=context.clock(), actor=actor)
    return Response(status_code=204)


@router.post(
    "/schedules/{id}/deactivate",
    operation_id="schedule_deactivate",
    summary="Deactivate a schedule.",
    description="A deactivated schedule will not trigger new test runs. The operation has no "
    "effect if the schedule is expired.",
    responses=error_responses(404),
    status_code=204,
    response_class=Response,
)
def deactivate_schedule(
    id: ResourceId, caller: Caller, actor: Acting, context: Context
) -> Response:
    context.store.schedules.deactivate(
        caller.stack, id, now=context.clock(), by=actor.who, actor=actor
    )
    return Response(status_code=204)
