"""From a due schedule to what its commit writes: the core's plan, as run records and jobs.

Shared by the ordinary fire path and the look-ahead: both ask the pure core (catch-up and
overlap policies) what to do with a schedule's due occurrences, then build the fired run
(with its RQ job) and the skipped records that say why the others did not run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from tickwork.core.policies import Plan, plan
from tickwork.core.runs import RunRecord
from tickwork.core.windows import Timing, Window
from tickwork.store.queue import JobShape, QueuedJob, fire_job_id
from tickwork.store.schedules import ScheduleRecord


class Planner:
    def __init__(self, jobs: JobShape, *, catch_up: timedelta) -> None:
        self.jobs = jobs
        self._catch_up = catch_up

    def catch_up_of(self, record: ScheduleRecord) -> timedelta:
        """The schedule's catch-up window: its own, else the deployment's."""
        if record.catch_up_s is not None:
            return timedelta(seconds=record.catch_up_s)
        return self._catch_up

    def plan(
        self,
        record: ScheduleRecord,
        now: datetime,
        *,
        unfinished: bool,
        windows: Sequence[Window] = (),
    ) -> Plan:
        """What to do with the schedule's occurrences from its due one up to ``now``;
        ``unfinished``: its load test's previous run has not finished; ``windows``: its
        stack's blackout windows (its own are on the record)."""
        assert record.next_at is not None
        return plan(
            record.schedule,
            due_at=record.next_at,
            now=now,
            catch_up=self.catch_up_of(record),
            overlap=record.overlap,
            previous_unfinished=unfinished,
            timing=lambda at: record.timing(at, windows),
        )

    def runs(
        self,
        record: ScheduleRecord,
        decision: Plan,
        *,
        project_id: int,
        first_id: int,
        now: datetime,
    ) -> list[tuple[RunRecord, QueuedJob | None]]:
        """The run records of a plan (skipped ones first), with the fired run's job; their
        ids are consecutive from ``first_id``."""
        runs: list[tuple[RunRecord, QueuedJob | None]] = []
        run_id = first_id
        for skip in decision.skips:
            skipped = RunRecord.skipped(
                run_id=run_id,
                stack=record.stack,
                load_test_id=record.load_test_id,
                project_id=project_id,
                schedule_id=record.id,
                skip=skip,
                now=now,
            )
            runs.append((skipped, None))
            run_id += 1
        if decision.fire is not None:
            job_id = fire_job_id(record.id, decision.fire)
            fate = decision.fate or Timing(decision.fire)
            planned = fate.planned
            fired = RunRecord.fired(
                run_id=run_id,
                stack=record.stack,
                load_test_id=record.load_test_id,
                project_id=project_id,
                schedule_id=record.id,
                occurrence_at=decision.fire,
                job_id=job_id,
                now=now,
                planned_for=planned if planned != decision.fire else None,
                deferred_by=fate.deferred_by,
            )
            runs.append((fired, self.jobs.job(run_id=run_id, job_id=job_id)))
        return runs


def runs_needed(decision: Plan) -> int:
    return len(decision.skips) + (decision.fire is not None)
