"""/docs and /redoc from assets inside the installation: they work with no internet.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (and ReDoc its fonts from Google),
so on a machine without internet they are blank. The assets come from the fastapi-offline
wheel (Swagger UI 5, which renders the OpenAPI 3.1 document FastAPI writes; ReDoc 2), served
from /ui/vendor by this app.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

VENDOR_URL = "/ui/vendor"
VENDOR_DIR = Path(fastapi_offline.__file__).parent / "static"
REDOC_JS = "/docs-assets/redoc.standalone.js"  # in the console's app, under /ui
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
_REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
"""The one address ReDoc's bundle fetches by itself (its "powered by" logo), found by the
browser test that cuts the network off; served with our own icon instead."""

router = APIRouter(include_in_schema=False)
"""The main app's routes: /docs, its OAuth2 redirect page, /redoc."""
assets = APIRouter(include_in_schema=False)
"""The console app's: ReDoc's bundle, its one outside address made local."""


def vendor_files() -> StaticFiles:
    return StaticFiles(directory=VENDOR_DIR)


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title=f"{request.app.title} — Swagger UI",
        swagger_js_url=f"{VENDOR_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{VENDOR_URL}/swagger-ui.css",
        swagger_favicon_url="/ui/static/favicon.svg",
        oauth2_redirect_url=OAUTH2_REDIRECT,
        # Swagger UI would send the document to validator.swagger.io for a badge.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title=f"{request.app.title} — ReDoc",
        redoc_js_url=f"/ui{REDOC_JS}",
        redoc_favicon_url="/ui/static/favicon.svg",
        with_google_fonts=False,
    )


@cache
def _redoc_bundle() -> bytes:
    text = (VENDOR_DIR / "redoc.standalone.js").read_bytes()
    return text.replace(_REDOC_LOGO.encode(), b"/ui/static/favicon.svg")


@router.get(OAUTH2_REDIRECT, response_class=HTMLResponse)
def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@assets.get(REDOC_JS)
def redoc_bundle() -> Response:
    return Response(
        _redoc_bundle(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )
