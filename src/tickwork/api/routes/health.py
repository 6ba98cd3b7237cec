"""Process health: /healthz (the process answers), /readyz (Redis answers), /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from tickwork.api.deps import Context
from tickwork.api.errors_http import error_response
from tickwork.dialects.k6 import ErrorResponseApiModel
from tickwork.errors import StoreUnavailable

router = APIRouter(tags=["health"])


class HealthStatus(BaseModel):
    status: str


@router.get("/healthz", response_model=HealthStatus, summary="The process is up.")
async def healthz() -> HealthStatus:
    return HealthStatus(status="ok")


@router.get(
    "/readyz",
    response_model=HealthStatus,
    summary="Redis answers and takes writes: the API can serve requests.",
    responses={
        503: {
            "model": ErrorResponseApiModel,
            "description": "Redis does not answer, refuses writes for memory, or may evict keys.",
        }
    },
)
def readyz(context: Context) -> Response:
    problem = context.store.readiness_problem()
    if problem is not None:
        return error_response(503, StoreUnavailable.code, problem)
    return Response(HealthStatus(status="ready").model_dump_json(), media_type="application/json")


@router.get(
    "/metrics",
    summary="Prometheus metrics.",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}
    },
)
def metrics(request: Request) -> Response:
    body = generate_latest(request.app.state.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
