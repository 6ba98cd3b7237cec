"""The k6 Cloud v6 shapes of test runs.

Every key the spec's TestRunApiModel requires is present. Fields with no meaning for a
self-hosted runner (cost, distribution, options, VU counts, k6 versions) carry their null or
empty value. Two tickwork extensions say which schedule occurrence a run comes from.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from tickwork.dialects.k6 import DateTime, problems_from_pydantic
from tickwork.dialects.k6_resources import _Page
from tickwork.errors import ValidationError


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


class StartLoadTestResponse(TestRunApiModel):
    test_run_details_page_url: str


class TestRunListResponse(_Page):
    __test__ = False

    value: list[TestRunApiModel]


class PatchTestRunApiModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    note: str = Field(description="User-defined note for the test run.")


def parse_patch_test_run(body: bytes) -> PatchTestRunApiModel:
    try:
        return PatchTestRunApiModel.model_validate_json(body)
    except PydanticValidationError as exc:
        raise ValidationError(problems_from_pydantic(exc), "The test run is not valid.") from exc
