"""Schedules: the list (paged, filtered), one schedule (its occurrences, runs, audit trail,
health, actions) and the rule editor with its live preview.

Reads and writes go through the store with the viewer's stack, as the API's routes do; the
rule is validated, previewed and saved by the API's own route functions (the same messages,
the same overwrite guard), called with the viewer as their caller.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from tickwork.api.routes import ledger
from tickwork.api.routes import schedules as schedule_routes
from tickwork.api.routes.audit import entry_model
from tickwork.console import schedule_form
from tickwork.console.times import local_text, schedule_zone, tz_of
from tickwork.console.web import CheckedForm, ConsoleRoute, SignedIn, Viewer, render, see_other
from tickwork.core.explain import explained
from tickwork.core.instants import InstantError, parse_instant
from tickwork.core.runs import RunRecord
from tickwork.core.wording import describe
from tickwork.dialects.k6 import parse_create_schedule, stored_request
from tickwork.errors import NotFound, Problem, ValidationError
from tickwork.store import LoadTestRecord, ScheduleRecord, Store
from tickwork.store.schedules import K6Schedule

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PAGE = 50
_SCAN = 500
PREVIEW_COUNT = 10
PAST_SHOWN = 20
STATES = ("", "active", "paused")


@dataclass(frozen=True)
class Row:
    record: ScheduleRecord
    test: LoadTestRecord | None
    project: str
    words: str
    zone_label: str
    next_at: datetime | None
    next_local: str
    last_run: RunRecord | None


def row_of(store: Store, record: ScheduleRecord, *, now: datetime, projects: dict[int, str]) -> Row:
    try:
        test: LoadTestRecord | None = store.load_tests.get(record.stack, record.load_test_id)
    except NotFound:
        test = None
    tz, label = schedule_zone(record.schedule)
    upcoming = record.upcoming(now=now)
    runs, _ = store.runs.page(
        record.stack, skip=0, top=1, load_test_id=record.load_test_id, newest_first=True
    )
    return Row(
        record=record,
        test=test,
        project=projects.get(test.project_id, "") if test else "",
        words=describe(record.schedule),
        zone_label=label,
        next_at=upcoming,
        next_local=local_text(upcoming, tz) if upcoming else "",
        last_run=runs[0] if runs else None,
    )


def _state_matches(record: ScheduleRecord, state: str) -> bool:
    return not state or (state == "paused") == record.deactivated


def select(
    store: Store,
    stack: int,
    *,
    project_id: int | None,
    name: str,
    state: str,
    skip: int,
    top: int,
) -> tuple[list[ScheduleRecord], int | None, bool]:
    """A page of the stack's schedules matching the filters, the total when known without a
    scan (no filter), and whether more match after the page. Without a filter: one page of
    the index. With a project or a name: that project's or name's load tests (their own
    indexes), each one's schedule. With a state only: the index read in chunks until the
    page is full (each chunk O(chunk))."""
    if project_id is None and not name and not state:
        records, total = store.schedules.page(stack, skip=skip, top=top)
        return records, total, skip + top < total
    wanted = skip + top + 1
    found: list[ScheduleRecord] = []
    offset = 0
    while len(found) < wanted:
        if project_id is not None or name:
            tests, total = store.load_tests.page(
                stack, skip=offset, top=_SCAN, project_id=project_id, name=name or None
            )
            chunk = []
            for test in tests:
                try:
                    chunk.append(store.schedules.for_load_test(stack, test.id))
                except NotFound:
                    continue
        else:
            chunk, total = store.schedules.page(stack, skip=offset, top=_SCAN)
        found += [record for record in chunk if _state_matches(record, state)]
        offset += _SCAN
        if offset >= total:
            break
    return found[skip : skip + top], None, len(found) > skip + top


def _int_param(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() and len(text) < 19 else None


@router.get("/schedules", response_class=HTMLResponse)
def schedule_list(request: Request, viewer: SignedIn) -> HTMLResponse:
    store, stack, now = viewer.store, viewer.stack, viewer.now()
    params = request.query_params
    project_id = _int_param(params.get("project"))
    name = (params.get("name") or "").strip()
    state = params.get("state") or ""
    state = state if state in STATES else ""
    page = max(1, _int_param(params.get("page")) or 1)
    records, total, more = select(
        store,
        stack,
        project_id=project_id,
        name=name,
        state=state,
        skip=(page - 1) * PAGE,
        top=PAGE,
    )
    projects_page, _ = store.projects.page(stack, skip=0, top=1000)
    projects = {project.id: project.name for project in projects_page}
    rows = [row_of(store, record, now=now, projects=projects) for record in records]
    query = {"project": project_id or "", "name": name, "state": state}
    return render(
        request,
        "schedules.html",
        viewer=viewer,
        rows=rows,
        total=total,
        more=more,
        page=page,
        page_size=PAGE,
        projects=projects,
        filters=query,
        now=now,
    )


def _past(store: Store, record: ScheduleRecord, now: datetime) -> list[Any]:
    """Its latest occurrences up to now, newest first, with what happened."""
    since = now - timedelta(days=7)
    if record.since is not None:
        since = max(since, record.since)
    start = store.ledger.window_start(record.id, now=now, since=since)
    items = explained(record.schedule, after=start, before=now, limit=1000)[-PAST_SHOWN:]
    return list(reversed(ledger.occurrences_of(store, record, items, now=now)))


@router.get("/schedules/{schedule_id}", response_class=HTMLResponse)
def schedule_page(request: Request, schedule_id: int, viewer: SignedIn) -> HTMLResponse:
    store, stack, now = viewer.store, viewer.stack, viewer.now()
    record = store.schedules.get(stack, schedule_id)
    projects = store.projects.names([store.load_tests.get(stack, record.load_test_id).project_id])
    row = row_of(store, record, now=now, projects=projects)
    coming = explained(record.schedule, after=now, before=None, limit=PREVIEW_COUNT)
    upcoming = ledger.occurrences_of(store, record, coming, now=now)
    runs, runs_total = store.runs.page(
        stack, skip=0, top=15, load_test_id=record.load_test_id, newest_first=True
    )
    audit, audit_total = store.audit.of("schedule", record.id, skip=0, top=20)
    tz, _ = schedule_zone(record.schedule)
    request_echo = (
        json.loads(record.owner.request_echo) if isinstance(record.owner, K6Schedule) else {}
    )
    return render(
        request,
        "schedule.html",
        viewer=viewer,
        row=row,
        record=record,
        pause=record.pause,
        upcoming=upcoming,
        past=_past(store, record, now),
        health=ledger.health_model(store, record, now=now),
        runs=runs,
        runs_total=runs_total,
        audit=[entry_model(entry) for entry in audit],
        audit_total=audit_total,
        request_echo=json.dumps(request_echo, indent=2),
        dst_policy=_dst_words((request_echo.get("cron") or {}).get("dst")),
        schedule_tz=tz,
        viewer_tz=tz_of(viewer.zone),
        now=now,
    )


def _dst_words(dst: dict[str, str] | None) -> str:
    """The DST policy of a cron schedule in words; "" for cron's own (the default)."""
    if not dst:
        return ""
    gap = "runs nothing that day" if dst.get("gap") == "skip" else "runs right after the gap"
    repeat = "runs at both passes" if dst.get("repeat") == "both" else "runs at the first pass"
    return f"a skipped local time {gap}; a repeated one {repeat}"


