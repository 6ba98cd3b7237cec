"""JSON responses of the dialects' models, and the k6 schedule of a store record.

Each dialect renders its own shapes from the fields of a record (``dialects.k6_resources``,
``k6_runs``, ``kragle``, ``reports``); the routes import those renderers from the dialects.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import Response
from pydantic import BaseModel

from tickwork.core.instants import format_instant
from tickwork.dialects.k6 import (
    PauseApiModel,
    ScheduleApiModel,
    schedule_api_model,
    stored_request,
)
from tickwork.store import ScheduleRecord
from tickwork.store.schedules import K6Schedule, Pause


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    return Response(
        model.model_dump_json(by_alias=True), status_code, media_type="application/json"
    )


def schedule_model(record: ScheduleRecord, *, now: datetime) -> ScheduleApiModel:
    """The stored request echoed (``starts`` as given, omitted rule fields filled), with the
    engine's next occurrence."""
    assert isinstance(record.owner, K6Schedule), record.owner  # the k6 API sees only its own
    return schedule_api_model(
        schedule_id=record.id,
        load_test_id=record.load_test_id,
        request=stored_request(record.owner.request_echo),
        deactivated=record.deactivated,
        next_run=record.upcoming(now=now),
        created_by=record.created_by,
        paused=None if record.pause is None else pause_model(record.pause),
        jitter_seconds=record.jitter_s,
    )


def pause_model(pause: Pause) -> PauseApiModel:
    return PauseApiModel(
        since=format_instant(pause.since),
        by=pause.by,
        note=pause.note,
        resume_at=None if pause.resume_at is None else format_instant(pause.resume_at),
    )
