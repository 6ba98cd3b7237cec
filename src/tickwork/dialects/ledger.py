"""Wire shapes of the occurrence ledger: tickwork extensions beside the k6 schedules API.

k6 clients never see these: they are answered only by tickwork's own routes
(``/schedules/{id}/occurrences``, ``/schedules/preview``, ``/schedules/{id}/health``,
``/schedules/health``), and the k6 shapes stay exactly as the k6 API defines them. The Kragle
and report dialects answer their schedules' occurrences with the same items (``Occurrence``).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tickwork.core.explain import Explained
from tickwork.core.instants import format_instant

OUTCOMES = ("fired", "skipped", "deleted", "pending", "forgotten", "missed", "upcoming", "paused")


class OccurrenceNote(BaseModel):
    code: str = Field(
        description="dst_gap, dst_repeated, month_end_clamped or last (the last occurrence)."
    )
    message: str


class Occurrence(BaseModel):
    """One occurrence of a schedule. An occurrence whose run a backfill created after it had
    passed (`POST /schedules/{id}/backfill`) is `fired` with `reason` `backfill` and no
    `lateness_ms`: it ran when asked, not late."""

    instant: str = Field(description="The occurrence, in UTC.")
    local: str = Field(
        description="Its wall-clock time in the schedule's zone (cron), else in the UTC offset "
        "of `starts` (rules, one-shots)."
    )
    notes: list[OccurrenceNote] = Field(default_factory=list)
    outcome: str = Field(
        description="Past: fired, skipped (see `reason`), deleted (its run was deleted), "
        "pending (due, not yet settled), forgotten (beyond retention) or missed (no record: "
        "must never occur). Future: upcoming, paused while the schedule is deactivated, "
        "blackout (a skip window covers it) or deferred (a defer window moves it to "
        "`planned_for`)."
    )
    run_id: int | None = None
    reason: str | None = Field(
        default=None,
        description="Why it was skipped: missed, missed_outside_catch_up_window, overlap, "
        "paused, blackout (a skip window; `window_id`), deferred (a defer window moved it and "
        "a later occurrence's run stands for it).",
    )
    planned_for: str | None = Field(
        default=None,
        description="When it runs (or ran), if not at its instant: plus the schedule's jitter "
        "offset, or at the end of the blackout window that deferred it.",
    )
    window_id: int | None = Field(
        default=None, description="The blackout window that skipped or deferred it."
    )
    lateness_ms: int | None = Field(
        default=None,
        description="Fired: created - planned_for (the instant plus its jitter or deferral).",
    )
    run_status: str | None = None
    run_result: str | None = None


class OccurrenceListResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    value: list[Occurrence]
    next_link: str | None = Field(default=None, alias="@nextLink")


def occurrence(
    explained: Explained,
    outcome: str,
    *,
    run_id: int | None = None,
    reason: str | None = None,
    lateness_ms: int | None = None,
    run_status: str | None = None,
    run_result: str | None = None,
    planned_for: datetime | None = None,
    window_id: int | None = None,
) -> Occurrence:
    return Occurrence(
        instant=format_instant(explained.instant),
        local=explained.local.isoformat(),
        notes=[OccurrenceNote(code=n.code, message=n.message) for n in explained.notes],
        outcome=outcome,
        run_id=run_id,
        reason=reason,
        planned_for=None if planned_for is None else format_instant(planned_for),
        window_id=window_id,
        lateness_ms=lateness_ms,
        run_status=run_status,
        run_result=run_result,
    )


class LastFire(BaseModel):
    instant: str
    run_id: int | None
    status: str | None
    result: str | None
    lateness_ms: int | None


class PauseModel(BaseModel):
    since: str
    by: str | None = None
    note: str = ""
    resume_at: str | None = None


class ScheduleHealth(BaseModel):
    schedule_id: int
    load_test_id: int
    deactivated: bool
    paused: PauseModel | None = Field(
        default=None, description="The pause in force: since when, by whom, why, until when."
    )
    next_fire: str | None
    last_fire: LastFire | None
    window_since: str = Field(description="The window's start (at most 7 days back).")
    occurrences: int = Field(description="Occurrences in the window (at most the last 100).")
    fired_on_time: int = Field(description="Fired within 1 s of their instant.")
    fired_late: int
    skipped: dict[str, int] = Field(description="Skipped occurrences by reason.")
    missed: int = Field(description="Occurrences with no record at all: must be 0.")
    runs: dict[str, int] = Field(
        description="Fired runs: passed, failed, error, aborted, unfinished."
    )
    lateness_ms: dict[str, int | None] = Field(description="p50, p99 and max of fired runs.")
    consecutive_failures: int = Field(
        description="Latest finished runs in a row that did not pass."
    )


class ScheduleHealthListResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    value: list[ScheduleHealth]
    count: int | None = Field(default=None, alias="@count")
    next_link: str | None = Field(default=None, alias="@nextLink")


def instant_text(value: datetime | None) -> str | None:
    return None if value is None else format_instant(value)
