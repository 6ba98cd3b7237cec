"""/docs and /redoc from assets inside the installation: they work with no internet.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (and ReDoc its fonts from Google),
so on a machine without internet they are blank. The assets come from the fastapi-offline
wheel (Swagger UI 5, which renders the OpenAPI 3.1 document FastAPI writes; ReDoc 2), served
from /ui/vendor by this app.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

VENDOR_URL = "/ui/vendor"
VENDOR_DIR = Path(fastapi_offline.__file__).parent / "static"

router = APIRouter(include_in_schema=False)


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
        # Swagger UI would send the document to validator.swagger.io for a badge.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title=f"{request.app.title} — ReDoc",
        redoc_js_url=f"{VENDOR_URL}/redoc.standalone.js",
        redoc_favicon_url="/ui/static/favicon.svg",
        with_google_fonts=False,
    )
