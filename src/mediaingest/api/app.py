"""The application factory. Everything with side effects (engine, storage client, Kubernetes client)
is built here from the settings passed in, never at import, so tests and processes choose their own."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from mediaingest import catalog, metrics
from mediaingest.api.account import router as account_router
from mediaingest.api.docs import mount_docs
from mediaingest.api.errors import install_error_handlers
from mediaingest.api.health import metrics_router
from mediaingest.api.health import router as health_router
from mediaingest.api.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from mediaingest.assets.endpoints import router as assets_router
from mediaingest.assets.events import router as asset_events_router
from mediaingest.assets.playback import router as playback_router
from mediaingest.assets.service import AssetService
from mediaingest.assets.timeline import TimelineService, asset_lives
from mediaingest.assets.timeline_endpoints import router as timeline_router
from mediaingest.config import Settings, StorageBackendName
from mediaingest.db import create_db_engine, create_session_factory
from mediaingest.dispatch import build_dispatcher
from mediaingest.logging import configure_logging
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.registry import load_stage_modules
from mediaingest.stage_reports.endpoints import RECORD_PATH as STAGE_RECORD_PATH
from mediaingest.stage_reports.endpoints import router as stage_reports_router
from mediaingest.storage import build_storage
from mediaingest.users.auth import Authenticator
from mediaingest.web import mount_web
from mediaingest.webhooks.endpoints import router as webhooks_router


def create_app(
    settings: Settings | None = None, *, configure_logs: bool = True, on_work: Callable[[], None] | None = None
) -> FastAPI:
    """`on_work`: called after each commit that queued ingestion work (wakes an in-process worker)."""
    settings = settings or Settings()
    if configure_logs:
        configure_logging(settings.log_level, json=settings.log_json)
    load_stage_modules(settings.stage_modules)  # the plans it dispatches and the job types it documents
    catalog.wire()  # a stage report can end an asset: its webhook is announced from here
    engine = create_db_engine(settings.resolved_database_url)
    session_factory = create_session_factory(engine)
    storage = build_storage(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        title="mediaingest",
        version="0.1.0",
        summary="Secure direct uploads, media processing and Kubernetes-native scale-out.",
        lifespan=lifespan,
        docs_url=None,  # mount_docs serves /docs and /redoc without a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory
    app.state.read_session_factory = create_session_factory(engine, read_only=True)
    app.state.storage = storage
    app.state.authenticator = Authenticator(settings)
    app.state.asset_service = AssetService(
        settings=settings, storage=storage, dispatcher=build_dispatcher(settings, on_work=on_work)
    )
    app.state.timeline_service = TimelineService(
        settings=settings, storage=storage, options=PipelineOptions.from_settings(settings),
        asset_exists=functools.partial(asset_lives, session_factory),
    )  # fmt: skip
    metrics.track_storage_usage(app.state.read_session_factory)

    # Added last, so it runs first: the request id and access log cover the 413 answers too.
    app.add_middleware(
        BodySizeLimitMiddleware, limit=settings.max_request_body_bytes, exempt=("/storage/", STAGE_RECORD_PATH)
    )
    app.add_middleware(RequestContextMiddleware)
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(asset_events_router)  # first: /api/assets/events is not an asset id
    app.include_router(assets_router)
    app.include_router(playback_router)
    app.include_router(timeline_router)
    app.include_router(webhooks_router)
    app.include_router(account_router)
    if not settings.metrics_port:
        app.include_router(metrics_router)
    if settings.internal_port:
        app.state.internal_app = _internal_app(app)
    else:
        app.include_router(stage_reports_router)
    mount_web(app)  # the upload page at /
    mount_docs(app)
    if settings.storage_backend == StorageBackendName.LOCAL:
        _serve_local_storage(app)
    return app


def _serve_local_storage(app: FastAPI) -> None:
    """The embedded default: its buckets, and the endpoints of its own signed URLs (same PUT/ETag protocol
    as S3), which take bytes only for uploads the asset service still accepts."""
    from mediaingest.storage.local_endpoints import router as local_storage_router

    settings = app.state.settings
    app.state.storage.ensure_buckets([settings.bucket_incoming, settings.bucket_processed, settings.bucket_proxies])

    def upload_gate(bucket: str, key: str) -> bool:
        with app.state.read_session_factory() as session:
            return bool(app.state.asset_service.accepts_upload(session, bucket=bucket, key=key))

    app.state.upload_gate = upload_gate
    app.include_router(local_storage_router)


def _internal_app(public: FastAPI) -> FastAPI:
    """The stage pods' reports on INTERNAL_PORT, sharing the public app's database, storage and settings."""
    internal = FastAPI(title="mediaingest internal", docs_url=None, redoc_url=None, openapi_url=None)
    for name in ("settings", "engine", "session_factory", "read_session_factory", "storage"):
        setattr(internal.state, name, getattr(public.state, name))
    internal.add_middleware(RequestContextMiddleware)
    install_error_handlers(internal)
    internal.include_router(health_router)
    internal.include_router(stage_reports_router)
    return internal
