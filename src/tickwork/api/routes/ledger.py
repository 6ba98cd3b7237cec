"""The occurrence ledger (tickwork extensions): a schedule's occurrences with the engine's
notes and, for past ones, what happened; a preview of an unsaved schedule; its health.

The Kragle and report routes answer their own schedules' occurrences with the pieces here
(``After``, ``Before``, ``Limit``, ``schedule_occurrences``, ``next_link``): the same query
parameters and items under each dialect's own path, in its own envelope.

Registered before the k6 schedules router, so that ``/schedules/health`` is this list and
not schedule "health".
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response

from tickwork.api.deps import Caller, Context, JsonBody, PlainInt, ResourceId, instant_param
from tickwork.api.openapi import error_responses, json_request
from tickwork.api.pagination import Paging, page_response
from tickwork.api.render import json_response
from tickwork.core.explain import MAX_WINDOW, Explained, explained
from tickwork.core.occurrences import iter_after
from tickwork.core.windows import Timing, timing
from tickwork.dialects.k6 import CreateScheduleRequest, jitter_of, parse_create_schedule
from tickwork.dialects.ledger import (
    LastFire,
    Occurrence,
    OccurrenceListResponse,
    PauseModel,
    ScheduleHealth,
    ScheduleHealthListResponse,
    instant_text,
    occurrence,
)
from tickwork.errors import Problem, ValidationError
from tickwork.store import ScheduleRecord, Store
from tickwork.store.ledger import (
    HEALTH_WINDOW_DAYS,
    HEALTH_WINDOW_OCCURRENCES,
    health_of,
)

router = APIRouter(prefix="/cloud/v6", tags=["schedules"])

DEFAULT_LIMIT = 100
HEALTH_WALK_CAP = 1000
"""Occurrences a health window walks at most (missed ones have no ledger entry to skip by)."""

After = Annotated[
    str | None,
    Query(
        description="Occurrences strictly after this instant (RFC 3339; default: now).",
        json_schema_extra={"format": "date-time"},
    ),
]
Before = Annotated[
    str | None,
    Query(
        description="Occurrences strictly before this instant (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    ),
]
Limit = Annotated[
    int,
    PlainInt,
    Query(ge=1, le=MAX_WINDOW, description="Occurrences to return at most (1-1000)."),
]


def window(
    after: str | None, before: str | None, now: datetime
) -> tuple[datetime, datetime | None]:
    """The ``after`` and ``before`` query parameters as instants (``after`` defaults to
    ``now``); a 400 naming the parameter otherwise."""
    after_at = instant_param(after, "after") or now
    before_at = instant_param(before, "before")
    if before_at is not None and before_at <= after_at:
        message = "'before' must be later than 'after'."
        raise ValidationError([Problem("invalid_window", "before", message)], message)
    return after_at, before_at


@dataclass(frozen=True, slots=True)
class OccurrencePage:
    items: list[Occurrence]
    resume_after: datetime | None  # the page was full: the next one starts after this


def _resume_after(items: list[Explained], limit: int) -> datetime | None:
    return items[-1].instant if len(items) == limit else None


def next_link(
    request: Request,
    public_url: str | None,
    page: OccurrencePage,
    *,
    limit: int,
    before: str | None,
) -> str | None:
    """The link to the page after ``page``, or None when it was the last."""
    if page.resume_after is None:
        return None
    params = {"after": instant_text(page.resume_after) or "", "limit": str(limit)}
    if before is not None:
        params["before"] = before
    base = (public_url or str(request.base_url)).rstrip("/")
    return f"{base}{request.url.path}?{urlencode(params)}"


def occurrence_list(items: list[Occurrence], link: str | None) -> Response:
    """The k6-style list (``value``, ``@nextLink`` when there is a next page)."""
    body = OccurrenceListResponse.model_validate({"value": items, "@nextLink": link})
    return Response(
        body.model_dump_json(by_alias=True, exclude={"next_link"} if link is None else None),
        media_type="application/json",
    )


def occurrences_of(
    store: Store, record: ScheduleRecord, items: list[Explained], *, now: datetime
) -> list[Occurrence]:
    """The items joined with the ledger: past ones say what happened, future ones whether
    they will run (``paused`` while the schedule is deactivated; ``blackout`` or ``deferred``
    when a blackout window will skip or move them)."""
    past = [item for item in items if item.instant <= now]
    in_stack = [w.window for w in store.windows.list(record.stack)]

    def planned(at: datetime) -> datetime | None:
        fate = record.timing(at, in_stack)
        return None if fate.planned == at else fate.planned

    out = []
    for item, happened in zip(
        past, store.ledger.happened(record, [i.instant for i in past]), strict=True
    ):
        if happened is None:
            continue  # before the schedule's timing took effect: not its occurrence
        out.append(
            occurrence(
                item,
                happened.outcome,
                run_id=happened.run_id,
                reason=happened.reason,
                lateness_ms=happened.lateness_ms,
                run_status=happened.status,
                run_result=happened.result,
                planned_for=happened.planned_for or planned(item.instant),
                window_id=happened.window_id,
            )
        )
    for item in items[len(past) :]:
        if record.deactivated:
            out.append(occurrence(item, "paused"))
            continue
        out.append(coming(item, record.timing(item.instant, in_stack)))
    return out


def coming(item: Explained, fate: Timing) -> Occurrence:
    """A future occurrence as the blackout windows leave it: upcoming (at its planned
    instant), blackout (a skip window covers it) or deferred (to ``planned_for``)."""
    outcome, window = "upcoming", None
    if fate.skipped_by is not None:
        outcome, window = "blackout", fate.skipped_by
    elif fate.deferred_by is not None:
        outcome, window = "deferred", fate.deferred_by
    at = None if fate.planned == item.instant else fate.planned
    return occurrence(item, outcome, planned_for=at, window_id=window)


def schedule_occurrences(
    store: Store,
    record: ScheduleRecord,
    *,
    after: str | None,
    before: str | None,
    limit: int,
    now: datetime,
) -> OccurrencePage:
    """One page of a stored schedule's occurrences (any dialect's: a k6 schedule, a Kragle
    job, a report's schedule), as the query parameters ask."""
    after_at, before_at = window(after, before, now)
    if record.since is not None:
        after_at = max(after_at, record.since)  # earlier occurrences are not its own
    items = explained(record.schedule, after=after_at, before=before_at, limit=limit)
    return OccurrencePage(
        occurrences_of(store, record, items, now=now), _resume_after(items, limit)
    )


