"""Schedules: the seven operations of the k6 Cloud v6 Schedules API."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Request, Response

from tickwork.api.deps import Acting, Caller, Context, JsonBody, RawBody, ResourceId, json_data
from tickwork.api.openapi import error_responses, json_request
from tickwork.api.pagination import Paging, page_response
from tickwork.api.render import json_response, schedule_model
from tickwork.dialects.k6 import (
    BulkActivateRequest,
    BulkDeactivateRequest,
    BulkFilter,
    BulkRefusal,
    BulkResult,
    CreateScheduleRequest,
    ScheduleApiModel,
    ScheduleListResponse,
    jitter_of,
    parse_create_schedule,
    parse_deactivate,
)
from tickwork.dialects.wire import from_json
from tickwork.errors import Conflict, NotFound, ValidationError
from tickwork.store import ScheduleRecord, Store
from tickwork.store.quotas import Limits, interval_problem

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
    description="This operation overwrites any existing test schedule and keeps its id. "
    "A new schedule past the stack's quota answers 409 quota_exceeded (an overwrite is "
    "never counted); runs closer than the deployment's minimum interval answer 400.",
    response_model=ScheduleApiModel,
    responses=error_responses(404, 409),
    openapi_extra=json_request(CreateScheduleRequest),
)
def set_load_test_schedule(
    id: ResourceId,
    caller: Caller,
    actor: Acting,
    context: Context,
    body: JsonBody,
    *,
    http: Request = None,  # type: ignore[assignment]  # FastAPI injects it; see below
) -> Response:
    """Also called directly (the console's editor), without ``http``: the limits are then
    the built-in defaults (``Limits()``) rather than the app's."""
    store = context.store
    limits: Limits = http.app.state.limits if http is not None else Limits()
    store.load_tests.get(caller.stack, id)
    request, schedule = parse_create_schedule(body)
    now = context.clock()
    target = "recurrence_rule.interval" if request.recurrence_rule else "cron.schedule"
    problem = interval_problem(schedule, now=now, minimum_s=limits.min_interval_s, target=target)
    if problem is not None:
        raise ValidationError([problem], "The schedule is not valid.")
    jitter_s = jitter_of(request, schedule, default_s=context.default_jitter_s, now=now)
    record = store.schedules.put(
        stack=caller.stack,
        load_test_id=id,
        schedule=schedule,
        request=request.model_dump_json(),
        created_by=caller.email,
        now=now,
        overlap=request.overlap,
        catch_up_s=request.catch_up_seconds,
        jitter_s=jitter_s,
        actor=actor,
        quota=limits.of(caller.stack).schedules,
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


def _matching(store: Store, stack: int, match: BulkFilter) -> list[ScheduleRecord]:
    """The stack's k6 schedules of the load tests ``match`` names, by load test id."""
    tests, skip = [], 0
    while True:
        page, total = store.load_tests.page(
            stack, skip=skip, top=1000, project_id=match.project_id, name=match.load_test_name
        )
        tests += page
        skip += 1000
        if skip >= total:
            break
    records = []
    for test in tests:
        with contextlib.suppress(NotFound):
            records.append(store.schedules.for_load_test(stack, test.id))
    return records


@router.post(
    "/schedules/bulk/deactivate",
    operation_id="schedules_bulk_deactivate",
    summary="Pause every matching schedule, with one note (tickwork extension).",
    description="The filter names a project and/or a load test name (`{}`: every schedule "
    "of the stack). Each is paused as `/schedules/{id}/deactivate` with a body would.",
    response_model=BulkResult,
    openapi_extra=json_request(BulkDeactivateRequest),
)
def bulk_deactivate(caller: Caller, actor: Acting, context: Context, body: JsonBody) -> Response:
    request = from_json(BulkDeactivateRequest, body, "The bulk deactivation is not valid.")
    now = context.clock()
    note, resume_at = request.note, None
    if request.resume_at is not None:
        note, resume_at = parse_deactivate(
            request.model_dump_json(include={"note", "resume_at"}).encode(), now=now
        )
    result = BulkResult(changed=[], unchanged=[])
    for record in _matching(context.store, caller.stack, request.filter):
        after = context.store.schedules.deactivate(
            caller.stack,
            record.id,
            now=now,
            by=actor.who,
            note=note,
            resume_at=resume_at,
            actor=actor,
        )
        (result.changed if after.version != record.version else result.unchanged).append(record.id)
    return json_response(result)


@router.post(
    "/schedules/bulk/activate",
    operation_id="schedules_bulk_activate",
    summary="Re-activate every matching schedule (tickwork extension).",
    description="As `/schedules/bulk/deactivate`; an expired schedule is listed in `refused`.",
    response_model=BulkResult,
    openapi_extra=json_request(BulkActivateRequest),
)
def bulk_activate(caller: Caller, actor: Acting, context: Context, body: JsonBody) -> Response:
    request = from_json(BulkActivateRequest, body, "The bulk activation is not valid.")
    now = context.clock()
    result = BulkResult(changed=[], unchanged=[])
    for record in _matching(context.store, caller.stack, request.filter):
        try:
            after = context.store.schedules.activate(caller.stack, record.id, now=now, actor=actor)
        except Conflict as exc:
            result.refused.append(BulkRefusal(id=record.id, code=exc.code, message=str(exc)))
            continue
        (result.changed if after.version != record.version else result.unchanged).append(record.id)
    return json_response(result)


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
    "effect if the schedule is expired. tickwork extension: an optional JSON body "
    '`{"note": ..., "resume_at": ...}` says why, and when the scheduler re-activates '
    "it on its own; the schedule then shows them in `paused`.",
    responses=error_responses(404),
    status_code=204,
    response_class=Response,
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/DeactivateScheduleRequest"}
                }
            },
        }
    },
)
def deactivate_schedule(
    id: ResourceId, caller: Caller, actor: Acting, context: Context, body: RawBody
) -> Response:
    now = context.clock()
    note, resume_at = "", None
    if body.data.strip():  # no body: the k6 API's plain deactivate
        note, resume_at = parse_deactivate(json_data(body), now=now)
    context.store.schedules.deactivate(
        caller.stack, id, now=now, by=actor.who, note=note, resume_at=resume_at, actor=actor
    )
    return Response(status_code=204)
