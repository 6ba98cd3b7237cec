"""One run, from claim to result: the shell around the runners.

    claim (created -> initializing; at most once) -> read the load test and its runner
    -> running -> the runner, beside a RunWatch (heartbeat, abort) -> completed | aborted

Every status write is conditional on the status this worker last wrote, so an abort marked
by the API, or the reaper ending a run it believed lost, is never overwritten. Whatever ends
the job early (RQ's job timeout, a cold shutdown, a bug) still records an ending.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rq.timeouts import JobTimeoutException

from tickwork.core.lifecycle import Outcome, Status, ending_of
from tickwork.core.runner_specs import RunnerSpec, runner_spec_from_json
from tickwork.errors import ValidationError
from tickwork.store import RunRecord, Store
from tickwork.store.executions import Executions
from tickwork.worker.runners import RunInput, RunnerOptions, Verdict, runner_for
from tickwork.worker.watch import RunWatch

log = logging.getLogger("tickwork.worker")

Clock = Callable[[], datetime]

DEFAULT_TIME_LIMIT_S = 3600.0
"""A run's time limit when its load test's runner names none."""
HEARTBEAT_S = 5.0
"""How often a running run's deadline is renewed."""
LAPSE_HEARTBEATS = 3
"""Missed heartbeats after which a run counts as lost: one stall is not a death."""
ABORT_POLL_S = 0.5
"""How often a running run's abort flag is read: an abort takes effect within about this."""


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerConfig:
    runners: RunnerOptions = field(default_factory=RunnerOptions)
    default_time_limit_s: float = DEFAULT_TIME_LIMIT_S
    heartbeat_s: float = HEARTBEAT_S
    abort_poll_s: float = ABORT_POLL_S
    work_dir: Path | None = None  # parent of the runs' private directories (default: TMPDIR)
    name: str = field(default_factory=default_worker_name)

    @property
    def lapse_ms(self) -> int:
        return int(self.heartbeat_s * LAPSE_HEARTBEATS * 1000)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def execute(
    store: Store, run_id: int, config: WorkerConfig, *, clock: Clock = _utcnow
) -> RunRecord | None:
    """Execute the run unless another delivery did; the ended record, or None."""
    executions = store.executions
    claim = executions.claim(run_id, worker=config.name, at=clock(), lapse_ms=config.lapse_ms)
    if claim.run is None:
        log.info("run_not_claimed", extra={"run_id": run_id, "reason": claim.refused})
        return None
    return _Execution(store, executions, claim.run, config, clock).carry_out()


class _Execution:
    """One claimed run. ``status`` is what this worker last wrote: the condition of its next
    write."""

    def __init__(
        self,
        store: Store,
        executions: Executions,
        run: RunRecord,
        config: WorkerConfig,
        clock: Clock,
    ) -> None:
        self._store = store
        self._executions = executions
        self._run = run
        self._config = config
        self._clock = clock
        self._status: str = Status.INITIALIZING
        self._started = time.monotonic()
        self._watch = RunWatch(
            executions,
            run.id,
            heartbeat_s=config.heartbeat_s,
            poll_s=config.abort_poll_s,
            lapse_ms=config.lapse_ms,
        )

    def carry_out(self) -> RunRecord | None:
        try:
            self._watch.check_abort()
            self._watch.start()
            verdict, by_user = self._drive()
        except BaseException as exc:
            outcome = Outcome.ERROR
            if isinstance(exc, JobTimeoutException):
                outcome = Outcome.TIMED_OUT
            elif isinstance(exc, SystemExit | KeyboardInterrupt):
                outcome = Outcome.WORKER_STOPPED
            self._record(Verdict(outcome=outcome, detail=f"{type(exc).__name__}: {exc}"), None)
            raise
        finally:
            self._watch.stop()
        return self._record(verdict, by_user)

    def _drive(self) -> tuple[Verdict | None, str | None]:
        run, watch = self._run, self._watch
        spec_or_error = _runner_spec(self._store, run)
        if isinstance(spec_or_error, str):
            return Verdict(outcome=Outcome.ERROR, detail=spec_or_error), None
        spec, script = spec_or_error
        reason = watch.stopped_because()
        if reason is not None:
            return _stopped(reason, watch.by_user, "before it started"), watch.by_user
        moved = self._executions.move(
            run.id,
            expect=Status.INITIALIZING,
            change=lambda r: r.moved_to(Status.RUNNING, at=self._clock()),
        )
        if moved is None:
            return None, None  # ended by someone else (the reaper) meanwhile
        self._status = Status.RUNNING
        log.info(
            "run_started",
            extra={"run_id": run.id, "load_test_id": run.load_test_id, "runner": spec.type},
        )
        time_limit_s = spec.timeout_s or self._config.default_time_limit_s
        work_root = self._config.work_dir
        with tempfile.TemporaryDirectory(prefix=f"tickwork-run-{run.id}-", dir=work_root) as d:
            verdict = runner_for(spec, self._config.runners, self._store, clock=self._clock).run(
                RunInput(
                    run_id=run.id,
                    load_test_id=run.load_test_id,
                    project_id=run.project_id,
                    stack=run.stack,
                    created=run.created,
                    schedule_id=run.schedule_id,
                    scheduled_for=run.scheduled_for,
                    script=script,
                    work_dir=Path(d),
                    time_limit_s=time_limit_s,
                ),
                watch.cancel,
            )
        reason = watch.stopped_because()
        if verdict.outcome is Outcome.ABORTED_BY_USER and reason is not None:
            # The runner only knows it was cancelled; the watch knows why.
            return _stopped(reason, watch.by_user, verdict.detail, verdict), watch.by_user
        return verdict, None

    def _record(self, verdict: Verdict | None, by_user: str | None) -> RunRecord | None:
        run_id = self._run.id
        if verdict is None:
            log.warning("run_result_discarded", extra={"run_id": run_id, "discarded": "run_moved"})
            return None
        ending = ending_of(verdict.outcome)
        ended = self._executions.finish(
            run_id,
            expect=self._status,
            ending=ending,
            at=self._clock(),
            detail=verdict.detail,
            details=verdict.details,
            by_user=by_user,
        )
        fields = {
            "run_id": run_id,
            "status": ending.status.value,
            "result": ending.result.value,
            "reason": ending.outcome.value,
            "duration_s": round(time.monotonic() - self._started, 3),
        }
        if ended is None:
            # The reaper (or an operator) ended the run meanwhile; its record stands.
            log.warning("run_result_discarded", extra={**fields, "discarded": "run_moved"})
        else:
            log.info("run_finished", extra=fields)
        return ended


def _stopped(
    reason: Outcome, by_user: str | None, detail: str, verdict: Verdict | None = None
) -> Verdict:
    text = detail if by_user is None else f"{detail}; asked by {by_user}"
    return Verdict(
        outcome=reason, detail=text, details=verdict.details if verdict is not None else {}
    )


def _runner_spec(store: Store, run: RunRecord) -> tuple[RunnerSpec, bytes | None] | str:
    """The load test's runner spec and script, or why the run cannot go ahead."""
    runnable = store.load_tests.runnable(run.load_test_id)
    if runnable is None or runnable.stack != run.stack:
        return f"load test {run.load_test_id} no longer exists"
    try:
        spec = runner_spec_from_json(runnable.runner)
    except ValidationError as exc:
        return "invalid runner: " + "; ".join(problem.message for problem in exc.problems)
    return spec, runnable.script
