"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.datastructures import State

from mediaingest.exceptions import StorageError

router = APIRouter(tags=["operations"])
metrics_router = APIRouter(tags=["operations"])  # on PORT unless METRICS_PORT gives it a port of its own


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers; load balancers route traffic only when 200.

    Storage is checked and reported but does not decide: a bucket blip would take every replica out of
    the Service at once, and then nothing answers, not even the requests that need no storage (reads,
    status, upload URLs signed locally). Requests that do need it answer 502 on their own.
    """
    state = request.app.state
    checks = {"database": _database_check(state), "storage": _storage_check(state)}
    ready = checks["database"] == "ok"
    status = "not_ready" if not ready else "ready" if checks["storage"] == "ok" else "degraded"
    return JSONResponse({"status": status, "checks": checks}, status_code=200 if ready else 503)


def _database_check(state: State) -> str:
    try:
        with state.read_session_factory() as session:
            session.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        return f"unavailable: {type(exc).__name__}"
    return "ok"


def _storage_check(state: State) -> str:
    settings = state.settings
    try:
        state.storage.check_ready([settings.bucket_incoming, settings.bucket_processed, settings.bucket_proxies])
    except StorageError as exc:
        return f"unavailable: {exc.message}"
    return "ok"


@metrics_router.get("/metrics", include_in_schema=False)
def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
