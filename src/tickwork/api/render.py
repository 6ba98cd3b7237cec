"""Store records as k6 v6 response models, and JSON responses of them."""

from __future__ import annotations

from datetime import datetime

from fastapi import Response
from pydantic import BaseModel

from tickwork.core.instants import format_instant
from tickwork.dialects.k6 import ScheduleApiModel, schedule_api_model, stored_request
from tickwork.dialects.k6_resources import LoadTestApiModel, ProjectApiModel
from tickwork.dialects.k6_runs import (
    ResultDetailsApiModel,
    StatusApiModel,
    StatusExtraApiModel,
    TestRunApiModel,
)
from tickwork.store import LoadTestRecord, ProjectRecord, RunRecord, ScheduleRecord, StatusEntry
from tickwork.store.schedules import K6Schedule


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
    )


def project_model(project: ProjectRecord) -> ProjectApiModel:
    return ProjectApiModel(
        id=project.id,
        name=project.name,
        is_default=False,
        grafana_folder_uid=None,
        created=format_instant(project.created),
        updated=format_instant(project.updated),
    )


def load_test_model(test: LoadTestRecord) -> LoadTestApiModel:
    return LoadTestApiModel(
        id=test.id,
        project_id=test.project_id,
        name=test.name,
        baseline_test_run_id=test.baseline_test_run_id,
        k6_version=test.k6_version,
        created=format_instant(test.created),
        updated=format_instant(test.updated),
        runner=test.runner,
    )


def _status(entry: StatusEntry) -> StatusApiModel:
    has_extra = entry.message is not None or entry.by_user is not None or entry.code is not None
    return StatusApiModel(
        type=entry.type,
        entered=format_instant(entry.entered),
        extra=StatusExtraApiModel(by_user=entry.by_user, message=entry.message, code=entry.code)
        if has_extra
        else None,
    )


def _execution_seconds(run: RunRecord, now: datetime) -> int:
    """Seconds since the run entered ``running``, until it ended (0 if it never ran)."""
    started = next((e.entered for e in run.status_history if e.type == "running"), None)
    if started is None:
        return 0
    return max(int(((run.ended or now) - started).total_seconds()), 0)


def _reason(run: RunRecord) -> str | None:
    reason = run.details.get("reason")
    return reason if isinstance(reason, str) else None


def run_fields(run: RunRecord, *, now: datetime) -> dict[str, object]:
    """Every key of TestRunApiModel; what has no meaning here is null or empty."""
    history = [_status(entry) for entry in run.status_history]
    current = (
        history[-1]
        if history
        else StatusApiModel(type=run.status, entered=format_instant(run.created))
    )
    return {
        "id": run.id,
        "test_id": run.load_test_id,
        "project_id": run.project_id,
        "started_by": run.started_by,
        "created": format_instant(run.created),
        "ended": format_instant(run.ended) if run.ended else None,
        "note": run.note,
        "retention_expiry": None,
        "cost": None,
        "status": run.status,
        "status_details": current,
        "status_history": history,
        "distribution": None,
        "result": run.result,
        "result_details": ResultDetailsApiModel(type=run.result, message=_reason(run))
        if run.result
        else None,
        "options": None,
        "k6_dependencies": {},
        "k6_versions": {},
        "max_vus": None,
        "max_browser_vus": None,
        "estimated_duration": None,
        "execution_duration": _execution_seconds(run, now),
        "is_starred": False,
        "schedule_id": run.schedule_id,
        "scheduled_for": format_instant(run.scheduled_for) if run.scheduled_for else None,
    }


def run_model(run: RunRecord, *, now: datetime) -> TestRunApiModel:
    return TestRunApiModel.model_validate(run_fields(run, now=now))
