"""The served OpenAPI document: FastAPI's, brought in line with what the app really does.

The endpoints read their own bodies (for our error codes: 415 for a wrong type, 400 with one
detail per problem), so request bodies are declared here rather than inferred. Every /cloud
operation also gets the k6 spec's ``stackId`` header parameter and the error responses any of
them can give; FastAPI's 422 is removed, since this API answers 400 instead. Every operation
the rate limiter covers (all but ``rate_limits.EXEMPT``) documents its 429, with the
``Retry-After`` header, in the body its dialect answers errors with.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from tickwork.api.rate_limits import EXEMPT
from tickwork.dialects.k6 import (
    BulkActivateRequest,
    BulkDeactivateRequest,
    CreateScheduleRequest,
    DeactivateScheduleRequest,
    ErrorResponseApiModel,
)
from tickwork.dialects.k6_resources import (
    CreateLoadTestApiModel,
    CreateLoadTestJsonModel,
    CreateProjectApiModel,
    PatchLoadTestApiModel,
    PatchProjectApiModel,
)
from tickwork.dialects.k6_runs import PatchTestRunApiModel
from tickwork.dialects.kragle import CreateKragleJob, CreateKragleSchedule, UpdateKragleSchedule
from tickwork.dialects.reports import (
    CreateReportScheduleRequest,
    DeleteReportSchedulesRequest,
    UpdateReportScheduleRequest,
)
from tickwork.dialects.windows import BlackoutWindowRequest

REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    CreateScheduleRequest,
    DeactivateScheduleRequest,
    BulkDeactivateRequest,
    BulkActivateRequest,
    CreateProjectApiModel,
    PatchProjectApiModel,
    CreateLoadTestApiModel,
    CreateLoadTestJsonModel,
    PatchLoadTestApiModel,
    PatchTestRunApiModel,
    CreateKragleSchedule,
    UpdateKragleSchedule,
    CreateKragleJob,
    CreateReportScheduleRequest,
    UpdateReportScheduleRequest,
    DeleteReportSchedulesRequest,
    BlackoutWindowRequest,
)

STACK_ID: dict[str, Any] = {
    "in": "header",
    "name": "X-Stack-Id",
    "description": "Numeric ID of the Grafana stack representing the request scope. The "
    "token must be valid for it.",
    "schema": {"type": "integer"},
    "required": True,
}

_ERRORS = {
    "400": "Request validation error (a parameter, the body, or the X-Stack-Id header).",
    "401": "Invalid token or authentication scheme.",
    "403": "The user does not have permission to perform this action.",
    "404": "Resource not found.",
    "406": "The current script type can't satisfy the request Accept header format.",
    "409": "The resource's state forbids the request.",
    "413": "The request body is over the size limit.",
    "415": "The request body is not of a supported content type.",
    "429": "Over a rate limit (per token, stack or client address, when the deployment sets "
    "one; code rate_limited): Retry-After says when to retry.",
    "500": "Unexpected error.",
    "503": "The store (Redis) is unavailable.",
}

_ALWAYS = ("400", "401", "403", "500", "503")
_WITH_BODY = ("413", "415")

RETRY_AFTER: dict[str, Any] = {
    "Retry-After": {
        "description": "Seconds to wait before the limit lets a request through (whole "
        "seconds, rounded up, at least 1).",
        "schema": {"type": "integer", "minimum": 1},
    }
}
"""The header of every 429 (``responses=`` entries may carry it as ``headers``)."""


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for a route's resource-specific errors (404, 406, 409)."""
    return {
        status: {"model": ErrorResponseApiModel, "description": _ERRORS[str(status)]}
        for status in statuses
    }


def json_request(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra=`` for an operation whose body is the JSON ``model``."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref(model.__name__)}},
        }
    }


def inline_json_request(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra=`` for a body of ``model``, its schema inline rather than a component
    (for models that nest no other model, so the document needs no component for them)."""
    schema = model.model_json_schema(mode="validation")
    assert "$defs" not in schema, f"{model.__name__} nests a model: declare it as a component"
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref(ErrorResponseApiModel.__name__)}},
    }


def _rate_limited(responses: dict[str, Any]) -> dict[str, Any]:
    """The 429 of an operation, its body the one its other errors have (the report API's
    envelope there, the k6 error body elsewhere)."""
    answer = _error_response(_ERRORS["429"])
    bad_request = responses.get("400", {}).get("content")
    if bad_request is not None:
        answer["content"] = bad_request
    return answer | {"headers": RETRY_AFTER}


def build(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    models: list[type[BaseModel]] = [*REQUEST_MODELS, ErrorResponseApiModel]
    _, extra = models_json_schema(
        [(model, "validation") for model in models],
        ref_template="#/components/schemas/{model}",
    )
    for name, schema in extra.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    components.setdefault("parameters", {})["stackId"] = STACK_ID
    for path, item in document.get("paths", {}).items():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if path not in EXEMPT:
                responses.setdefault("429", _rate_limited(responses))
            if not path.startswith("/cloud/"):
                continue
            operation["parameters"] = [
                {"$ref": "#/components/parameters/stackId"},
                *operation.get("parameters", []),
            ]
            statuses = _ALWAYS + (_WITH_BODY if "requestBody" in operation else ())
            for status in statuses:
                responses.setdefault(status, _error_response(_ERRORS[status]))
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document