def _resume_at(text: str, now: datetime) -> datetime | None:
    if not text.strip():
        return None
    try:
        value = parse_instant(text.strip())
    except InstantError as exc:
        raise ValidationError(
            [Problem(exc.code, "resume_at", f"resume at: {exc}")], f"resume at: {exc}"
        ) from None
    if value <= now:
        message = "resume at must be later than now."
        raise ValidationError([Problem("not_in_future", "resume_at", message)], message)
    return value


@router.post("/schedules/{schedule_id}/pause")
def pause(schedule_id: int, viewer: SignedIn, form: CheckedForm) -> Response:
    now = viewer.now()
    viewer.store.schedules.deactivate(
        viewer.stack,
        schedule_id,
        now=now,
        by=viewer.session.email,
        note=form.get("note").strip()[:500],
        resume_at=_resume_at(form.get("resume_at"), now),
        actor=viewer.actor,
    )
    return see_other(f"/ui/schedules/{schedule_id}")


@router.post("/schedules/{schedule_id}/resume")
def resume(schedule_id: int, viewer: SignedIn, form: CheckedForm) -> Response:
    del form
    viewer.store.schedules.activate(viewer.stack, schedule_id, now=viewer.now(), actor=viewer.actor)
    return see_other(f"/ui/schedules/{schedule_id}")


@router.post("/schedules/{schedule_id}/run-now")
def run_now(schedule_id: int, viewer: SignedIn, form: CheckedForm) -> Response:
    del form
    record = viewer.store.schedules.get(viewer.stack, schedule_id)
    return start_run(viewer, record.load_test_id)


def start_run(viewer: Viewer, load_test_id: int) -> Response:
    """Start a run of the load test as POST /load_tests/{id}/start does; show it."""
    test = viewer.store.load_tests.get(viewer.stack, load_test_id)
    run = viewer.store.manual_runs.start(
        test,
        rq_queue=viewer.context.rq_queue,
        started_by=viewer.session.email,
        now=viewer.now(),
        idempotency_key=None,
    )
    return see_other(f"/ui/runs/{run.id}")


