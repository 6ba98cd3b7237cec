"""The audit trail (tickwork extensions): who changed a schedule or a load test, when, from
where, and what changed; newest first, paged like the other lists. A deleted resource's
entries stay readable (by id, and in the stack's feed) until retention removes them.

The Kragle and report routes answer their resources' trails through ``trail`` and
``entry_model``; the stack's feed here holds every kind."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from tickwork.api.deps import Caller, Context, ResourceId
from tickwork.api.openapi import error_responses
from tickwork.api.pagination import Paging, page_response
from tickwork.dialects.audit import KIND_FILTER, AuditChange, AuditEntryModel, AuditListResponse
from tickwork.errors import NotFound
from tickwork.store import Store
from tickwork.store.audit import AuditEntry

router = APIRouter(prefix="/cloud/v6", tags=["audit"])


def entry_model(entry: AuditEntry) -> AuditEntryModel:
    body = entry.as_json()
    return AuditEntryModel(
        id=body["id"],
        at=body["at"],
        kind=entry.kind,
        resource_id=entry.resource_id,
        action=entry.action,
        who=entry.who,
        via=entry.via,
        changes=[AuditChange(field=c.field, old=c.old, new=c.new) for c in entry.changes],
        note=entry.note,
        extra=dict(entry.extra) or None,
    )


def trail(
    store: Store,
    stack: int,
    kind: str,
    resource_id: int | str,
    *,
    exists: bool,
    skip: int,
    top: int,
) -> tuple[list[AuditEntry], int]:
    """One page of a resource's entries, newest first, and how many there are; NotFound
    unless the resource ``exists`` in ``stack`` or is a deleted one of ``stack`` (known by its
    entries). Every dialect's audit routes answer through this."""
    entries, total = store.audit.of(kind, resource_id, skip=skip, top=top)
    if not exists:
        # A deleted resource is known by its entries; another stack's is not known at all.
        # (A page past the end holds none: the newest entry names the stack.)
        newest = entries if entries else store.audit.of(kind, resource_id, skip=0, top=1)[0]
        if not newest or newest[0].stack != stack:
            raise NotFound(f"No audit trail for {kind} {resource_id}.")
    return entries, total


@router.get(
    "/schedules/{id}/audit",
    operation_id="schedules_audit_list",
    summary="A schedule's audit trail, newest first (tickwork extension).",
    response_model=AuditListResponse,
    responses=error_responses(404),
)
def schedule_audit(
    id: ResourceId, caller: Caller, context: Context, paging: Paging, request: Request
) -> Response:
    try:
        context.store.schedules.get(caller.stack, id)
        exists = True
    except NotFound:
        exists = False
    entries, total = trail(
        context.store,
        caller.stack,
        "schedule",
        id,
        exists=exists,
        skip=paging.skip,
        top=paging.top,
    )
    return page_response(
        AuditListResponse,
        [entry_model(entry) for entry in entries],
        total,
        query=paging,
        request=request,
        public_url=context.public_url,
    )


@router.get(
    "/load_tests/{id}/audit",
    operation_id="load_tests_audit_list",
    summary="A load test's audit trail, newest first (tickwork extension).",
    response_model=AuditListResponse,
    responses=error_responses(404),
)
def load_test_audit(
    id: ResourceId, caller: Caller, context: Context, paging: Paging, request: Request
) -> Response:
    try:
        context.store.load_tests.get(caller.stack, id)
        exists = True
    except NotFound:
        exists = False
    entries, total = trail(
        context.store,
        caller.stack,
        "load_test",
        id,
        exists=exists,
        skip=paging.skip,
        top=paging.top,
    )
    return page_response(
        AuditListResponse,
        [entry_model(entry) for entry in entries],
        total,
        query=paging,
        request=request,
        public_url=context.public_url,
    )


KindFilter = Annotated[
    str | None,
    Query(
        description="Only entries of this kind: " + ", ".join(KIND_FILTER) + ".",
        pattern="^(" + "|".join(KIND_FILTER) + ")$",
    ),
]


@router.get(
    "/audit",
    operation_id="audit_list",
    summary="The stack's audit trail, newest first (tickwork extension).",
    response_model=AuditListResponse,
)
def stack_audit(
    caller: Caller, context: Context, paging: Paging, request: Request, kind: KindFilter = None
) -> Response:
    kinds = (kind,) if kind else KIND_FILTER
    entries, total = context.store.audit.feed(
        caller.stack, kinds=kinds, skip=paging.skip, top=paging.top
    )
    return page_response(
        AuditListResponse,
        [entry_model(entry) for entry in entries],
        total,
        query=paging,
        request=request,
        public_url=context.public_url,
        extra={"kind": kind} if kind else None,
    )
