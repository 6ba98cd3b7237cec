"""Runs: the stack's runs newest first, and one run: its status timeline with times, its
result, k6's thresholds and key metrics, the output's tail, abort while it runs. The run page
refreshes its live part (``/live``) by itself until the run has finished."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from tickwork.console.web import CheckedForm, ConsoleRoute, SignedIn, Viewer, render, see_other
from tickwork.core.k6_summary import run_results
from tickwork.core.lifecycle import is_terminal
from tickwork.errors import NotFound

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PAGE = 50
OUTPUT_SHOWN = 16 * 1024


@router.get("/runs", response_class=HTMLResponse)
def run_list(request: Request, viewer: SignedIn) -> HTMLResponse:
    text = request.query_params.get("page") or "1"
    page = int(text) if text.isdigit() and 0 < len(text) < 9 and int(text) > 0 else 1
    runs, total = viewer.store.runs.page(
        viewer.stack, skip=(page - 1) * PAGE, top=PAGE, newest_first=True
    )
    names = {}
    for run in runs:
        if run.load_test_id not in names:
            try:
                names[run.load_test_id] = viewer.store.load_tests.get(
                    viewer.stack, run.load_test_id
                ).name
            except NotFound:
                names[run.load_test_id] = f"load test {run.load_test_id}"
    return render(
        request,
        "runs.html",
        viewer=viewer,
        runs=runs,
        names=names,
        total=total,
        page=page,
        more=page * PAGE < total,
    )


def _live_values(viewer: Viewer, run_id: int) -> dict[str, Any]:
    run = viewer.store.runs.get(viewer.stack, run_id)
    results = run_results(run.details)
    tail = results.output_tail
    return {
        "run": run,
        "results": results,
        "summary": results.summary,
        "output": tail[-OUTPUT_SHOWN:] if tail else None,
        "finished": is_terminal(run.status),
        "reason": run.details.get("reason") or run.details.get("skip_reason"),
        "now": viewer.now(),
    }


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: int, viewer: SignedIn) -> HTMLResponse:
    values = _live_values(viewer, run_id)
    run = viewer.store.runs.get(viewer.stack, run_id)
    try:
        test_name = viewer.store.load_tests.get(viewer.stack, run.load_test_id).name
    except NotFound:
        test_name = None
    return render(request, "run.html", viewer=viewer, test_name=test_name, **values)


@router.get("/runs/{run_id}/live", response_class=HTMLResponse)
def run_live(request: Request, run_id: int, viewer: SignedIn) -> HTMLResponse:
    return render(request, "_run_live.html", viewer=viewer, **_live_values(viewer, run_id))


@router.post("/runs/{run_id}/abort")
def abort(run_id: int, viewer: SignedIn, form: CheckedForm) -> Response:
    del form
    viewer.store.run_requests.abort(
        viewer.stack, run_id, by_user=viewer.session.email, now=viewer.now()
    )
    return see_other(f"/ui/runs/{run_id}")
