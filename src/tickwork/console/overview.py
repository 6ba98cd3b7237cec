"""The overview: the stack's last 24 hours, the schedules failing now, and the processes.

Runs are read by creation through the stack's run index, newest first, at most
``RUNS_READ`` of them (the page says so when the day held more); the scheduler's term is
its lease in the store, the queue's depth and the workers are RQ's own records.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tickwork.console.web import SCHEDULER_LEASE, ConsoleRoute, SignedIn, render
from tickwork.core.lifecycle import Status, is_terminal
from tickwork.core.runs import RunRecord
from tickwork.errors import NotFound
from tickwork.store import Store, WorkerSeen

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

WINDOW = timedelta(hours=24)
RUNS_READ = 10_000
_PAGE = 1000
LATE_MS = 1000


@dataclass
class Day:
    runs: int = 0
    fired: int = 0
    late: int = 0
    manual: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    results: Counter[str] = field(default_factory=Counter)
    unfinished: int = 0
    capped: bool = False
    failing: list[tuple[int, RunRecord]] = field(default_factory=list)  # (schedule, its run)


def last_day(store: Store, stack: int, now: datetime) -> Day:
    day = Day()
    latest_finished: dict[int, RunRecord] = {}
    skip = 0
    while skip < RUNS_READ:
        runs, total = store.runs.page(
            stack, skip=skip, top=_PAGE, created_after=now - WINDOW, newest_first=True
        )
        for run in runs:
            _count(day, run)
            if (
                run.schedule_id is not None
                and run.status != Status.SKIPPED
                and is_terminal(run.status)
            ):
                latest_finished.setdefault(run.schedule_id, run)  # newest first
        skip += _PAGE
        if skip >= total:
            break
    else:
        day.capped = True
    day.failing = sorted(
        (
            (schedule_id, run)
            for schedule_id, run in latest_finished.items()
            if not (run.status == Status.COMPLETED and run.result == "passed")
        ),
        key=lambda pair: pair[1].created,
        reverse=True,
    )
    return day


def _count(day: Day, run: RunRecord) -> None:
    day.runs += 1
    if run.status == Status.SKIPPED:
        reason = str(run.details.get("skip_reason") or "unknown")
        day.skipped[reason] += 1 + int(run.details.get("more") or 0)
        return
    if run.schedule_id is not None:
        day.fired += 1
        if run.scheduled_for is not None:
            late_ms = (run.created - run.scheduled_for).total_seconds() * 1000
            day.late += late_ms > LATE_MS
    else:
        day.manual += 1
    if run.status == Status.ABORTED:
        day.results["aborted"] += 1
    elif run.status == Status.COMPLETED:
        day.results[run.result or "error"] += 1
    else:
        day.unfinished += 1


@dataclass(frozen=True)
class Processes:
    term: int | None
    lease_ms: int | None
    depth: int
    workers: list[WorkerSeen]


def processes(store: Store, queue_name: str) -> Processes:
    held = store.lease_holder(SCHEDULER_LEASE)
    depth, workers = store.queue_facts(queue_name)
    return Processes(
        term=held[0] if held else None,
        lease_ms=held[1] if held else None,
        depth=depth,
        workers=sorted(workers, key=lambda worker: worker.name),
    )


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, viewer: SignedIn) -> HTMLResponse:
    store = viewer.store
    now = viewer.now()
    day = last_day(store, viewer.stack, now)
    names = {}
    for schedule_id, run in day.failing:
        try:
            names[schedule_id] = store.load_tests.get(viewer.stack, run.load_test_id).name
        except NotFound:
            names[schedule_id] = f"load test {run.load_test_id} (deleted)"
    _, total = store.schedule_counts([viewer.stack])
    return render(
        request,
        "overview.html",
        viewer=viewer,
        now=now,
        since=now - WINDOW,
        day=day,
        names=names,
        processes=processes(store, viewer.console.queue_name),
        schedules_total=total,
    )
