"""The console's plumbing: who is looking (the session behind the cookie), forms and their
CSRF check, and HTML answers for every outcome.

A console route never answers JSON errors or a bare 401: a request without a live session is
sent to the sign-in page (303), and an error the store raises (NotFound for another stack's
resource, Conflict, ValidationError) becomes an HTML page with the API's status and message.
Every write is a POST whose form (or ``X-CSRF-Token`` header, for the scripts' fetches) carries
the session's CSRF token, checked here before the route runs; the cookie is SameSite=Strict
too, and a cross-origin ``Origin`` header is refused outright.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape

from tickwork.api.auth import ApiToken, Principal
from tickwork.api.deps import ApiContext, media_type_of
from tickwork.api.forms import parse_form_data
from tickwork.console import times
from tickwork.core.instants import parse_instant
from tickwork.errors import (
    Conflict,
    Forbidden,
    NotFound,
    StoreUnavailable,
    TickworkError,
    ValidationError,
)
from tickwork.store import Session, Store
from tickwork.store.audit import Actor

COOKIE = "tw_session"
SIGN_IN_COOKIE = "tw_sign_in"  # the sign-in form's own CSRF value (double submit)
CSRF_HEADER = "X-CSRF-Token"
SCHEDULER_LEASE = "scheduler"
"""The scheduler's lease name (tickwork.scheduler.loop.LEASE_NAME; the API layer may not
import the scheduler)."""


@dataclass
class Console:
    """What the console keeps for the app's lifetime (``app.state.console``)."""

    tokens: dict[str, ApiToken]  # SHA-256 hex -> the configured token
    templates: Environment
    session_ttl_s: int
    queue_name: str


def build_templates() -> Environment:
    environment = Environment(
        loader=PackageLoader("tickwork.console", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals.update(
        at=times.at_html,
        ago=times.ago,
        duration=times.duration,
        zone_of=times.zone_label,
        local_text=times.local_text,
        parse_instant=parse_instant,
        q=quote,
    )
    return environment


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def context_of(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


class SignInRequired(Exception):
    """No live session: the route answers with the sign-in page."""


class CsrfRefused(Exception):
    """A write without this session's CSRF token, or from another origin."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in person: their session, their token's current entry, and the principal
    every store call is made as (the same stack scoping as the API's)."""

    session_id: str
    session: Session
    token: ApiToken
    context: ApiContext
    console: Console

    @property
    def principal(self) -> Principal:
        return Principal(self.session.email, self.session.stack)

    @property
    def stack(self) -> int:
        return self.session.stack

    @property
    def store(self) -> Store:
        return self.context.store

    @property
    def actor(self) -> Actor:
        return Actor(self.session.email, "console")

    @property
    def zone(self) -> str:
        return self.session.zone

    def now(self) -> datetime:
        return self.context.clock()


def current_viewer(request: Request) -> Viewer | None:
    """The live session behind the request's cookie whose token is still configured and
    still allows the session's stack; None otherwise."""
    session_id = request.cookies.get(COOKIE, "")
    if not session_id:
        return None
    context = context_of(request)
    session = context.store.sessions.get(session_id)
    if session is None:
        return None
    console = console_of(request)
    token = console.tokens.get(session.token_sha256)
    if token is None or session.stack not in token.stacks:
        return None
    return Viewer(session_id, session, token, context, console)


def _viewer(request: Request) -> Viewer:
    viewer = current_viewer(request)
    if viewer is None:
        raise SignInRequired
    return viewer


SignedIn = Annotated[Viewer, Depends(_viewer)]


@dataclass(frozen=True, slots=True)
class Form:
    """A submitted form: every value of each text field, and uploaded files' contents."""

    fields: Mapping[str, list[str]]
    files: Mapping[str, bytes] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[0] if values else default

    def all(self, name: str) -> list[str]:
        return list(self.fields.get(name, []))


async def read_form(request: Request) -> Form:
    content_type = request.headers.get("content-type", "")
    body = await request.body()
    if media_type_of(content_type) == "multipart/form-data":
        parts = parse_form_data(content_type, body)
        text: dict[str, list[str]] = {}
        files: dict[str, bytes] = {}
        for name, content in parts.items():
            files[name] = content
            text[name] = [content.decode("utf-8", "replace")]
        return Form(text, files)
    fields: dict[str, list[str]] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(name, []).append(value)
    return Form(fields)


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    own = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
    return origin.rstrip("/") == own


async def _checked_form(request: Request, viewer: SignedIn) -> Form:
    form = await read_form(request)
    sent = request.headers.get(CSRF_HEADER) or form.get("csrf")
    if not same_origin(request) or not hmac.compare_digest(
        sent.encode(), viewer.session.csrf.encode()
    ):
        raise CsrfRefused
    return form


CheckedForm = Annotated[Form, Depends(_checked_form)]
"""The form of a write, after its CSRF token and origin were checked."""

_STATUS = (
    (ValidationError, 400),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (StoreUnavailable, 503),
)


def error_status(exc: TickworkError) -> int:
    return next((status for kind, status in _STATUS if isinstance(exc, kind)), 500)


def sign_in_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/sign-in?next={quote(target, safe='')}", status_code=303)


class ConsoleRoute(APIRoute):
    """A console route: sign-in redirects and HTML error pages instead of JSON errors."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answered(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError:
                # a path id that is not a number: nothing has it
                return error_page(request, 404, "No such page.")
            except SignInRequired:
                if request.method != "GET":
                    return HTMLResponse("Signed out: sign in again.", status_code=401)
                return sign_in_redirect(request)
            except CsrfRefused:
                return error_page(
                    request,
                    403,
                    "This form is out of date or came from another site. Reload the page "
                    "and try again.",
                )
            except TickworkError as exc:
                status = error_status(exc)
                if status == 500:
                    raise
                return error_page(request, status, str(exc))

        return answered


def render(
    request: Request,
    template: str,
    *,
    viewer: Viewer | None,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    console = console_of(request)
    page = console.templates.get_template(template).render(
        request=request,
        viewer=viewer,
        path=request.url.path,
        zone=viewer.zone if viewer else "UTC",
        csrf=viewer.session.csrf if viewer else "",
        **values,
    )
    response = HTMLResponse(page, status_code=status)
    # Console pages carry a per-session CSRF token and tenant data: no shared caches, no
    # framing by another site, and no resource but the app's own.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )
    return response


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return render(
        request, "error.html", viewer=current_viewer(request), status=status, message=message
    )


def see_other(url: str) -> RedirectResponse:
    """After a successful write: the page to look at (POST/redirect/GET)."""
    return RedirectResponse(url, status_code=303)
