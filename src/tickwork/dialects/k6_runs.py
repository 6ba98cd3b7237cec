"""The k6 Cloud v6 shapes of test runs, and their rendering from the core's run record.

Every key the spec's TestRunApiModel requires is present. Fields with no meaning for a
self-hosted runner (cost, distribution, options, VU counts, k6 versions) carry their null or
empty value. Two tickwork extensions say which schedule occurrence a run comes from.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from tickwork.core.instants import format_instant
from tickwork.core.runs import RunRecord, StatusEntry
from tickwork.dialects.k6_resources import PagedList
from tickwork.dialects.wire import Closed, DateTime, from_json


class StatusExtraApiModel(BaseModel):
    by_user: str | None
    message: str | None
    code: int | None


class StatusApiModel(BaseModel):
    type: str = Field(
        description="created, queued, initializing, running, processing_metrics, completed, "
        "aborted; tickwork adds skipped (an occurrence that did not run, with the reason)."
    )
    entered: DateTime
    extra: StatusExtraApiModel | None = None


class ResultDetailsApiModel(BaseModel):
    type: str
    message: str | None = None
    code: int | None = None


class TestRunApiModel(BaseModel):
    __test__ = False  # not a pytest test class, whatever its name says

    id: int
    test_id: int
    project_id: int
    started_by: str | None
    created: DateTime
    ended: DateTime | None
    note: str
    retention_expiry: DateTime | None
    cost: dict[str, Any] | None
    status: str
    status_details: StatusApiModel
    status_history: list[StatusApiModel]
    distribution: list[dict[str, Any]] | None
    result: str | None
    result_details: ResultDetailsApiModel | None
    options: dict[str, Any] | None
    k6_dependencies: dict[str, str]
    k6_versions: dict[str, str]
    max_vus: int | None
    max_browser_vus: int | None
    estimated_duration: int | None
    execution_duration: int
    is_starred: bool
    schedule_id: int | None = Field(
        default=None, description="tickwork extension: the schedule that fired this run."
    )
    scheduled_for: DateTime | None = Field(
        default=None, description="tickwork extension: the occurrence this run is for."
    )
    planned_for: DateTime | None = Field(
        default=None,
        description="tickwork extension: with the schedule's jitter, the instant this run was "
        "planned for (scheduled_for plus a fixed offset); null without jitter.",
    )


class StartLoadTestResponse(TestRunApiModel):
    test_run_details_page_url: str


class TestRunListResponse(PagedList):
    __test__ = False

    value: list[TestRunApiModel]


class PatchTestRunApiModel(Closed):
    note: str = Field(description="User-defined note for the test run.")


def parse_patch_test_run(body: bytes) -> PatchTestRunApiModel:
    return from_json(PatchTestRunApiModel, body, "The test run is not valid.")


# Rendering


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
        "planned_for": run.details.get("planned_for"),
    }


def run_model(run: RunRecord, *, now: datetime) -> TestRunApiModel:
    return TestRunApiModel.model_validate(run_fields(run, now=now))