@router.get("/schedules/{schedule_id}/delete", response_class=HTMLResponse)
def confirm_delete(request: Request, schedule_id: int, viewer: SignedIn) -> HTMLResponse:
    record = viewer.store.schedules.get(viewer.stack, schedule_id)
    return render(
        request,
        "confirm.html",
        viewer=viewer,
        title=f"Delete schedule #{record.id}?",
        question=f"Schedule #{record.id} ({describe(record.schedule)}) stops firing and is "
        "deleted. Its load test and its past runs stay.",
        action=f"/ui/schedules/{record.id}/delete",
        button="Delete the schedule",
        cancel=f"/ui/schedules/{record.id}",
    )


@router.post("/schedules/{schedule_id}/delete")
def delete(schedule_id: int, viewer: SignedIn, form: CheckedForm) -> Response:
    del form
    viewer.store.schedules.delete(viewer.stack, schedule_id, now=viewer.now(), actor=viewer.actor)
    return see_other("/ui/schedules")


# --- the rule editor ------------------------------------------------------------------


def _editor(
    request: Request,
    viewer: Viewer,
    test: LoadTestRecord,
    values: dict[str, Any],
    *,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> HTMLResponse:
    try:
        existing: ScheduleRecord | None = viewer.store.schedules.for_load_test(
            viewer.stack, test.id
        )
    except NotFound:
        existing = None
    return render(
        request,
        "schedule_edit.html",
        viewer=viewer,
        test=test,
        existing=existing,
        values=values,
        errors=errors or {},
        status=status,
        weekdays=("MO", "TU", "WE", "TH", "FR", "SA", "SU"),
        frequencies=("HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"),
    )


@router.get("/load-tests/{load_test_id}/schedule", response_class=HTMLResponse)
def edit_schedule(request: Request, load_test_id: int, viewer: SignedIn) -> HTMLResponse:
    test = viewer.store.load_tests.get(viewer.stack, load_test_id)
    try:
        record = viewer.store.schedules.for_load_test(viewer.stack, test.id)
        assert isinstance(record.owner, K6Schedule)
        stored = stored_request(record.owner.request_echo).model_dump(mode="json")
    except NotFound:
        stored = None
    values = schedule_form.form_values(stored, now=viewer.now(), zone=viewer.zone)
    return _editor(request, viewer, test, values)


@router.post("/load-tests/{load_test_id}/schedule", response_class=HTMLResponse)
def save_schedule(
    request: Request, load_test_id: int, viewer: SignedIn, form: CheckedForm
) -> Response:
    test = viewer.store.load_tests.get(viewer.stack, load_test_id)
    body = json.dumps(schedule_form.request_document(form.fields)).encode()
    try:
        schedule_routes.set_load_test_schedule(
            load_test_id, viewer.principal, viewer.actor, viewer.context, body
        )
    except ValidationError as exc:
        values = schedule_form.values_of(form.fields)
        errors = schedule_form.field_errors(exc.problems)
        if not exc.problems:
            errors[schedule_form.GENERAL] = [exc.message]
        return _editor(request, viewer, test, values, errors=errors, status=400)
    record = viewer.store.schedules.for_load_test(viewer.stack, load_test_id)
    return see_other(f"/ui/schedules/{record.id}")


@router.post("/schedules/preview")
def preview(request: Request, viewer: SignedIn, form: CheckedForm) -> Response:
    """The next occurrences of the rule being edited, from POST /schedules/preview, with the
    API's problems by field (JSON for the editor's script)."""
    document = schedule_form.request_document(form.fields)
    body = json.dumps(document).encode()
    try:
        _, schedule = parse_create_schedule(body)
        answer = ledger.preview_schedule(
            caller=viewer.principal,
            context=viewer.context,
            request=request,
            body=body,
            after=None,
            before=None,
            limit=PREVIEW_COUNT,
        )
    except ValidationError as exc:
        errors = schedule_form.field_errors(exc.problems)
        return JSONResponse(
            {"ok": False, "message": exc.message, "errors": errors, "words": ""},
            headers={"Cache-Control": "no-store"},
        )
    items = json.loads(bytes(answer.body))["value"]
    tz, _ = schedule_zone(schedule)
    viewer_tz = tz_of(viewer.zone)
    occurrences = []
    for item in items:
        instant = parse_instant(item["instant"])
        text = local_text(instant, tz)
        mine = local_text(instant, viewer_tz)
        occurrences.append(
            {
                "instant": item["instant"],
                "text": text if mine == text else f"{text} · {mine} (yours)",
                "notes": [note["message"] for note in item["notes"]],
            }
        )
    return JSONResponse(
        {"ok": True, "words": describe(schedule), "occurrences": occurrences, "errors": {}},
        headers={"Cache-Control": "no-store"},
    )
