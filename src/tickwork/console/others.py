"""Report schedules and Kragle schedules: lists with their next run, enough to see and to
delete (the same store operations as their APIs' DELETEs)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from tickwork.console.web import CheckedForm, ConsoleRoute, SignedIn, Viewer, render, see_other
from tickwork.core.wording import describe
from tickwork.errors import NotFound
from tickwork.store import ScheduleRecord
from tickwork.store.kragle import template_of

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PAGE = 50


def _page(request: Request) -> int:
    text = request.query_params.get("page") or "1"
    return int(text) if text.isdigit() and 0 < len(text) < 9 and int(text) > 0 else 1


def _upcoming(viewer: Viewer, schedule_id: int, dialect: str, now: datetime) -> datetime | None:
    try:
        record = viewer.store.schedules.get(viewer.stack, schedule_id, dialect=dialect)
    except NotFound:
        return None
    return record.upcoming(now=now)


@router.get("/reports", response_class=HTMLResponse)
def reports(request: Request, viewer: SignedIn) -> HTMLResponse:
    page, now = _page(request), viewer.now()
    found, total = viewer.store.reports.page(viewer.stack, skip=(page - 1) * PAGE, top=PAGE)
    rows = [(report, _upcoming(viewer, report.schedule_id, "report", now)) for report in found]
    return render(
        request,
        "reports.html",
        viewer=viewer,
        rows=rows,
        total=total,
        page=page,
        more=page * PAGE < total,
        now=now,
    )


@router.get("/reports/{report_id}/delete", response_class=HTMLResponse)
def confirm_report_delete(request: Request, report_id: str, viewer: SignedIn) -> HTMLResponse:
    report = viewer.store.reports.get(viewer.stack, report_id)
    return render(
        request,
        "confirm.html",
        viewer=viewer,
        title=f"Delete report {report.attrs.get('name', report.id)}?",
        question="The report schedule is deleted and sends nothing more; past runs stay.",
        action=f"/ui/reports/{report.id}/delete",
        button="Delete the report",
        cancel="/ui/reports",
    )


@router.post("/reports/{report_id}/delete")
def delete_report(report_id: str, viewer: SignedIn, form: CheckedForm) -> Response:
    del form
    viewer.store.reports.get(viewer.stack, report_id)
    viewer.store.reports.delete_many(
        viewer.stack, [report_id], now=viewer.now(), actor=viewer.actor
    )
    return see_other("/ui/reports")


@router.get("/kragle", response_class=HTMLResponse)
def kragle(request: Request, viewer: SignedIn) -> HTMLResponse:
    page, now = _page(request), viewer.now()
    store = viewer.store
    templates, templates_total = store.kragle.page(viewer.stack, skip=(page - 1) * PAGE, top=PAGE)
    jobs, jobs_total = store.kragle.jobs_page(viewer.stack, skip=0, top=200)
    by_template: dict[int, list[ScheduleRecord]] = {}
    for job in jobs:
        by_template.setdefault(template_of(job), []).append(job)
    names: dict[int, str] = {}
    for job in jobs:
        try:
            names[job.load_test_id] = store.load_tests.get(viewer.stack, job.load_test_id).name
        except NotFound:
            names[job.load_test_id] = f"load test {job.load_test_id}"
    return render(
        request,
        "kragle.html",
        viewer=viewer,
        templates=templates,
        templates_total=templates_total,
        jobs=by_template,
        jobs_total=jobs_total,
        names=names,
        describe=describe,
        page=page,
        more=page * PAGE < templates_total,
        now=now,
    )


@router.get("/kragle/{template_id}/delete", response_class=HTMLResponse)
def confirm_kragle_delete(request: Request, template_id: int, viewer: SignedIn) -> HTMLResponse:
    template = viewer.store.kragle.get(viewer.stack, template_id)
    return render(
        request,
        "confirm.html",
        viewer=viewer,
        title=f"Delete Kragle schedule {template.name or template.id}?",
        question="The schedule and every job binding it to a load test are deleted; the load "
        "tests and their runs stay.",
        action=f"/ui/kragle/{template.id}/delete",
        button="Delete the Kragle schedule",
        cancel="/ui/kragle",
    )


@router.post("/kragle/{template_id}/delete")
def delete_kragle(template_id: int, viewer: SignedIn, form: CheckedForm) -> Response:
    del form
    viewer.store.kragle.delete(viewer.stack, template_id, now=viewer.now(), actor=viewer.actor)
    return see_other("/ui/kragle")
