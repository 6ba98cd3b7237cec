"""Signing in with an API token, choosing the stack, signing out.

The token is posted once, by the sign-in form, and never stored anywhere: the session
records which configured token it was (its SHA-256). The form itself is protected against
login CSRF by a double-submit value (a SameSite=Strict cookie and a hidden field that must
match), since no session exists yet to hold a CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from tickwork.console.web import (
    COOKIE,
    SIGN_IN_COOKIE,
    CheckedForm,
    ConsoleRoute,
    SignedIn,
    console_of,
    context_of,
    current_viewer,
    read_form,
    render,
    same_origin,
    see_other,
)
from tickwork.core.instants import is_time_zone_name
from tickwork.errors import Unauthenticated

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


def _safe_next(target: str) -> str:
    """Where to go after sign-in: a console path only (never another site)."""
    if target.startswith("/ui/") and "\\" not in target:
        return target
    return "/ui/"


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _sign_in_page(request: Request, *, error: str = "", status: int = 200) -> HTMLResponse:
    nonce = secrets.token_urlsafe(24)
    response = render(
        request,
        "sign_in.html",
        viewer=None,
        status=status,
        error=error,
        nonce=nonce,
        next=_safe_next(request.query_params.get("next", "/ui/")),
    )
    _set_cookie(request, response, SIGN_IN_COOKIE, nonce, 1800)
    return response


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_page(request: Request) -> Response:
    if current_viewer(request) is not None:
        return see_other(_safe_next(request.query_params.get("next", "/ui/")))
    return _sign_in_page(request)


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request) -> Response:
    form = await read_form(request)
    nonce = request.cookies.get(SIGN_IN_COOKIE, "")
    sent = form.get("nonce")
    if not nonce or not same_origin(request) or not hmac.compare_digest(nonce, sent):
        return _sign_in_page(
            request, error="The sign-in form expired: please try again.", status=403
        )
    token_text = form.get("token").strip()
    context = context_of(request)
    console = console_of(request)
    try:
        token = context.tokens.identify(token_text)
    except Unauthenticated:
        return _sign_in_page(request, error="That token is not valid here.", status=401)
    if not token.stacks:
        return _sign_in_page(request, error="That token may not act in any stack.", status=403)
    zone = form.get("zone")
    session_id, _ = context.store.sessions.create(
        email=token.email,
        token_sha256=hashlib.sha256(token_text.encode("utf-8", "surrogateescape")).hexdigest(),
        stack=min(token.stacks),
        zone=zone if is_time_zone_name(zone) else "UTC",
        now=context.clock(),
        ttl_s=console.session_ttl_s,
    )
    response = see_other(_safe_next(form.get("next", "/ui/")))
    _set_cookie(request, response, COOKIE, session_id, console.session_ttl_s)
    response.delete_cookie(SIGN_IN_COOKIE, path="/")
    return response


@router.post("/sign-out")
def sign_out(viewer: SignedIn, form: CheckedForm) -> Response:
    del form  # checked: a cross-site page cannot sign anyone out
    viewer.store.sessions.delete(viewer.session_id)
    response = see_other("/ui/sign-in")
    response.delete_cookie(COOKIE, path="/")
    return response


@router.post("/stack")
def choose_stack(request: Request, viewer: SignedIn, form: CheckedForm) -> Response:
    chosen = form.get("stack")
    if not chosen.isdigit() or int(chosen) not in viewer.token.stacks:
        return render(
            request,
            "error.html",
            viewer=viewer,
            status=403,
            message=f"Your token may not act in stack {chosen}.",
        )
    viewer.store.sessions.switch_stack(viewer.session_id, int(chosen))
    return see_other("/ui/")