@router.get(
    "/schedules/{id}/occurrences",
    operation_id="schedules_occurrences_list",
    summary="List a schedule's occurrences, with notes and what happened (tickwork extension).",
    description="Oldest first, strictly after `after` (default now) and before `before`, at most "
    "`limit`. Each says its local time, notes on anything unusual (DST gap or repeat, month-end "
    "clamp, the last occurrence), and for past ones what happened: fired (run, lateness), "
    "skipped (reason), or missed — which must never occur. `@nextLink` continues the list.",
    response_model=OccurrenceListResponse,
    responses=error_responses(404),
)
def list_occurrences(
    *,
    id: ResourceId,
    caller: Caller,
    context: Context,
    request: Request,
    after: After = None,
    before: Before = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Response:
    record = context.store.schedules.get(caller.stack, id)
    page = schedule_occurrences(
        context.store, record, after=after, before=before, limit=limit, now=context.clock()
    )
    link = next_link(request, context.public_url, page, limit=limit, before=before)
    return occurrence_list(page.items, link)


@router.post(
    "/schedules/preview",
    operation_id="schedules_preview",
    summary="Preview the occurrences of a schedule before saving it (tickwork extension).",
    description="The body is a CreateScheduleRequest, validated as creating it would be; "
    "nothing is saved. Items are as in the occurrences list: `upcoming` after now, `passed` "
    "for instants before now (a schedule set now never fires those); the stack's blackout "
    "windows mark those they would skip (`blackout`) or defer (`deferred`). With jitter, each "
    "occurrence's planned instant shows once the schedule is saved (the offset depends on "
    "its id).",
    response_model=OccurrenceListResponse,
    openapi_extra=json_request(CreateScheduleRequest),
)
def preview_schedule(
    *,
    caller: Caller,
    context: Context,
    request: Request,
    body: JsonBody,
    after: After = None,
    before: Before = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Response:
    request_body, schedule = parse_create_schedule(body)
    now = context.clock()
    # refused as creating it would be; the offsets themselves need the saved schedule's id
    jitter_of(request_body, schedule, default_s=context.default_jitter_s, now=now)
    after_at, before_at = window(after, before, now)
    items = explained(schedule, after=after_at, before=before_at, limit=limit)
    in_stack = [w.window for w in context.store.windows.list(caller.stack)]
    values = []
    for item in items:
        if item.instant <= now:
            values.append(occurrence(item, "passed"))
            continue
        values.append(coming(item, timing(item.instant, in_stack)))
    page = OccurrencePage(values, _resume_after(items, limit))
    return occurrence_list(
        values, next_link(request, context.public_url, page, limit=limit, before=before)
    )


def health_model(store: Store, record: ScheduleRecord, *, now: datetime) -> ScheduleHealth:
    since = now - timedelta(days=HEALTH_WINDOW_DAYS)
    if record.since is not None:
        since = max(since, record.since)
    start = store.ledger.window_start(record.id, now=now, since=since)
    instants: deque[datetime] = deque(maxlen=HEALTH_WINDOW_OCCURRENCES)
    for count, instant in enumerate(iter_after(record.schedule, start)):
        if instant > now or count >= HEALTH_WALK_CAP:
            break
        instants.append(instant)
    happened = store.ledger.happened(record, list(instants))
    pairs = [(at, h) for at, h in zip(instants, happened, strict=True) if h is not None]
    health = health_of(pairs, since=start)
    last = health.last_fire
    pause = record.pause
    return ScheduleHealth(
        schedule_id=record.id,
        load_test_id=record.load_test_id,
        deactivated=record.deactivated,
        paused=None
        if pause is None
        else PauseModel(
            since=instant_text(pause.since) or "",
            by=pause.by,
            note=pause.note,
            resume_at=instant_text(pause.resume_at),
        ),
        next_fire=instant_text(record.upcoming(now=now)),
        last_fire=None
        if last is None
        else LastFire(
            instant=instant_text(last[0]) or "",
            run_id=last[1].run_id,
            status=last[1].status,
            result=last[1].result,
            lateness_ms=last[1].lateness_ms,
        ),
        window_since=instant_text(health.since) or "",
        occurrences=health.occurrences,
        fired_on_time=health.fired_on_time,
        fired_late=health.fired_late,
        skipped=health.skipped,
        missed=health.missed,
        runs=health.runs,
        lateness_ms=health.lateness_ms,
        consecutive_failures=health.consecutive_failures,
    )


@router.get(
    "/schedules/health",
    operation_id="schedules_health_list",
    summary="Every schedule's health, a page at a time (tickwork extension).",
    description="As `/schedules/{id}/health`, for the stack's schedules by id. Each costs about "
    "100 reads: keep `$top` small.",
    response_model=ScheduleHealthListResponse,
)
def list_health(caller: Caller, context: Context, paging: Paging, request: Request) -> Response:
    records, total = context.store.schedules.page(caller.stack, skip=paging.skip, top=paging.top)
    now = context.clock()
    return page_response(
        ScheduleHealthListResponse,
        [health_model(context.store, record, now=now) for record in records],
        total,
        query=paging,
        request=request,
        public_url=context.public_url,
    )


@router.get(
    "/schedules/{id}/health",
    operation_id="schedules_health_retrieve",
    summary="A schedule's health: last and next fire, what happened lately (tickwork extension).",
    description="Over its last 100 occurrences within 7 days: fired on time (within 1 s) or "
    "late, skipped by reason, missed (must be 0), runs by result, lateness p50/p99/max, and "
    "how many of the latest finished runs in a row did not pass.",
    response_model=ScheduleHealth,
    responses=error_responses(404),
)
def get_health(id: ResourceId, caller: Caller, context: Context) -> Response:
    record = context.store.schedules.get(caller.stack, id)
    return json_response(health_model(context.store, record, now=context.clock()))
