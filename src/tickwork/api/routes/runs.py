"""Test runs: read what the scheduler and the workers write; start, abort, annotate, delete."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import Field

from tickwork.api.deps import Caller, Context, JsonBody, ResourceId, instant_param
from tickwork.api.openapi import error_responses, json_request
from tickwork.api.pagination import Paging, page_response
from tickwork.api.render import json_response
from tickwork.core.instants import format_instant
from tickwork.dialects.k6_runs import (
    PatchTestRunApiModel,
    StartLoadTestResponse,
    TestRunApiModel,
    TestRunListResponse,
    parse_patch_test_run,
    run_fields,
    run_model,
)

router = APIRouter(prefix="/cloud/v6", tags=["test_runs"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="K6-Idempotency-Key",
        min_length=1,
        max_length=36,
        description="Idempotency key to prevent duplicate test starts when retrying requests. "
        "The key is valid for 10 minutes.",
    ),
]


@dataclass(frozen=True, slots=True)
class RunQuery:
    created_after: datetime | None
    created_before: datetime | None
    newest_first: bool
    params: dict[str, str]  # as given, for @nextLink


DateTimeText = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
"""Parsed by ``instant_param``, not by pydantic, whose datetime also reads "1700000000"
and dates."""


async def _run_query(
    orderby: Annotated[
        str | None,
        Query(
            alias="$orderby",
            pattern=r"^created( (asc|desc))?$",
            description="Comma-separated list of fields to use when ordering the results. "
            "Available fields:\n- created\n\nThe default ascending order can be reversed by "
            "appending the `desc` specifier.",
            examples=["created desc"],
        ),
    ] = None,
    created_after: Annotated[
        DateTimeText | None,
        Query(description="Filter test runs created on or after this date and time (inclusive)."),
    ] = None,
    created_before: Annotated[
        DateTimeText | None,
        Query(description="Filter test runs created before this date and time (non-inclusive)."),
    ] = None,
) -> RunQuery:
    after = instant_param(created_after, "created_after")
    before = instant_param(created_before, "created_before")
    params = {"$orderby": orderby} if orderby else {}
    if after is not None:
        params["created_after"] = format_instant(after)
    if before is not None:
        params["created_before"] = format_instant(before)
    return RunQuery(after, before, (orderby or "").endswith(" desc"), params)


Runs = Annotated[RunQuery, Depends(_run_query)]


def _page(
    query: RunQuery,
    paging: Paging,
    request: Request,
    context: Context,
    *,
    stack: int,
    load_test_id: int | None = None,
) -> Response:
    runs, total = context.store.runs.page(
        stack,
        skip=paging.skip,
        top=paging.top,
        load_test_id=load_test_id,
        created_after=query.created_after,
        created_before=query.created_before,
        newest_first=query.newest_first,
    )
    now = context.clock()
    return page_response(
        TestRunListResponse,
        [run_model(run, now=now) for run in runs],
        total,
        query=paging,
        request=request,
        public_url=context.public_url,
        extra=query.params,
    )


@router.get(
    "/test_runs",
    operation_id="test_runs_list",
    summary="List all test runs.",
    response_model=TestRunListResponse,
)
def list_test_runs(
    caller: Caller, context: Context, paging: Paging, query: Runs, request: Request
) -> Response:
    return _page(query, paging, request, context, stack=caller.stack)


@router.get(
    "/load_tests/{id}/test_runs",
    operation_id="load_tests_test_runs_retrieve",
    summary="List all runs of a load test.",
    response_model=TestRunListResponse,
    responses=error_responses(404),
)
def list_load_test_runs(
    id: ResourceId,
    caller: Caller,
    context: Context,
    *,
    paging: Paging,
    query: Runs,
    request: Request,
) -> Response:
    context.store.load_tests.get(caller.stack, id)
    return _page(query, paging, request, context, stack=caller.stack, load_test_id=id)


@router.get(
    "/test_runs/{id}",
    operation_id="test_runs_retrieve",
    summary="Get a test run by ID.",
    response_model=TestRunApiModel,
    responses=error_responses(404),
)
def get_test_run(id: ResourceId, caller: Caller, context: Context) -> Response:
    run = context.store.runs.get(caller.stack, id)
    return json_response(run_model(run, now=context.clock()))


@router.patch(
    "/test_runs/{id}",
    operation_id="test_runs_partial_update",
    summary="Update a test run.",
    status_code=204,
    response_class=Response,
    responses=error_responses(404),
    openapi_extra=json_request(PatchTestRunApiModel),
)
def update_test_run(id: ResourceId, caller: Caller, context: Context, body: JsonBody) -> Response:
    context.store.runs.get(caller.stack, id)
    patch = parse_patch_test_run(body)
    context.store.run_requests.set_note(caller.stack, id, patch.note)
    return Response(status_code=204)


@router.post(
    "/test_runs/{id}/abort",
    operation_id="test_runs_abort",
    summary="Abort a running test.",
    description="A run no worker has started (created, queued) ends as aborted at once; a "
    "running one is stopped by its worker. 409 when the run has already finished.",
    status_code=204,
    response_class=Response,
    responses=error_responses(404, 409),
)
def abort_test_run(id: ResourceId, caller: Caller, context: Context) -> Response:
    context.store.run_requests.abort(caller.stack, id, by_user=caller.email, now=context.clock())
    return Response(status_code=204)


@router.delete(
    "/test_runs/{id}",
    operation_id="test_runs_destroy",
    summary="Delete a test run.",
    description="Deletes a finished run (completed, aborted, skipped). 409 while it has not "
    "finished: abort it first.",
    status_code=204,
    response_class=Response,
    responses=error_responses(404, 409),
)
def delete_test_run(id: ResourceId, caller: Caller, context: Context) -> Response:
    context.store.run_requests.delete(caller.stack, id)
    return Response(status_code=204)


@router.post(
    "/load_tests/{id}/start",
    operation_id="load_tests_start",
    summary="Start a test.",
    description="Creates a test run and queues it for a worker. The same K6-Idempotency-Key "
    "within 10 minutes answers the run it started instead of starting another.",
    tags=["load_tests"],
    response_model=StartLoadTestResponse,
    responses=error_responses(404),
)
def start_load_test(
    id: ResourceId,
    caller: Caller,
    context: Context,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    test = context.store.load_tests.get(caller.stack, id)
    now = context.clock()
    run = context.store.manual_runs.start(
        test,
        rq_queue=context.rq_queue,
        started_by=caller.email,
        now=now,
        idempotency_key=idempotency_key,
    )
    base = (context.public_url or str(request.base_url)).rstrip("/")
    response = StartLoadTestResponse.model_validate(
        run_fields(run, now=now)
        | {"test_run_details_page_url": f"{base}/cloud/v6/test_runs/{run.id}"}
    )
    return json_response(response)
