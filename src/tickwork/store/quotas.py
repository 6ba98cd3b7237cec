"""What a stack may hold: quotas per stack, and the deployment's minimum spacing of runs.

A count quota bounds the members of one of the stack's indexes (``{p}:stack:{stack}:{kind}``,
see ``keys.py``). It is checked inside the transaction that adds the member: the create
WATCHes the index before it counts it (``ZCARD``), so two creations racing for the last place
cannot both commit: the second one's transaction is void, and tried again it counts the first
one's member and is refused. A refusal raises ``QuotaExceeded`` before anything is written
(ids included: the count comes first). Overwriting a thing that exists (a load test's k6
schedule, re-POSTed) adds no member and is never counted.

The minimums are rules of a request, not of stored state: the API checks them before any
write (``interval_problem``), with the core's occurrence math.

0 means unlimited for every quota and no minimum for the interval: a deployment that sets
nothing holds generous defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from redis.client import Pipeline

from tickwork.core import Schedule
from tickwork.core.instants import ONE_MICROSECOND
from tickwork.core.jitter import widest_jitter
from tickwork.errors import Problem, QuotaExceeded

DEFAULT_SCRIPT_BYTES = 1_048_576
"""The largest script by default: the API's default request-body limit, so a deployment that
sets nothing refuses no script it would otherwise take."""
GAP_LOOK = 200
"""How many occurrences ahead the shortest gap between two of them is looked for."""

INDEX_OF = {
    "schedules": "schedules",
    "load_tests": "load_tests",
    "kragle_templates": "kragle_schedules",
    "kragle_jobs": "kragle_jobs",
    "report_schedules": "reports",
}
"""Each count quota's stack index (``Keys.stack_index(stack, kind)``)."""

_WHAT = {
    "schedules": "schedules",
    "load_tests": "load tests",
    "kragle_templates": "Kragle schedules",
    "kragle_jobs": "Kragle jobs",
    "report_schedules": "report schedules",
}


@dataclass(frozen=True, slots=True)
class Quotas:
    """One stack's quotas (0: unlimited): how many k6 schedules, load tests, Kragle templates,
    Kragle jobs and report schedules it may hold, and the largest script of a load test."""

    schedules: int = 10_000
    load_tests: int = 10_000
    kragle_templates: int = 100
    kragle_jobs: int = 10_000
    report_schedules: int = 1_000
    script_bytes: int = DEFAULT_SCRIPT_BYTES


@dataclass(frozen=True, slots=True)
class Limits:
    """The deployment's limits on what tenants create: the quotas of every stack (``quotas``)
    unless ``stack_quotas`` names the stack; the shortest time between two occurrences of
    any schedule (``min_interval_s``, 0: none) and the shortest period of a Kragle template
    (``min_kragle_period_s``)."""

    quotas: Quotas = field(default_factory=Quotas)
    stack_quotas: Mapping[int, Quotas] = field(default_factory=dict)
    min_interval_s: int = 0
    min_kragle_period_s: int = 1

    def of(self, stack: int) -> Quotas:
        """The quotas of ``stack``."""
        return self.stack_quotas.get(stack, self.quotas)


def check_count(pipe: Pipeline, index: str, *, quota: str, limit: int) -> None:
    """Refuse one more member of the stack's ``index`` when it holds ``limit`` already (0:
    unlimited). Call it inside a ``transact`` attempt, before MULTI and before taking an
    id: it WATCHes the index, so a member added meanwhile voids the attempt's writes."""
    if limit <= 0:
        return
    pipe.watch(index)
    held = int(pipe.zcard(index))
    if held >= limit:
        raise QuotaExceeded(
            quota,
            limit,
            f"The stack holds {held} {_WHAT[quota]}: its quota {quota!r} is {limit}. "
            "Delete one first, or ask the operator to raise the quota.",
        )


def check_script(script: bytes | None, quotas: Quotas | None) -> None:
    """Refuse a script larger than the stack's ``script_bytes`` quota (0: unlimited)."""
    if script is None or quotas is None or quotas.script_bytes <= 0:
        return
    if len(script) > quotas.script_bytes:
        raise QuotaExceeded(
            "script_bytes",
            quotas.script_bytes,
            f"The script is {len(script)} bytes: the stack's quota 'script_bytes' is "
            f"{quotas.script_bytes} bytes per script.",
        )


def interval_problem(
    schedule: Schedule, *, now: datetime, minimum_s: int, target: str
) -> Problem | None:
    """The problem of a schedule set at ``now`` two of whose next occurrences (within
    ``GAP_LOOK``) are closer than ``minimum_s`` seconds, naming ``target``; None when none
    are (or when ``minimum_s`` is 0, or fewer than two occurrences remain)."""
    if minimum_s <= 0:
        return None
    gap = widest_jitter(schedule, now - ONE_MICROSECOND, look=GAP_LOOK)
    if gap is None or gap >= minimum_s:
        return None
    return Problem(
        "interval_too_short",
        target,
        f"Two runs of this schedule would be {gap} s apart: this deployment allows at "
        f"least {minimum_s} s between two runs of a schedule.",
    )
