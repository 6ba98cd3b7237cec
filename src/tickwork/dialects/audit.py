"""Wire shapes of the audit trail (tickwork extensions)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

KIND_FILTER = (
    "schedule",
    "kragle_job",
    "kragle_schedule",
    "report",
    "load_test",
    "blackout_window",
)


class AuditChange(BaseModel):
    field: str
    old: Any = None
    new: Any = None


class AuditEntryModel(BaseModel):
    id: str
    at: str = Field(description="When the change committed (UTC).")
    kind: str = Field(description="schedule, kragle_job, kragle_schedule, report or load_test.")
    resource_id: str
    action: str = Field(
        description="created, overwritten, activated, deactivated, deleted, expired (by the "
        "scheduler), resumed (by the scheduler, at a pause's resume_at), updated, "
        "script_replaced."
    )
    who: str = Field(description="The token's e-mail, or `scheduler`.")
    via: str = Field(description="api, cli, console, scheduler, or internal.")
    changes: list[AuditChange] = Field(
        default_factory=list, description="Each field that changed, old -> new."
    )
    note: str = ""
    extra: dict[str, Any] | None = None


class AuditListResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    value: list[AuditEntryModel]
    count: int | None = Field(default=None, alias="@count")
    next_link: str | None = Field(default=None, alias="@nextLink")
