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
    413 payload_too_large       the body is over the configured limit
    415 unsupported_media_type  the body is not of the type the operation takes
    499 client_disconnected     the client went away while sending its body (nobody reads
                                this answer; it keeps such requests out of the 500s and logs)
    500 internal_error          a bug: logged with its traceback, never caused by input alone
    503 store_unavailable       Redis does not answer
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import compile_path

from tickwork.dialects.k6 import error_body
from tickwork.errors import (
    Conflict,
    Forbidden,
    NotFound,
    Problem,
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


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    problems: list[Problem] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, problems=problems), status, headers=headers)


def _problem_code(pydantic_type: str) -> str:
    return "invalid_json" if pydantic_type.startswith("json_") else "invalid_value"


async def on_tickwork_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TickworkError)
    status = next((status for kind, status in _STATUS if isinstance(exc, kind)), None)
    if status is None:
        return await on_unexpected(_, exc)
    if isinstance(exc, ValidationError):
        # a body that is not JSON at all (no target) gets its own code; a field that holds
        # bad JSON text is an ordinary validation problem
        invalid_json = bool(exc.problems) and all(
            p.code == "invalid_json" and p.target is None for p in exc.problems
        )
        code = "invalid_json" if invalid_json else exc.code
        return error_response(400, code, exc.message, problems=exc.problems)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 503:
        log.warning("store_unavailable", extra={"error": str(exc), "code": exc.code})
        # The driver's own text may name hosts; a full store's is ours and says what to do.
        message = (
            f"{exc}; retry later."
            if isinstance(exc, StoreOutOfMemory)
            else "The store is unavailable; retry later."
        )
        return error_response(503, exc.code, message, headers={"Retry-After": "5"})
    return error_response(status, exc.code, str(exc), headers=headers)


async def on_request_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ())]
        # ("query", "$top") -> "$top": the parameter's own name is the target.
        target = ".".join(location[1:] if len(location) > 1 else location) or None
        # pydantic prefixes a validator's own message with "Value error, "
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(Problem(_problem_code(str(error.get("type", ""))), target, message))
    return error_response(400, "validation_error", "The request is not valid.", problems=problems)


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
    if status != 405:
        return error_response(status, code, message, headers=headers)
    headers["Allow"] = ", ".join(allowed_methods(request)) or headers.get("Allow", "")
    # No route ran: the path's dialect shapes the body (the report API's envelope).
    reshape = getattr(request.app.state, "reshape_error", None)
    body = error_body(code, message)
    if reshape is not None:
        body = reshape(request.method, request.url.path, status, body)
    return JSONResponse(body, status, headers=headers)


async def on_client_disconnect(_: Request, exc: Exception) -> JSONResponse:
    return error_response(499, "client_disconnected", "The client closed the connection.")


async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.error("request_failed", exc_info=exc)
    return error_response(500, "internal_error", "Unexpected error.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(TickworkError, on_tickwork_error)
    app.add_exception_handler(RequestValidationError, on_request_validation)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(ClientDisconnect, on_client_disconnect)
    # Registered for Exception, Starlette hands it to ServerErrorMiddleware: the client gets
    # the error body, and the exception is re-raised for the server (and tests) to see.
    app.add_exception_handler(Exception, on_unexpected)
