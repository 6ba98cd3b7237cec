"""The web console (issue 17): server-rendered pages under /ui, served by the API process.

Part of the API layer: every page reads and writes through the same store operations, with
the same stack scoping, as the k6 API routes (whose validation and route functions it calls).
Every asset ships in this package (templates/, static/) or in an installed wheel (the API
docs' Swagger UI and ReDoc): nothing is fetched from outside at run time, and nothing is
built: the pages are HTML from Jinja2 templates, with one small script for the live preview
of a rule being edited and the refresh of a running run.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from tickwork.api.auth import ApiToken
from tickwork.console import docs
from tickwork.console.load_tests import router as load_tests_router
from tickwork.console.others import router as others_router
from tickwork.console.overview import router as overview_router
from tickwork.console.runs import router as runs_router
from tickwork.console.schedules import router as schedules_router
from tickwork.console.signin import router as signin_router
from tickwork.console.web import Console, build_templates
from tickwork.store.sessions import DEFAULT_TTL_S

STATIC_DIR = Path(__file__).parent / "static"


def install(
    app: FastAPI,
    *,
    tokens: Iterable[ApiToken],
    queue_name: str,
    session_ttl_s: int = DEFAULT_TTL_S,
) -> None:
    """Serve the console under /ui (``/`` redirects there), and /docs and /redoc offline.
    ``tokens`` are the API's: a session lasts while its token is one of them."""
    app.state.console = Console(
        tokens={token.sha256.hex(): token for token in tokens},
        templates=build_templates(),
        session_ttl_s=session_ttl_s,
        queue_name=queue_name,
    )
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="console-static")
    app.mount(docs.VENDOR_URL, docs.vendor_files(), name="console-vendor")
    app.include_router(docs.router)
    for router in (
        signin_router,
        overview_router,
        schedules_router,
        load_tests_router,
        runs_router,
        others_router,
    ):
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui", status_code=307)
