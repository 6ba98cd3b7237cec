"""The one place exceptions become HTTP responses, every one an ErrorResponseApiModel.

Codes are stable and documented here:

    400 validation_error        the request (body, query, path, X-Stack-Id) is not valid;
                                ``details`` has one entry per problem, with a ``target``
        invalid_json            the body is not JSON
    401 unauthenticated         missing, malformed or unknown bearer token
    403 forbidden               the token may not act in the X-Stack-Id stack
    404 not_found               no such route, or no such resource in the caller's stack
    405 method_not_allowed      the route exists, the method does not
    406 not_acceptable          the Accept header excludes the only type available
    409 conflict                the resource's state forbids the request
        quota_exceeded          a quota of the stack is reached (or a script is over its
                                size quota): ``target`` names the quota, the message its
                                value; nothing was created. 409 as the k6 API answers its own
                                count limits (label keys, saved test runs): the stack's
                                state, not the request's form, refuses it
    413 payload_too_large       the body is over the configured limit
    415 unsupported_media_type  the body is not of the type the operation takes
    429 rate_limited            over a rate limit (per token, stack or client address);
                                Retry-After says when to retry
    499 client_disconnected     the client went away while sending its body (nobody reads
                                this answer; it keeps such requests out of the 500s and logs)
    500 internal_error          a bug: logged with its traceback, never caused by input alone
    503 store_unavailable       Redis does not answer

``error_answer`` decides an answer's status, headers and parts (code, message, details) once,
for every dialect; the k6 handlers here render the parts with ``k6.render_error``, the report
routes with ``reports.error_envelope``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import compile_path

from tickwork.dialects.k6 import error_body, render_error
from tickwork.dialects.wire import ErrorParts
from tickwork.errors import (
    Conflict,
    Forbidden,
    NotFound,
    Problem,
    QuotaExceeded,
    StoreOutOfMemory,
    StoreUnavailable,
    TickworkError,
    Unauthenticated,
    ValidationError,
)

log = logging.getLogger("tickwork.api")


class PayloadTooLarge(TickworkError):
    code = "payload_too_large"


class UnsupportedMediaType(TickworkError):
    code = "unsupported_media_type"


class NotAcceptable(TickworkError):
    code = "not_acceptable"


_STATUS: tuple[tuple[type[TickworkError], int], ...] = (
    (ValidationError, 400),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (NotAcceptable, 406),
    (Conflict, 409),
    (PayloadTooLarge, 413),
    (UnsupportedMediaType, 415),
    (StoreUnavailable, 503),
)

_HTTP_CODES = {
    400: "validation_error",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    503: "store_unavailable",
}


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    """What answers an exception, before a dialect shapes its body."""

    status: int
    parts: ErrorParts
    headers: dict[str, str] = field(default_factory=dict)


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    problems: list[Problem] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, problems=problems), status, headers=headers)


def k6_response(answer: ErrorAnswer) -> JSONResponse:
    return JSONResponse(render_error(answer.parts), answer.status, headers=answer.headers)


def _problem_code(pydantic_type: str) -> str:
    return "invalid_json" if pydantic_type.startswith("json_") else "invalid_value"


def error_answer(request: Request, exc: Exception) -> ErrorAnswer:
    """The status, headers and parts of the answer to ``exc``, whichever dialect renders it.
    Anything but a TickworkError of a known kind, a request the framework refused and a
    client gone is a bug: logged with its traceback, answered 500."""
    if isinstance(exc, RequestValidationError):
        return _request_validation(exc)
    if isinstance(exc, StarletteHTTPException):
        return _http_exception(request, exc)
    if isinstance(exc, ClientDisconnect):
        return ErrorAnswer(
            499, ErrorParts("client_disconnected", "The client closed the connection.")
        )
    status = next((status for kind, status in _STATUS if isinstance(exc, kind)), None)
    if isinstance(exc, TickworkError) and status is not None:
        return _tickwork_error(exc, status)
    return _unexpected(exc)


def _unexpected(exc: Exception) -> ErrorAnswer:
    log.error("request_failed", exc_info=exc)
    return ErrorAnswer(500, ErrorParts("internal_error", "Unexpected error."))


def _tickwork_error(exc: TickworkError, status: int) -> ErrorAnswer:
    if isinstance(exc, ValidationError):
        # a body that is not JSON at all (no target) gets its own code; a field that holds
        # bad JSON text is an ordinary validation problem
        invalid_json = bool(exc.problems) and all(
            p.code == "invalid_json" and p.target is None for p in exc.problems
        )
        code = "invalid_json" if invalid_json else exc.code
        return ErrorAnswer(400, ErrorParts(code, exc.message, tuple(exc.problems)))
    if status == 503:
        log.warning("store_unavailable", extra={"error": str(exc), "code": exc.code})
        # The driver's own text may name hosts; a full store's is ours and says what to do.
        message = (
            f"{exc}; retry later."
            if isinstance(exc, StoreOutOfMemory)
            else "The store is unavailable; retry later."
        )
        return ErrorAnswer(503, ErrorParts(exc.code, message), {"Retry-After": "5"})
    if isinstance(exc, QuotaExceeded):
        return ErrorAnswer(status, ErrorParts(exc.code, str(exc), target=exc.quota))
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    return ErrorAnswer(status, ErrorParts(exc.code, str(exc)), headers)


def _request_validation(exc: RequestValidationError) -> ErrorAnswer:
    problems = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ())]
        # ("query", "$top") -> "$top": the parameter's own name is the target.
        target = ".".join(location[1:] if len(location) > 1 else location) or None
        # pydantic prefixes a validator's own message with "Value error, "
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(Problem(_problem_code(str(error.get("type", ""))), target, message))
    parts = ErrorParts("validation_error", "The request is not valid.", tuple(problems))
    return ErrorAnswer(400, parts)


def _http_exception(request: Request, exc: StarletteHTTPException) -> ErrorAnswer:
    status = exc.status_code
    code = _HTTP_CODES.get(status, f"http_{status}")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    message = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    if message is None:
        message = {404: "No such route.", 405: "Method not allowed on this route."}.get(
            status, phrase
        )
    headers = dict(exc.headers or {})
    if status == 405:
        headers["Allow"] = ", ".join(allowed_methods(request)) or headers.get("Allow", "")
    return ErrorAnswer(status, ErrorParts(code, message), headers)


async def on_tickwork_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TickworkError)
    return k6_response(error_answer(request, exc))


async def on_request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return k6_response(error_answer(request, exc))


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app serves at the request's path.

    Starlette's 405 names the methods of the first route whose path matched, but an
    operation is a route of its own: GET and DELETE /schedules/{id} are two."""
    table: list[tuple[re.Pattern[str], frozenset[str]]] | None = getattr(
        request.app.state, "route_methods", None
    )
    if table is None:
        table = [
            (compile_path(route.path)[0], frozenset(route.methods or ()))
            for route in iter_route_contexts(request.app.routes)
            if route.path
        ]
        request.app.state.route_methods = table
    path = request.url.path
    found = set().union(*(methods for pattern, methods in table if pattern.match(path)))
    return sorted(found)


async def on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    answer = error_answer(request, exc)
    if answer.status != 405:
        return k6_response(answer)
    # No route ran: the path's dialect shapes the body (the report API's envelope).
    reshape = getattr(request.app.state, "reshape_error", None)
    if reshape is None:
        return k6_response(answer)
    body = reshape(request.method, request.url.path, answer.status, answer.parts)
    return JSONResponse(body, answer.status, headers=answer.headers)


async def on_client_disconnect(request: Request, exc: Exception) -> JSONResponse:
    return k6_response(error_answer(request, exc))


async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    # whatever it is: an exception that reached this handler escaped the others
    return k6_response(_unexpected(exc))


def install(app: FastAPI) -> None:
    app.add_exception_handler(TickworkError, on_tickwork_error)
    app.add_exception_handler(RequestValidationError, on_request_validation)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(ClientDisconnect, on_client_disconnect)
    # Registered for Exception, Starlette hands it to ServerErrorMiddleware: the client gets
    # the error body, and the exception is re-raised for the server (and tests) to see.
    app.add_exception_handler(Exception, on_unexpected)
