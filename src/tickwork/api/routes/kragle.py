"""The Kragle-style schedules API (timing templates) and tickwork's jobs that bind them to
load tests. Mounted under TICKWORK_KRAGLE_PREFIX (``/kragle`` by default) by ``create_app``.

The two schedule reads answer without a token only when the deployment opts in (public
listing); a caller without one then reads the stack in X-Stack-Id, or stack 1 when it names
none. A caller who sends a token is checked as everywhere else, public listing or not.

tickwork's extensions here, always behind a token: a job's occurrences (the k6 API's
``/schedules/{id}/occurrences``, same parameters and items: a job is a schedule record), and
the audit trails of a schedule and of a job (newest first, ten a page like every Kragle list;
a deleted one's stays readable by its stack).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from tickwork.api.auth import parse_stack
from tickwork.api.deps import (
    Acting,
    ApiContext,
    Caller,
    Context,
    Credentials,
    JsonBody,
    PlainInt,
    ResourceId,
)
from tickwork.api.openapi import error_responses, json_request
from tickwork.api.render import json_response
from tickwork.api.routes.audit import entry_model, trail
from tickwork.api.routes.ledger import (
    DEFAULT_LIMIT,
    After,
    Before,
    Limit,
    next_link,
    occurrence_list,
    schedule_occurrences,
)
from tickwork.dialects.kragle import (
    MAX_PAGE,
    PAGE_SIZE,
    CreateKragleJob,
    CreateKragleSchedule,
    KragleAuditList,
    KragleCreated,
    KragleJob,
    KragleJobList,
    KragleSchedule,
    KragleScheduleList,
    UpdateKragleSchedule,
    anchor_of,
    apply_update,
    job_model,
    parse_create,
    parse_job,
    parse_update,
    template_model,
    to_core,
)
from tickwork.dialects.ledger import OccurrenceListResponse
from tickwork.errors import NotFound, Problem, ValidationError
from tickwork.store import ScheduleRecord, TemplateRecord
from tickwork.store.audit import SCHEDULE_KINDS
from tickwork.store.kragle import DIALECT, TEMPLATE_KIND, template_of
from tickwork.store.quotas import Limits

router = APIRouter(tags=["kragle"])

ANONYMOUS_STACK = 1
"""The stack an anonymous read lists when it names none (the standalone mode's stack)."""

Page = Annotated[
    int, PlainInt, Query(ge=1, le=MAX_PAGE, description="The page of results, from 1.")
]

_ALWAYS = (400, 401, 403, 503)
_WITH_BODY = (*_ALWAYS, 413, 415)


async def _reader_stack(request: Request, credentials: Credentials) -> int:
    context: ApiContext = request.app.state.context
    if "authorization" not in request.headers and request.app.state.kragle_public_listing:
        headers = request.headers.getlist("x-stack-id")
        return parse_stack(headers) if headers else ANONYMOUS_STACK
    token = credentials.credentials if credentials is not None else None
    return context.tokens.authorize(token, request.headers.getlist("x-stack-id")).stack


ReaderStack = Annotated[int, Depends(_reader_stack)]


def _job_model(job: ScheduleRecord) -> KragleJob:
    return job_model(job, template_id=template_of(job))


# Schedules: timing templates


@router.get(
    "/schedules",
    operation_id="kragle_schedules_list",
    summary="List schedules, ten a page.",
    description="Needs a token unless TICKWORK_KRAGLE_PUBLIC_LISTING is on.",
    response_model=KragleScheduleList,
    responses=error_responses(*_ALWAYS),
)
def list_schedules(stack: ReaderStack, context: Context, page: Page = 1) -> Response:
    templates, total = context.store.kragle.page(stack, skip=(page - 1) * PAGE_SIZE, top=PAGE_SIZE)
    body = KragleScheduleList(
        count=total,
        pagesize=PAGE_SIZE,
        page=page,
        schedules=[template_model(template) for template in templates],
    )
    return json_response(body)


@router.get(
    "/schedules/byid/{id}",
    operation_id="kragle_schedules_retrieve",
    summary="Get a schedule by id.",
    description="Needs a token unless TICKWORK_KRAGLE_PUBLIC_LISTING is on.",
    response_model=KragleSchedule,
    responses=error_responses(*_ALWAYS, 404),
)
def get_schedule(id: ResourceId, stack: ReaderStack, context: Context) -> Response:
    return json_response(template_model(context.store.kragle.get(stack, id)))


@router.post(
    "/schedules",
    operation_id="kragle_schedules_create",
    summary="Create a schedule.",
    description="Answers the new schedule's id. A schedule fires nothing until a job binds it "
    "to a load test. A period under the deployment's minimum: 400; past the stack's quota of "
    "schedules: 409 quota_exceeded.",
    response_model=KragleCreated,
    responses=error_responses(*_WITH_BODY, 409),
    openapi_extra=json_request(CreateKragleSchedule),
)
def create_schedule(
    caller: Caller, actor: Acting, context: Context, body: JsonBody, http: Request
) -> Response:
    limits: Limits = http.app.state.limits
    name, timing = parse_create(body)
    _check_period(timing.config, limits)
    now = context.clock()
    anchor = anchor_of(now)
    template = context.store.kragle.create(
        caller.stack,
        name=name,
        once=timing.once,
        config=timing.config,
        schedule=to_core(timing, anchor=anchor),
        anchor=anchor,
        now=now,
        created_by=caller.email,
        actor=actor,
        quotas=limits.of(caller.stack),
    )
    return json_response(KragleCreated(id=template.id))


def _check_period(config: dict[str, int], limits: Limits) -> None:
    """A period under the deployment's minimum (of a Kragle period, and of any schedule's
    interval) is refused, naming ``config.period``."""
    period = config.get("period")
    minimum = max(limits.min_kragle_period_s, limits.min_interval_s)
    if period is not None and period < minimum:
        problem = Problem(
            "period_too_short",
            "config.period",
            f"A period of {period} s is under this deployment's minimum of {minimum} s.",
        )
        raise ValidationError([problem], "The schedule is not valid.")


_UPDATE_DESCRIPTION = (
    "The body names the schedule by 'id'; fields left out keep their value. A new 'once' or "
    "'config' moves every job of the schedule to the new timing, in one transaction; "
    "occurrences before the change never fire."
)


# Without the trailing slash too: a client should not have to follow a redirect.
@router.put(
    "/schedules",
    include_in_schema=False,
    response_model=KragleSchedule,
)
@router.put(
    "/schedules/",
    operation_id="kragle_schedules_update",
    summary="Update a schedule.",
    description=_UPDATE_DESCRIPTION,
    response_model=KragleSchedule,
    responses=error_responses(*_WITH_BODY, 404),
    openapi_extra=json_request(UpdateKragleSchedule),
)
def update_schedule(
    caller: Caller, actor: Acting, context: Context, body: JsonBody, http: Request
) -> Response:
    limits: Limits = http.app.state.limits
    patch = parse_update(body)
    now = context.clock()

    def change(template: TemplateRecord) -> TemplateRecord:
        new = apply_update(template, patch, now=now)
        if new.config != template.config:  # a period kept as it was stays allowed
            _check_period(new.config, limits)
        return replace(
            template,
            name=new.name,
            once=new.once,
            config=new.config,
            anchor=new.anchor,
            schedule=new.schedule,
            version=template.version + 1,
        )

    updated = context.store.kragle.update(caller.stack, patch.id, change, now=now, actor=actor)
    return json_response(template_model(updated))


@router.delete(
    "/schedules/byid/{id}",
    operation_id="kragle_schedules_destroy",
    summary="Delete a schedule and its jobs (tickwork extension).",
    description="Its jobs stop with it, in the same transaction; their test runs stay.",
    status_code=204,
    response_class=Response,
    responses=error_responses(*_ALWAYS, 404),
)
def delete_schedule(id: ResourceId, caller: Caller, actor: Acting, context: Context) -> Response:
    context.store.kragle.delete(caller.stack, id, now=context.clock(), actor=actor)
    return Response(status_code=204)


# Jobs: a schedule bound to a load test (tickwork's own resource)


@router.post(
    "/jobs",
    operation_id="kragle_jobs_create",
    summary="Run a load test on a schedule's timing.",
    description="One job per schedule and load test (409 for a second). The load test's k6 "
    "schedule, if it has one, is unaffected: both fire it. Past the stack's quota of jobs: "
    "409 quota_exceeded.",
    response_model=KragleJob,
    responses=error_responses(*_WITH_BODY, 404, 409),
    openapi_extra=json_request(CreateKragleJob),
)
def create_job(
    caller: Caller, actor: Acting, context: Context, body: JsonBody, http: Request
) -> Response:
    limits: Limits = http.app.state.limits
    request = parse_job(body)
    job = context.store.kragle.bind(
        caller.stack,
        template_id=request.schedule_id,
        load_test_id=request.load_test_id,
        now=context.clock(),
        created_by=caller.email,
        actor=actor,
        quotas=limits.of(caller.stack),
    )
    return json_response(_job_model(job))


@router.get(
    "/jobs",
    operation_id="kragle_jobs_list",
    summary="List jobs, ten a page.",
    response_model=KragleJobList,
    responses=error_responses(*_ALWAYS),
)
def list_jobs(caller: Caller, context: Context, page: Page = 1) -> Response:
    jobs, total = context.store.kragle.jobs_page(
        caller.stack, skip=(page - 1) * PAGE_SIZE, top=PAGE_SIZE
    )
    body = KragleJobList(
        count=total, pagesize=PAGE_SIZE, page=page, jobs=[_job_model(job) for job in jobs]
    )
    return json_response(body)


@router.get(
    "/jobs/byid/{id}",
    operation_id="kragle_jobs_retrieve",
    summary="Get a job by id.",
    response_model=KragleJob,
    responses=error_responses(*_ALWAYS, 404),
)
def get_job(id: ResourceId, caller: Caller, context: Context) -> Response:
    return json_response(_job_model(context.store.kragle.job(caller.stack, id)))


@router.delete(
    "/jobs/byid/{id}",
    operation_id="kragle_jobs_destroy",
    summary="Delete a job: the load test no longer runs on the schedule.",
    status_code=204,
    response_class=Response,
    responses=error_responses(*_ALWAYS, 404),
)
def delete_job(id: ResourceId, caller: Caller, actor: Acting, context: Context) -> Response:
    context.store.kragle.unbind(caller.stack, id, now=context.clock(), actor=actor)
    return Response(status_code=204)


# tickwork extensions: a job's occurrences; a schedule's and a job's audit trail


@router.get(
    "/jobs/byid/{id}/occurrences",
    operation_id="kragle_jobs_occurrences",
    summary="List a job's occurrences, with notes and what happened (tickwork extension).",
    description="As the k6 API's /cloud/v6/schedules/{id}/occurrences (a job is a schedule "
    "record): oldest first, strictly after `after` (default now) and before `before`, at most "
    "`limit`; each with its local time, notes (DST, month-end clamp, the last one) and, for "
    "past ones, what happened (fired, skipped with its reason, ...). `@nextLink` continues.",
    response_model=OccurrenceListResponse,
    responses=error_responses(*_ALWAYS, 404),
)
def list_job_occurrences(
    *,
    id: ResourceId,
    caller: Caller,
    context: Context,
    request: Request,
    after: After = None,
    before: Before = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Response:
    job = context.store.kragle.job(caller.stack, id)
    page = schedule_occurrences(
        context.store, job, after=after, before=before, limit=limit, now=context.clock()
    )
    return occurrence_list(
        page.items, next_link(request, context.public_url, page, limit=limit, before=before)
    )


def _audit_page(
    context: Context, stack: int, kind: str, resource_id: int, *, exists: bool, page: int
) -> Response:
    entries, total = trail(
        context.store,
        stack,
        kind,
        resource_id,
        exists=exists,
        skip=(page - 1) * PAGE_SIZE,
        top=PAGE_SIZE,
    )
    body = KragleAuditList(
        count=total,
        pagesize=PAGE_SIZE,
        page=page,
        entries=[entry_model(entry) for entry in entries],
    )
    return json_response(body)


@router.get(
    "/schedules/byid/{id}/audit",
    operation_id="kragle_schedules_audit",
    summary="A schedule's audit trail, newest first, ten a page (tickwork extension).",
    description="Created, updated (each field that changed, old -> new), deleted: when, by "
    "whom (the token's e-mail), from where (api, cli, console). A deleted schedule's trail "
    "stays readable by its stack.",
    response_model=KragleAuditList,
    responses=error_responses(*_ALWAYS, 404),
)
def schedule_audit(id: ResourceId, caller: Caller, context: Context, page: Page = 1) -> Response:
    try:
        context.store.kragle.get(caller.stack, id)
        exists = True
    except NotFound:
        exists = False
    return _audit_page(context, caller.stack, TEMPLATE_KIND, id, exists=exists, page=page)


@router.get(
    "/jobs/byid/{id}/audit",
    operation_id="kragle_jobs_audit",
    summary="A job's audit trail, newest first, ten a page (tickwork extension).",
    description="Created, moved with its schedule's timing, deleted (by itself, with its "
    "schedule, or with its load test), and expired by the scheduler. A deleted job's trail "
    "stays readable by its stack.",
    response_model=KragleAuditList,
    responses=error_responses(*_ALWAYS, 404),
)
def job_audit(id: ResourceId, caller: Caller, context: Context, page: Page = 1) -> Response:
    try:
        context.store.kragle.job(caller.stack, id)
        exists = True
    except NotFound:
        exists = False
    return _audit_page(context, caller.stack, SCHEDULE_KINDS[DIALECT], id, exists=exists, page=page)
