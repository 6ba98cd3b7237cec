"""A test run as a value: its record, its status history, and how each kind of run begins.

Three kinds of run begin here and nowhere else: ``fired`` (a schedule's occurrence, with the
RQ job that executes it), ``skipped`` (an occurrence a policy passed over, with its reason),
and ``started`` (a manual start). Every later change goes through ``moved_to``, which follows
the transition table of ``lifecycle``: a worker, the reaper and an abort requested through
the API obey the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from tickwork.core.instants import format_instant, parse_instant
from tickwork.core.lifecycle import Ending, Status, allowed, is_terminal
from tickwork.core.policies import Skip
from tickwork.errors import Conflict


@dataclass(frozen=True, slots=True)
class StatusEntry:
    type: str
    entered: datetime
    message: str | None = None
    by_user: str | None = None
    code: int | None = None

    def as_json(self) -> dict[str, Any]:
        extra = None
        if self.message is not None or self.by_user is not None or self.code is not None:
            extra = {"by_user": self.by_user, "message": self.message, "code": self.code}
        return {"type": self.type, "entered": format_instant(self.entered), "extra": extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StatusEntry:
        extra = data.get("extra") or {}
        return cls(
            type=data["type"],
            entered=parse_instant(data["entered"]),
            message=extra.get("message"),
            by_user=extra.get("by_user"),
            code=extra.get("code"),
        )


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: int
    stack: int
    load_test_id: int
    project_id: int
    created: datetime
    status: str = Status.CREATED
    status_history: tuple[StatusEntry, ...] = ()
    result: str | None = None
    ended: datetime | None = None
    started_by: str | None = None
    note: str = ""
    schedule_id: int | None = None
    scheduled_for: datetime | None = None
    job_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # runner output, summary, reason

    @classmethod
    def fired(
        cls,
        *,
        run_id: int,
        stack: int,
        load_test_id: int,
        project_id: int,
        schedule_id: int,
        occurrence_at: datetime,
        job_id: str,
        now: datetime,
        planned_for: datetime | None = None,
        deferred_by: int | None = None,
    ) -> RunRecord:
        """The run of a schedule's occurrence, created (and queued) at ``now``; with jitter or
        a defer window (``deferred_by``), ``planned_for`` is the instant it was planned for."""
        details: dict[str, Any] = {}
        if planned_for is not None:
            details["planned_for"] = format_instant(planned_for)
        if deferred_by is not None:
            details["deferred_by"] = deferred_by
        return cls(
            id=run_id,
            stack=stack,
            load_test_id=load_test_id,
            project_id=project_id,
            created=now,
            status_history=(StatusEntry(Status.CREATED, now),),
            schedule_id=schedule_id,
            scheduled_for=occurrence_at,
            job_id=job_id,
            details=details,
        )

    @classmethod
    def skipped(
        cls,
        *,
        run_id: int,
        stack: int,
        load_test_id: int,
        project_id: int,
        schedule_id: int,
        skip: Skip,
        now: datetime,
    ) -> RunRecord:
        """The record of an occurrence a policy passed over, and why (``details``)."""
        message = f"occurrence skipped: {skip.reason}"
        details: dict[str, Any] = {"skip_reason": skip.reason, "more": skip.more}
        if skip.more and skip.last_at is not None:
            details["last_at"] = format_instant(skip.last_at)  # the series this record counts
        if skip.window_id is not None:
            details["window_id"] = skip.window_id
            message += f" (window {skip.window_id})"
        if skip.more:
            last = format_instant(skip.last_at) if skip.last_at else "?"
            message += f" (and {skip.more} later occurrences, the last at {last})"
        return cls(
            id=run_id,
            stack=stack,
            load_test_id=load_test_id,
            project_id=project_id,
            created=now,
            status=Status.SKIPPED,
            status_history=(StatusEntry(Status.SKIPPED, now, message=message),),
            ended=now,
            schedule_id=schedule_id,
            scheduled_for=skip.occurrence_at,
            details=details,
        )

    @classmethod
    def started(
        cls,
        *,
        run_id: int,
        stack: int,
        load_test_id: int,
        project_id: int,
        started_by: str,
        job_id: str,
        now: datetime,
    ) -> RunRecord:
        """A run started by hand (``POST /load_tests/{id}/start``), created at ``now``."""
        return cls(
            id=run_id,
            stack=stack,
            load_test_id=load_test_id,
            project_id=project_id,
            created=now,
            status_history=(StatusEntry(Status.CREATED, now),),
            started_by=started_by,
            job_id=job_id,
        )

    @classmethod
    def backfilled(
        cls,
        *,
        run_id: int,
        stack: int,
        load_test_id: int,
        project_id: int,
        schedule_id: int,
        occurrence_at: datetime,
        job_id: str,
        now: datetime,
    ) -> RunRecord:
        """The run of a past occurrence that had none, asked for by a backfill at ``now``: a
        fired run marked ``backfill`` in its details (not ``reason``: that is its ending's)."""
        run = cls.fired(
            run_id=run_id,
            stack=stack,
            load_test_id=load_test_id,
            project_id=project_id,
            schedule_id=schedule_id,
            occurrence_at=occurrence_at,
            job_id=job_id,
            now=now,
        )
        return replace(run, details={**run.details, "backfill": True})

    @property
    def finished(self) -> bool:
        return is_terminal(self.status)

    def moved_to(
        self,
        status: str,
        *,
        at: datetime,
        message: str | None = None,
        result: str | None = None,
        by_user: str | None = None,
        code: int | None = None,
    ) -> RunRecord:
        """The run in ``status`` from ``at``; Conflict when the lifecycle forbids the move."""
        if not allowed(self.status, status):
            raise Conflict(f"Test run {self.id} cannot move from {self.status} to {status}.")
        entry = StatusEntry(status, at, message=message, by_user=by_user, code=code)
        return replace(
            self,
            status=status,
            status_history=(*self.status_history, entry),
            result=result if result is not None else self.result,
            ended=at if is_terminal(status) else self.ended,
        )

    def ended_as(
        self,
        ending: Ending,
        *,
        at: datetime,
        detail: str = "",
        details: dict[str, Any] | None = None,
        by_user: str | None = None,
    ) -> RunRecord:
        """The run ended as ``ending`` says, with the reason in its message and details."""
        moved = self.moved_to(
            ending.status,
            at=at,
            message=ending.message(detail),
            result=ending.result,
            by_user=by_user,
            code=ending.code,
        )
        return replace(
            moved, details={**self.details, **(details or {}), "reason": ending.outcome.value}
        )
