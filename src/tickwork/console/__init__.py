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
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tickwork.api.auth import ApiToken
from tickwork.console import docs
from tickwork.console.load_tests import router as load_tests_router
from tickwork.console.others import router as others_router
from tickwork.console.overview import router as overview_router
from tickwork.console.runs import router as runs_router
from tickwork.console.schedules import router as schedules_router
from tickwork.console.signin import router as signin_router
from tickwork.console.web import Console, build_templates, error_page
from tickwork.store.sessions import DEFAULT_TTL_S

STATIC_DIR = Path(__file__).parent / "static"
ROUTERS = (
    signin_router,
    overview_router,
    schedules_router,
    load_tests_router,
    runs_router,
    others_router,
    docs.assets,
)


def install(
    app: FastAPI,
    *,
    tokens: Iterable[ApiToken],
    queue_name: str,
    session_ttl_s: int = DEFAULT_TTL_S,
) -> None:
    """Mount the console at /ui (``/`` redirects there) and serve /docs and /redoc offline.
    ``tokens`` are the API's: a session lasts while its token is one of them. Call it after
    ``app.state.context`` is set: the console acts through the same context.

    The console is an app of its own, mounted: its pages answer HTML (its errors too) and
    take a session cookie, not a bearer token, so they are neither operations of the API's
    OpenAPI document nor rows of the API's auth matrix; its own tests cover both
    (tests/integration/test_console_pages.py)."""
    console_app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    console_app.state.context = app.state.context
    console_app.state.console = Console(
        tokens={token.sha256.hex(): token for token in tokens},
        templates=build_templates(),
        session_ttl_s=session_ttl_s,
        queue_name=queue_name,
    )
    console_app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    console_app.mount("/vendor", docs.vendor_files(), name="vendor")
    for router in ROUTERS:
        console_app.include_router(router)
    console_app.add_exception_handler(StarletteHTTPException, _http_error)
    app.mount("/ui", console_app)
    app.include_router(docs.router)
    app.add_middleware(RootRedirect)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_page(request, 404, "No such page.")
    return error_page(request, exc.status_code, str(exc.detail))


class RootRedirect:
    """``GET /`` goes to the console: the first address people type. Answered before
    routing, as the root is no resource of any API."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/" and scope["method"] in ("GET", "HEAD"):
            await RedirectResponse("/ui/", status_code=307)(scope, receive, send)
            return
        await self.app(scope, receive, send)
