"""Projects and load tests: list, create, upload or replace a script, see and edit the
runner, start a run, delete. The same dialect parsers and store operations as the API's
routes, with the viewer's stack."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from tickwork.api.routes.audit import entry_model
from tickwork.console.schedules import start_run
from tickwork.console.web import CheckedForm, ConsoleRoute, SignedIn, Viewer, render, see_other
from tickwork.core.wording import describe
from tickwork.dialects.k6_resources import (
    parse_create_load_test_form,
    parse_create_project,
    parse_patch_load_test,
)
from tickwork.errors import NotFound, ValidationError
from tickwork.store import LoadTestRecord, ScheduleRecord
from tickwork.store.load_tests import DEFAULT_RUNNER

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PAGE = 50
SCRIPT_SHOWN = 256 * 1024
EXAMPLE_SCRIPT = """import http from 'k6/http';
import { check } from 'k6';

export const options = {
  vus: 1,
  duration: '5s',
  thresholds: { http_req_failed: ['rate<0.01'] },
};

export default function () {
  const response = http.get('http://127.0.0.1:8080/healthz');
  check(response, { 'status is 200': (r) => r.status === 200 });
}
"""


def _page_number(request: Request) -> int:
    text = request.query_params.get("page") or "1"
    return int(text) if text.isdigit() and 0 < len(text) < 9 and int(text) > 0 else 1


def _schedule_of(viewer: Viewer, test: LoadTestRecord) -> ScheduleRecord | None:
    try:
        return viewer.store.schedules.for_load_test(viewer.stack, test.id)
    except NotFound:
        return None


@router.get("/projects", response_class=HTMLResponse)
def projects(request: Request, viewer: SignedIn) -> HTMLResponse:
    return _projects_page(request, viewer)


def _projects_page(
    request: Request,
    viewer: Viewer,
    *,
    errors: dict[str, list[str]] | None = None,
    name: str = "",
    status: int = 200,
) -> HTMLResponse:
    page = _page_number(request)
    found, total = viewer.store.projects.page(viewer.stack, skip=(page - 1) * PAGE, top=PAGE)
    return render(
        request,
        "projects.html",
        viewer=viewer,
        projects=found,
        total=total,
        page=page,
        more=page * PAGE < total,
        errors=errors or {},
        name=name,
        status=status,
    )


def _problems(exc: ValidationError) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for problem in exc.problems or ():
        found.setdefault(problem.target or "form", []).append(problem.message)
    return found or {"form": [exc.message]}


@router.post("/projects", response_class=HTMLResponse)
def create_project(request: Request, viewer: SignedIn, form: CheckedForm) -> Response:
    name = form.get("name")
    try:
        parsed = parse_create_project(json.dumps({"name": name}).encode())
        project = viewer.store.projects.create(viewer.stack, name=parsed.name, now=viewer.now())
    except ValidationError as exc:
        return _projects_page(request, viewer, errors=_problems(exc), name=name, status=400)
    return see_other(f"/ui/projects/{project.id}")


@router.get("/projects/{project_id}", response_class=HTMLResponse)
def project_page(request: Request, project_id: int, viewer: SignedIn) -> HTMLResponse:
    return _project_page(request, viewer, project_id)


def _project_page(
    request: Request,
    viewer: Viewer,
    project_id: int,
    *,
    errors: dict[str, list[str]] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    project = viewer.store.projects.get(viewer.stack, project_id)
    page = _page_number(request)
    tests, total = viewer.store.load_tests.page(
        viewer.stack, skip=(page - 1) * PAGE, top=PAGE, project_id=project_id
    )
    return render(
        request,
        "project.html",
        viewer=viewer,
        project=project,
        tests=[(test, _schedule_of(viewer, test)) for test in tests],
        describe=describe,
        total=total,
        page=page,
        more=page * PAGE < total,
        errors=errors or {},
        values=values or {"name": "", "script": EXAMPLE_SCRIPT, "runner": ""},
        status=status,
    )


def _script_of(form_files: dict[str, bytes], text: str) -> bytes | None:
    uploaded = form_files.get("script_file") or b""
    if uploaded:
        return uploaded
    return text.encode() if text.strip() else None


@router.post("/projects/{project_id}/load-tests", response_class=HTMLResponse)
def create_load_test(
    request: Request, project_id: int, viewer: SignedIn, form: CheckedForm
) -> Response:
    viewer.store.projects.get(viewer.stack, project_id)
    fields: dict[str, bytes] = {"name": form.get("name").encode()}
    script = _script_of(dict(form.files), form.get("script"))
    if script is not None:
        fields["script"] = script
    if form.get("runner").strip():
        fields["runner"] = form.get("runner").encode()
    try:
        new = parse_create_load_test_form(fields)
        test = viewer.store.load_tests.create(
            viewer.stack,
            project_id=project_id,
            name=new.name,
            script=new.script,
            now=viewer.now(),
            k6_version=new.k6_version,
            runner=new.runner,
            actor=viewer.actor,
        )
    except ValidationError as exc:
        values = {
            "name": form.get("name"),
            "script": form.get("script"),
            "runner": form.get("runner"),
        }
        return _project_page(
            request, viewer, project_id, errors=_problems(exc), values=values, status=400
        )
    return see_other(f"/ui/load-tests/{test.id}")


@router.get("/load-tests", response_class=HTMLResponse)
def load_test_list(request: Request, viewer: SignedIn) -> HTMLResponse:
    page = _page_number(request)
    name = (request.query_params.get("name") or "").strip()
    tests, total = viewer.store.load_tests.page(
        viewer.stack, skip=(page - 1) * PAGE, top=PAGE, name=name or None
    )
    names = viewer.store.projects.names(test.project_id for test in tests)
    return render(
        request,
        "load_tests.html",
        viewer=viewer,
        tests=[(test, _schedule_of(viewer, test)) for test in tests],
        projects=names,
        describe=describe,
        total=total,
        page=page,
        more=page * PAGE < total,
        name=name,
    )


def _load_test_page(
    request: Request,
    viewer: Viewer,
    load_test_id: int,
    *,
    errors: dict[str, list[str]] | None = None,
    runner_text: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    store = viewer.store
    test = store.load_tests.get(viewer.stack, load_test_id)
    script = store.load_tests.script(viewer.stack, load_test_id)
    is_tar = script is not None and script[257:262] == b"ustar"
    script_text = None
    if script is not None and not is_tar:
        script_text = script[:SCRIPT_SHOWN].decode("utf-8", "replace")
    runs, runs_total = store.runs.page(
        viewer.stack, skip=0, top=15, load_test_id=load_test_id, newest_first=True
    )
    audit, audit_total = store.audit.of("load_test", load_test_id, skip=0, top=15)
    schedule = _schedule_of(viewer, test)
    return render(
        request,
        "load_test.html",
        viewer=viewer,
        test=test,
        project=store.projects.names([test.project_id]).get(test.project_id, ""),
        script_text=script_text,
        script_size=len(script) if script is not None else None,
        is_tar=is_tar,
        runner_text=runner_text if runner_text is not None else json.dumps(test.runner, indent=2),
        schedule=schedule,
        words=describe(schedule.schedule) if schedule else "",
        runs=runs,
        runs_total=runs_total,
        audit=[entry_model(entry) for entry in audit],
        audit_total=audit_total,
        errors=errors or {},
        status=status,
        now=viewer.now(),
    )


@router.get("/load-tests/{load_test_id}", response_class=HTMLResponse)
def load_test_page(request: Request, load_test_id: int, viewer: SignedIn) -> HTMLResponse:
    return _load_test_page(request, viewer, load_test_id)


@router.post("/load-tests/{load_test_id}/script", response_class=HTMLResponse)
def replace_script(
    request: Request, load_test_id: int, viewer: SignedIn, form: CheckedForm
) -> Response:
    viewer.store.load_tests.get(viewer.stack, load_test_id)
    script = _script_of(dict(form.files), form.get("script"))
    if script is None:
        return _load_test_page(
            request,
            viewer,
            load_test_id,
            errors={"script": ["The script is empty."]},
            status=400,
        )
    viewer.store.load_tests.set_script(
        viewer.stack, load_test_id, script, now=viewer.now(), actor=viewer.actor
    )
    return see_other(f"/ui/load-tests/{load_test_id}")


@router.post("/load-tests/{load_test_id}/runner", response_class=HTMLResponse)
def edit_runner(
    request: Request, load_test_id: int, viewer: SignedIn, form: CheckedForm
) -> Response:
    viewer.store.load_tests.get(viewer.stack, load_test_id)
    text = form.get("runner").strip()
    try:
        runner: Any = json.loads(text) if text else None
    except ValueError:
        return _load_test_page(
            request,
            viewer,
            load_test_id,
            errors={"runner": ["runner is not a JSON object."]},
            runner_text=text,
            status=400,
        )
    try:
        patch = parse_patch_load_test(json.dumps({"runner": runner}).encode())
    except ValidationError as exc:
        return _load_test_page(
            request, viewer, load_test_id, errors=_problems(exc), runner_text=text, status=400
        )
    now = viewer.now()

    def change(test: LoadTestRecord) -> LoadTestRecord:
        from dataclasses import replace

        return replace(test, runner=patch.runner or dict(DEFAULT_RUNNER), updated=now)

    viewer.store.load_tests.update(viewer.stack, load_test_id, change, actor=viewer.actor)
    return see_other(f"/ui/load-tests/{load_test_id}")


@router.post("/load-tests/{load_test_id}/start")
def start(load_test_id: int, viewer: SignedIn, form: CheckedForm) -> Response:
    del form
    return start_run(viewer, load_test_id)


@router.get("/load-tests/{load_test_id}/delete", response_class=HTMLResponse)
def confirm_delete(request: Request, load_test_id: int, viewer: SignedIn) -> HTMLResponse:
    test = viewer.store.load_tests.get(viewer.stack, load_test_id)
    return render(
        request,
        "confirm.html",
        viewer=viewer,
        title=f"Delete load test {test.name}?",
        question="Its script and its schedule are deleted with it; its runs stay readable. "
        "A load test whose latest run has not finished cannot be deleted.",
        action=f"/ui/load-tests/{test.id}/delete",
        button="Delete the load test",
        cancel=f"/ui/load-tests/{test.id}",
    )


@router.post("/load-tests/{load_test_id}/delete")
def delete(load_test_id: int, viewer: SignedIn, form: CheckedForm) -> Response:
    del form
    test = viewer.store.load_tests.get(viewer.stack, load_test_id)
    viewer.store.load_tests.delete(viewer.stack, load_test_id, now=viewer.now(), actor=viewer.actor)
    return see_other(f"/ui/projects/{test.project_id}")
