"""FastAPI dependencies: the app's context, the caller, and request bodies.

The dependencies that only look at headers are ``async`` (no I/O: they run on the event loop
without a thread hop). Body readers are ``async`` because reading the body is; endpoints are
plain ``def`` and run in the threadpool, since the store speaks synchronous Redis.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BeforeValidator
from rq import Queue

from tickwork.api.auth import Principal, TokenBook
from tickwork.api.errors_http import UnsupportedMediaType
from tickwork.core.instants import InstantError, out_of_range, parse_instant
from tickwork.errors import NotFound, Problem, ValidationError
from tickwork.store import Store
from tickwork.store.audit import Actor

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class ApiContext:
    store: Store
    tokens: TokenBook
    rq_queue: Queue
    public_url: str | None
    clock: Clock
    default_jitter_s: int = 0  # a new schedule's jitter when it names none


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


Context = Annotated[ApiContext, Depends(_context)]

_bearer = HTTPBearer(
    auto_error=False,  # our 401 body, not FastAPI's 403
    scheme_name="k6ApiToken",
    description="A token from TICKWORK_TOKENS; each names its user and the stacks it may use.",
)


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
"""The bearer credentials as sent (None when absent or not Bearer), for a route that may also
answer anonymous callers (the Kragle listing, when public)."""


async def _caller(request: Request, credentials: Credentials) -> Principal:
    tokens: TokenBook = request.app.state.context.tokens
    token = credentials.credentials if credentials is not None else None
    return tokens.authorize(token, request.headers.getlist("x-stack-id"))


Caller = Annotated[Principal, Depends(_caller)]

CLIENT_HEADER = "X-Tickwork-Client"
"""Set by tickwork's own clients (``cli``, ``console``): the audit trail says where a change
came from. Anything else, or nothing, is ``api``."""


async def _acting(request: Request, caller: Caller) -> Actor:
    via = request.headers.get(CLIENT_HEADER, "").strip().lower()
    return Actor(caller.email, via if via in ("cli", "console") else "api")


Acting = Annotated[Actor, Depends(_acting)]
"""Who makes the request's changes, and from where (for the audit trail)."""

MAX_ID = 2**63 - 1
"""Ids are positive int64s (the spec's ``format: int64``)."""
_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)", re.ASCII)


def _canonical_id(value: object) -> object:
    """A path id as plain decimal digits, or a 400: "1.0", "+1", "01", "1_0" and " 1" would
    all name resource 1 to a lenient parser. A well-written number that cannot be an id
    (0, negative, past int64) names nothing: 404, and never reaches the store."""
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise ValueError("an id is written in plain decimal digits, such as 42")
    if len(value) > len(str(MAX_ID)) or not 1 <= int(value) <= MAX_ID:
        shown = value if len(value) <= 24 else value[:24] + "…"
        raise NotFound(f"Nothing has id {shown}: ids run from 1 to {MAX_ID}.")
    return value


def _plain_integer(value: object) -> object:
    """A query integer as plain decimal digits: a lenient parser reads "1_0" as 10."""
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        raise ValueError("an integer is written in plain decimal digits, such as 42")
    return value


PlainInt = BeforeValidator(_plain_integer)
"""Metadata for an ``int`` query parameter: ``Annotated[int, PlainInt, Query(...)]``."""

ResourceId = Annotated[
    int, BeforeValidator(_canonical_id), Path(json_schema_extra={"format": "int64"})
]


@dataclass(frozen=True, slots=True)
class Body:
    media_type: str  # lower case, without parameters; "" when the request named none
    content_type: str  # the header as sent
    data: bytes


def media_type_of(content_type: str) -> str:
    holder = Message()
    holder["content-type"] = content_type
    return holder.get_content_type() if content_type else ""


async def _body(request: Request) -> Body:
    content_type = request.headers.get("content-type", "")
    return Body(media_type_of(content_type), content_type, await request.body())


RawBody = Annotated[Body, Depends(_body)]


def is_json(media_type: str) -> bool:
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def _json_body(caller: Caller, body: RawBody) -> bytes:
    # ``caller`` first: an unauthenticated request learns nothing about bodies.
    del caller
    if not is_json(body.media_type):
        raise UnsupportedMediaType(
            f"Content-Type {body.content_type or '(none)'!r} is not supported; "
            "send application/json."
        )
    if not body.data.strip():
        raise ValidationError(
            [Problem("invalid_json", None, "The request body is empty.")],
            "The request body is empty.",
        )
    return body.data


JsonBody = Annotated[bytes, Depends(_json_body)]


def json_data(body: Body) -> bytes:
    """An optional body's data, which must then be JSON (415 otherwise)."""
    if not is_json(body.media_type):
        raise UnsupportedMediaType(
            f"Content-Type {body.content_type or '(none)'!r} is not supported; "
            "send application/json."
        )
    return body.data


def instant_param(text: str | None, name: str) -> datetime | None:
    """A query parameter's RFC 3339 date-time within the accepted range (one without an
    offset is UTC); a 400 naming ``name`` otherwise."""
    if text is None:
        return None
    try:
        try:
            value = parse_instant(text)
        except InstantError as exc:
            if exc.code != "offset_required":
                raise
            value = parse_instant(text + "Z")
    except InstantError as exc:
        raise ValidationError([Problem(exc.code, name, str(exc))], str(exc)) from None
    beyond = out_of_range(value)
    if beyond is not None:
        message = f"{text!r} is out of range: {beyond}"
        raise ValidationError([Problem("out_of_range", name, message)], message)
    return value.astimezone(UTC)
