"""Load tests and their scripts: what a schedule runs."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from tickwork.api.deps import Acting, Caller, Context, JsonBody, RawBody, ResourceId, is_json
from tickwork.api.errors_http import NotAcceptable, UnsupportedMediaType
from tickwork.api.forms import parse_form_data, parse_urlencoded
from tickwork.api.openapi import error_responses, json_request
from tickwork.api.pagination import Paging, page_response
from tickwork.api.render import json_response
from tickwork.dialects.k6_resources import (
    CreateLoadTestApiModel,
    CreateLoadTestJsonModel,
    LoadTestApiModel,
    LoadTestListResponse,
    NewLoadTest,
    PatchLoadTestApiModel,
    load_test_model,
    parse_create_load_test_form,
    parse_create_load_test_json,
    parse_patch_load_test,
)
from tickwork.errors import NotFound, Problem, ValidationError
from tickwork.store import LoadTestRecord
from tickwork.store.load_tests import DEFAULT_RUNNER
from tickwork.store.quotas import Limits

router = APIRouter(prefix="/cloud/v6", tags=["load_tests"])

NameFilter = Annotated[
    str | None, Query(max_length=300, description="Filter results by load test name (exact match).")
]

JAVASCRIPT = "text/javascript"
TAR = "application/x-tar"

_CREATE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"$ref": f"#/components/schemas/{CreateLoadTestApiModel.__name__}"}
            },
            "application/x-www-form-urlencoded": {
                "schema": {"$ref": f"#/components/schemas/{CreateLoadTestApiModel.__name__}"}
            },
            "application/json": {
                "schema": {"$ref": f"#/components/schemas/{CreateLoadTestJsonModel.__name__}"}
            },
        },
    }
}

_SCRIPT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.get(
    "/load_tests",
    operation_id="load_tests_list",
    summary="List all tests.",
    response_model=LoadTestListResponse,
)
def list_load_tests(
    caller: Caller, context: Context, paging: Paging, request: Request, name: NameFilter = None
) -> Response:
    tests, total = context.store.load_tests.page(
        caller.stack, skip=paging.skip, top=paging.top, name=name
    )
    return _page(
        tests, total, paging=paging, request=request, public_url=context.public_url, name=name
    )


@router.get(
    "/projects/{id}/load_tests",
    operation_id="projects_load_tests_retrieve",
    summary="List load tests in a project.",
    response_model=LoadTestListResponse,
    responses=error_responses(404),
)
def list_project_load_tests(
    *,
    id: ResourceId,
    caller: Caller,
    context: Context,
    paging: Paging,
    request: Request,
    name: NameFilter = None,
) -> Response:
    context.store.projects.get(caller.stack, id)
    tests, total = context.store.load_tests.page(
        caller.stack, skip=paging.skip, top=paging.top, project_id=id, name=name
    )
    return _page(
        tests, total, paging=paging, request=request, public_url=context.public_url, name=name
    )


def _page(
    tests: list[LoadTestRecord],
    total: int,
    *,
    paging: Paging,
    request: Request,
    public_url: str | None,
    name: str | None,
) -> Response:
    return page_response(
        LoadTestListResponse,
        [load_test_model(test) for test in tests],
        total,
        query=paging,
        request=request,
        public_url=public_url,
        extra={"name": name} if name is not None else None,
    )


@router.post(
    "/projects/{id}/load_tests",
    operation_id="projects_load_tests_create",
    summary="Create a new test.",
    description="The k6 form: multipart/form-data with `name`, `script` (text or a k6 .tar "
    "archive) and optionally `k6_version` and `runner` (tickwork extension, JSON text). "
    "tickwork also takes the same fields as a JSON document. Past the stack's quota of load "
    "tests, or with a script over its script size quota: 409 quota_exceeded.",
    status_code=201,
    response_model=LoadTestApiModel,
    responses=error_responses(404, 409),
    openapi_extra=_CREATE_BODY,
)
def create_load_test(
    id: ResourceId,
    caller: Caller,
    actor: Acting,
    body: RawBody,
    context: Context,
    *,
    http: Request,
) -> Response:
    limits: Limits = http.app.state.limits
    context.store.projects.get(caller.stack, id)
    new: NewLoadTest
    if body.media_type == "multipart/form-data":
        new = parse_create_load_test_form(parse_form_data(body.content_type, body.data))
    elif body.media_type == "application/x-www-form-urlencoded":
        new = parse_create_load_test_form(parse_urlencoded(body.data))
    elif is_json(body.media_type):
        new = parse_create_load_test_json(body.data)
    else:
        raise UnsupportedMediaType(
            f"Content-Type {body.content_type or '(none)'!r} is not supported; send "
            "multipart/form-data, application/x-www-form-urlencoded or application/json."
        )
    test = context.store.load_tests.create(
        caller.stack,
        project_id=id,
        name=new.name,
        script=new.script,
        now=context.clock(),
        k6_version=new.k6_version,
        runner=new.runner,
        actor=actor,
        quotas=limits.of(caller.stack),
    )
    return json_response(load_test_model(test), 201)


@router.get(
    "/load_tests/{id}",
    operation_id="load_tests_retrieve",
    summary="Get a load test by ID.",
    response_model=LoadTestApiModel,
    responses=error_responses(404),
)
def get_load_test(id: ResourceId, caller: Caller, context: Context) -> Response:
    return json_response(load_test_model(context.store.load_tests.get(caller.stack, id)))


@router.patch(
    "/load_tests/{id}",
    operation_id="load_tests_partial_update",
    summary="Update a load test.",
    status_code=204,
    response_class=Response,
    responses=error_responses(404, 409),
    openapi_extra=json_request(PatchLoadTestApiModel),
)
def update_load_test(
    id: ResourceId, caller: Caller, actor: Acting, context: Context, body: JsonBody
) -> Response:
    context.store.load_tests.get(caller.stack, id)
    patch = parse_patch_load_test(body)
    now = context.clock()

    def change(test: LoadTestRecord) -> LoadTestRecord:
        given = patch.given
        return replace(
            test,
            name=patch.name if "name" in given and patch.name is not None else test.name,
            baseline_test_run_id=patch.baseline_test_run_id
            if "baseline_test_run_id" in given
            else test.baseline_test_run_id,
            k6_version=patch.k6_version if "k6_version" in given else test.k6_version,
            runner=(patch.runner or dict(DEFAULT_RUNNER)) if "runner" in given else test.runner,
            updated=now,
        )

    context.store.load_tests.update(caller.stack, id, change, actor=actor)
    return Response(status_code=204)


@router.delete(
    "/load_tests/{id}",
    operation_id="load_tests_destroy",
    summary="Delete a load test.",
    description="Deletes its script and its schedule with it (its test runs stay readable). "
    "409 while its latest test run has not finished.",
    status_code=204,
    response_class=Response,
    responses=error_responses(404, 409),
)
def delete_load_test(id: ResourceId, caller: Caller, actor: Acting, context: Context) -> Response:
    context.store.load_tests.delete(caller.stack, id, now=context.clock(), actor=actor)
    return Response(status_code=204)


@router.get(
    "/load_tests/{id}/script",
    operation_id="load_tests_script_retrieve",
    summary="Download the test script.",
    description="The script as stored (text/javascript, or application/x-tar for a k6 "
    "archive), whatever else the Accept header names: 406 only when it names nothing but the "
    "other script type, or excludes this one with q=0.",
    response_class=Response,
    responses={
        200: {
            "description": "OK.",
            "content": {
                JAVASCRIPT: {"schema": {"type": "string"}},
                TAR: {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **error_responses(404, 406),
    },
)
def get_script(id: ResourceId, caller: Caller, context: Context, request: Request) -> Response:
    script = context.store.load_tests.script(caller.stack, id)
    if script is None:
        raise NotFound(f"Load test {id} has no script.")
    media_type = TAR if _is_tar(script) else JAVASCRIPT
    if not _serves(", ".join(request.headers.getlist("accept")), media_type):
        raise NotAcceptable(f"The script is {media_type}, which the Accept header excludes.")
    return Response(script, media_type=media_type)


@router.put(
    "/load_tests/{id}/script",
    operation_id="load_tests_script_update",
    summary="Upload the script for a test.",
    description="Any payload that is not a .tar archive is taken as a JavaScript file. A "
    "script over the stack's script size quota: 409 quota_exceeded, the old one stays.",
    status_code=204,
    response_class=Response,
    responses=error_responses(404, 409),
    openapi_extra=_SCRIPT_BODY,
)
def put_script(
    id: ResourceId,
    caller: Caller,
    actor: Acting,
    body: RawBody,
    context: Context,
    *,
    http: Request,
) -> Response:
    limits: Limits = http.app.state.limits
    context.store.load_tests.get(caller.stack, id)
    if not body.data:
        raise ValidationError(
            [Problem("required", "script", "The script is empty.")], "The script is empty."
        )
    context.store.load_tests.set_script(
        caller.stack,
        id,
        body.data,
        now=context.clock(),
        actor=actor,
        quotas=limits.of(caller.stack),
    )
    return Response(status_code=204)


def _is_tar(data: bytes) -> bool:
    return data[257:262] == b"ustar"  # POSIX and GNU tar headers carry this magic


def _serves(accept: str | None, media_type: str) -> bool:
    """Whether a script of ``media_type`` answers a request with this Accept header.

    Served unless the header excludes it (the most specific range that matches it has q=0)
    or names only the other kind of script. Grafana's Go client, and so the Terraform
    provider, sends ``Accept: application/json`` (its generated header choice collapses
    "text/javascript, application/x-tar, application/json" to that), and the k6 service
    answers it with the script: a 406 would fail every Terraform read of a load test."""
    if not accept or not accept.strip():
        return True
    ranges = [_media_range(item) for item in accept.split(",") if item.strip()]
    own = _SCRIPT_KINDS[media_type]
    major = media_type.split("/", maxsplit=1)[0]
    specificity = {"*/*": 0, f"{major}/*": 1} | dict.fromkeys(own, 2)
    matching = [(specificity[kind], q) for kind, q in ranges if kind in specificity]
    if matching:
        return max(matching)[1] > 0  # the most specific range decides (RFC 9110 12.5.1)
    named = {kind for kind, q in ranges if q > 0}
    return not named or not named <= _ALL_SCRIPT_TYPES - own


_SCRIPT_KINDS = {
    JAVASCRIPT: frozenset({JAVASCRIPT, "application/javascript"}),
    TAR: frozenset({TAR}),
}
_ALL_SCRIPT_TYPES = frozenset().union(*_SCRIPT_KINDS.values())


def _media_range(item: str) -> tuple[str, float]:
    """(type, q) of one Accept element; a q that is no number from 0 to 1 counts as 1."""
    kind, *params = (part.strip().lower() for part in item.split(";"))
    q = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                q = 1.0
            if not 0 <= q <= 1:  # nan too
                q = 1.0
    return kind, q
