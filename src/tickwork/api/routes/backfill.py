"""Backfill (a tickwork extension): runs for a schedule's past occurrences that have none.

The request is checked here (each problem a 400 naming its field, nothing changed); the store
marks the occurrences and creates the runs in one transaction, where the guarantee of one
run per occurrence lives (``store/backfill.py``).
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from tickwork.api.deps import Acting, Caller, Context, RawBody, ResourceId, json_data
from tickwork.api.openapi import error_responses, inline_json_request
from tickwork.api.render import json_response
from tickwork.core.instants import format_instant
from tickwork.dialects.backfill import (
    MAX_OCCURRENCES,
    BackfillItem,
    BackfillRequest,
    BackfillResponse,
    parse_backfill,
    window_occurrences,
)

router = APIRouter(prefix="/cloud/v6", tags=["schedules"])


@router.post(
    "/schedules/{id}/backfill",
    operation_id="schedules_backfill",
    summary="Create runs for a schedule's past occurrences that have none (tickwork extension).",
    description="The occurrences t of the schedule with `from` <= t < `to` (at most "
    f"{MAX_OCCURRENCES}; `to` not after now, `from` not before the schedule's timing took "
    "effect), oldest first, each marked. **A dry run by default**: nothing is created unless "
    'the body says `"dry_run": false`; then each occurrence without a run or skip record '
    "(one that passed while the schedule was paused, say) gets a run, queued to the workers "
    "as a fired one and shown in the occurrence ledger as `fired` with reason `backfill`. "
    "Each occurrence gets one run at most, however often or concurrently this is asked: a "
    "repeated request answers `already_has_run`. With overlap `skip` the runs run one after "
    "another, after the load test's run in progress; with `allow` all are queued at once. "
    "The schedule's next fire does not move.",
    response_model=BackfillResponse,
    responses=error_responses(404, 409),
    openapi_extra=inline_json_request(BackfillRequest),
)
def backfill_schedule(
    id: ResourceId, caller: Caller, actor: Acting, context: Context, body: RawBody
) -> Response:
    store = context.store
    # Whose schedule it is first: another stack's is missing whatever the body says.
    record = store.schedules.get(caller.stack, id)
    now = context.clock()
    request = parse_backfill(json_data(body), now=now)
    instants = window_occurrences(record.schedule, request, since=record.since)
    result = store.backfills.backfill(
        record,
        instants,
        window=(request.from_at, request.to_at),
        overlap=request.overlap,
        dry_run=request.dry_run,
        rq_queue=context.rq_queue,
        actor=actor,
        now=now,
    )
    return json_response(
        BackfillResponse(
            dry_run=request.dry_run,
            overlap="allow" if result.overlap == "allow" else "skip",
            value=[
                BackfillItem.model_validate(
                    {
                        "instant": format_instant(item.instant),
                        "mark": item.mark,
                        "run_id": item.run_id,
                        "reason": item.reason,
                    }
                )
                for item in result.items
            ],
        )
    )
