"""Projects: enough of the k6 v6 projects API to hold load tests."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from tickwork.api.deps import Acting, Caller, Context, JsonBody, ResourceId
from tickwork.api.openapi import error_responses, json_request
from tickwork.api.pagination import Paging, page_response
from tickwork.api.render import json_response
from tickwork.dialects.k6_resources import (
    CreateProjectApiModel,
    PatchProjectApiModel,
    ProjectApiModel,
    ProjectListResponse,
    parse_create_project,
    parse_patch_project,
    project_model,
)

router = APIRouter(prefix="/cloud/v6", tags=["projects"])

NameFilter = Annotated[
    str | None,
    Query(max_length=255, description="Filter results by project name (exact match)."),
]


@router.get(
    "/projects",
    operation_id="projects_list",
    summary="List all projects.",
    response_model=ProjectListResponse,
)
def list_projects(
    caller: Caller, context: Context, paging: Paging, request: Request, name: NameFilter = None
) -> Response:
    projects, total = context.store.projects.page(
        caller.stack, skip=paging.skip, top=paging.top, name=name
    )
    return page_response(
        ProjectListResponse,
        [project_model(project) for project in projects],
        total,
        query=paging,
        request=request,
        public_url=context.public_url,
        extra={"name": name} if name is not None else None,
    )


@router.post(
    "/projects",
    operation_id="projects_create",
    summary="Create a project.",
    status_code=201,
    response_model=ProjectApiModel,
    responses=error_responses(409),
    openapi_extra=json_request(CreateProjectApiModel),
)
def create_project(caller: Caller, context: Context, body: JsonBody) -> Response:
    request = parse_create_project(body)
    project = context.store.projects.create(caller.stack, name=request.name, now=context.clock())
    return json_response(project_model(project), 201)


@router.get(
    "/projects/{id}",
    operation_id="projects_retrieve",
    summary="Get a project by ID.",
    response_model=ProjectApiModel,
    responses=error_responses(404),
)
def get_project(id: ResourceId, caller: Caller, context: Context) -> Response:
    return json_response(project_model(context.store.projects.get(caller.stack, id)))


@router.patch(
    "/projects/{id}",
    operation_id="projects_partial_update",
    summary="Update a project.",
    status_code=204,
    response_class=Response,
    responses=error_responses(404, 409),
    openapi_extra=json_request(PatchProjectApiModel),
)
def update_project(id: ResourceId, caller: Caller, context: Context, body: JsonBody) -> Response:
    context.store.projects.get(caller.stack, id)
    request = parse_patch_project(body)
    context.store.projects.rename(caller.stack, id, name=request.name, now=context.clock())
    return Response(status_code=204)


@router.delete(
    "/projects/{id}",
    operation_id="projects_destroy",
    summary="Delete a project.",
    description="Deletes the project's load tests and their schedules with it. 409 while one "
    "of its load tests has a test run that has not finished.",
    status_code=204,
    response_class=Response,
    responses=error_responses(404, 409),
)
def delete_project(id: ResourceId, caller: Caller, actor: Acting, context: Context) -> Response:
    context.store.projects.delete(caller.stack, id, now=context.clock(), actor=actor)
    return Response(status_code=204)
