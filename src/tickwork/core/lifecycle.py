"""The life of a test run: which status may follow which, and how each ending is recorded.

Statuses and results use the k6 Cloud v6 TestRunApiModel vocabulary. Its status types are
``created queued initializing running processing_metrics completed aborted`` (tickwork adds
``skipped`` for occurrences passed over by a policy), and its results ``passed failed error``,
where ``error`` means "the execution was not completed"::

    created ──> initializing ──> running ──> completed   result passed | failed | error
       │  (queued)   │              │
       └─────────────┴──────────────┴──────> aborted     result error; reason in the history

The spec has no status for a timeout or a lost worker. Like its example of an aborted run,
those end ``aborted`` with result ``error``, and the status entry's ``extra`` says why: a
``message`` that starts with the reason (``timed_out: ...``) and a ``code`` taken from the
k6 Cloud status codes (4 timed out, 5 aborted by user, 6 aborted by system).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    CREATED = "created"
    QUEUED = "queued"
    INITIALIZING = "initializing"
    RUNNING = "running"
    PROCESSING_METRICS = "processing_metrics"
    COMPLETED = "completed"
    ABORTED = "aborted"
    SKIPPED = "skipped"


class Result(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"


class Outcome(StrEnum):
    """Why a run ended; stored as ``details.reason`` and at the head of the status message."""

    PASSED = "passed"
    FAILED = "failed"  # the test ran and said no: k6 thresholds crossed, a command exit != 0
    ERROR = "error"  # the test could not be run to its end: bad script, missing binary
    TIMED_OUT = "timed_out"
    ABORTED_BY_USER = "aborted_by_user"
    WORKER_LOST = "worker_lost"  # the worker stopped heartbeating (kill -9, machine lost)
    WORKER_STOPPED = "worker_stopped"  # the worker was shut down cold during the run


TERMINAL = frozenset({Status.COMPLETED, Status.ABORTED, Status.SKIPPED})
"""Statuses a run never leaves: it has finished."""
NOT_STARTED = frozenset({Status.CREATED, Status.QUEUED})
"""Statuses of a run no worker has begun to execute: an abort ends these at once."""

# Every status may be aborted until it is terminal; forward moves only, none backwards, so a
# re-delivered job or a late writer can never revive a run.
TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    Status.CREATED: frozenset({Status.QUEUED, Status.INITIALIZING, Status.ABORTED}),
    Status.QUEUED: frozenset({Status.INITIALIZING, Status.ABORTED}),
    Status.INITIALIZING: frozenset({Status.RUNNING, Status.COMPLETED, Status.ABORTED}),
    Status.RUNNING: frozenset({Status.PROCESSING_METRICS, Status.COMPLETED, Status.ABORTED}),
    Status.PROCESSING_METRICS: frozenset({Status.COMPLETED, Status.ABORTED}),
    Status.COMPLETED: frozenset(),
    Status.ABORTED: frozenset(),
    Status.SKIPPED: frozenset(),
}


def allowed(old: str, new: str) -> bool:
    """Whether a run in status ``old`` may move to ``new``. Unknown statuses move nowhere."""
    try:
        return Status(new) in TRANSITIONS[Status(old)]
    except ValueError:
        return False


def is_terminal(status: str) -> bool:
    return status in TERMINAL


@dataclass(frozen=True, slots=True, kw_only=True)
class Ending:
    """How an outcome is written: final status, result, and the status entry's code."""

    outcome: Outcome
    status: Status
    result: Result
    code: int | None

    def message(self, detail: str) -> str:
        """The status entry's message: the reason first, so it can be matched on."""
        return f"{self.outcome.value}: {detail}" if detail else self.outcome.value


# k6 Cloud status codes (the legacy numeric statuses) where one names the reason.
_K6_TIMED_OUT = 4
_K6_ABORTED_BY_USER = 5
_K6_ABORTED_BY_SYSTEM = 6

_ENDINGS: Mapping[Outcome, tuple[Status, Result, int | None]] = {
    Outcome.PASSED: (Status.COMPLETED, Result.PASSED, None),
    Outcome.FAILED: (Status.COMPLETED, Result.FAILED, None),
    Outcome.ERROR: (Status.COMPLETED, Result.ERROR, None),
    Outcome.TIMED_OUT: (Status.ABORTED, Result.ERROR, _K6_TIMED_OUT),
    Outcome.ABORTED_BY_USER: (Status.ABORTED, Result.ERROR, _K6_ABORTED_BY_USER),
    Outcome.WORKER_LOST: (Status.ABORTED, Result.ERROR, _K6_ABORTED_BY_SYSTEM),
    Outcome.WORKER_STOPPED: (Status.ABORTED, Result.ERROR, _K6_ABORTED_BY_SYSTEM),
}


def ending_of(outcome: Outcome) -> Ending:
    status, result, code = _ENDINGS[outcome]
    return Ending(outcome=outcome, status=status, result=result, code=code)
