"""Operator start-up and shutdown: kopf's own settings, the shared context, the metrics endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import kopf
import structlog

from mediaingest.operator import metrics, naming
from mediaingest.operator.handlers.capacity import CapacityLedger
from mediaingest.operator.handlers.handle_asset import OperatorContext, sweep_finished_assets
from mediaingest.operator.kube import KubeApi, load_api_client
from mediaingest.operator.mirror import InMemoryMirror, SqlAlchemyMirror, StatusMirror
from mediaingest.operator.settings import OperatorSettings
from mediaingest.operator.watch_health import WatchHealth

log = structlog.get_logger(__name__)


def build_mirror(settings: OperatorSettings) -> StatusMirror:
    if not settings.mirror_database:
        log.warning("operator.mirror_disabled")
        return InMemoryMirror()
    from mediaingest.config import Settings
    from mediaingest.db import create_db_engine, create_session_factory

    engine = create_db_engine(Settings().resolved_database_url, pool_size=4)
    return SqlAlchemyMirror(create_session_factory(engine))


async def startup(
    settings: kopf.OperatorSettings,
    memo: kopf.Memo,
    asset_states: kopf.Index[Any, str],
    active_jobs: kopf.Index[str, str],
    finished_assets: kopf.Index[Any, str],
    **_: Any,
) -> None:
    config: OperatorSettings = memo.operator_settings
    config.stage_token_secret()  # fail at start, saying why, rather than at the first Job
    # Handler progress and diff-bases in our own annotations; status stays ours alone, and nothing
    # kopf writes there can be pruned away by the CRD's status schema.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=naming.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=naming.GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{naming.GROUP}/operator"
    settings.watching.server_timeout = config.watch_server_timeout_seconds
    settings.watching.client_timeout = config.watch_server_timeout_seconds + 30
    settings.watching.connect_timeout = config.watch_connect_timeout_seconds
    settings.peering.lifetime = config.peering_lifetime_seconds
    # Kubernetes Events only for warnings and errors (e.g. a cap wait), not every handler run.
    settings.posting.level = logging.WARNING
    if config.namespace != "*":
        # One known namespace: no cluster-wide listing of namespaces and CRDs, so a namespaced Role
        # is all the RBAC the operator needs.
        settings.scanning.disabled = True

    ledger = CapacityLedger(
        max_running=config.max_running_jobs, max_running_per_tenant=config.max_running_jobs_per_tenant
    )
    kube = memo.get("kube") or KubeApi(load_api_client())
    mirror = memo.get("mirror") or build_mirror(config)
    watch_health = WatchHealth(
        check_interval=config.watch_check_interval_seconds,
        stall_after=config.watch_stall_seconds,
        forget_after=max(30.0, 3 * config.reconcile_interval_seconds),
    )
    memo.context = OperatorContext(settings=config, kube=kube, mirror=mirror, ledger=ledger, watch_health=watch_health)
    if memo.get("clock"):
        memo.context.clock = memo.clock

    metrics.collector.track(asset_states=asset_states, active_jobs=active_jobs, max_running=config.max_running_jobs)
    if config.retention_seconds:
        memo.retention_task = asyncio.create_task(_retention_loop(memo.context, finished_assets))
    port = memo.get("metrics_port")
    if port:
        from prometheus_client import start_http_server

        memo.metrics_server = start_http_server(port)
    log.info(
        "operator.started",
        namespace=config.namespace,
        max_running_jobs=config.max_running_jobs,
        max_running_jobs_per_tenant=config.max_running_jobs_per_tenant,
    )


def retention_interval(config: OperatorSettings) -> float:
    """Often enough that nothing outlives its retention by much; never more than once a minute."""
    return max(60.0, min(3600.0, config.retention_seconds / 24))


async def _retention_loop(ctx: OperatorContext, finished_assets: kopf.Index[Any, str]) -> None:
    while True:
        await asyncio.sleep(retention_interval(ctx.settings))
        try:
            await sweep_finished_assets(ctx, finished_assets)
        except Exception:  # a failed sweep is retried at the next interval; the loop must live on
            log.exception("operator.retention_sweep_failed")


async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    task = memo.get("retention_task")
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    server = memo.get("metrics_server")
    if server:
        httpd, thread = server
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
        memo.metrics_server = None


async def probe_running_jobs(memo: kopf.Memo, active_jobs: kopf.Index[str, str], **_: Any) -> int:
    """Shown on the liveness endpoint: stage Jobs active now."""
    return sum(len(store) for store in active_jobs.values())


async def probe_watch(memo: kopf.Memo, **_: Any) -> str:
    """Fails the liveness endpoint once the MediaAsset stream lags the API server (`watch_health`)."""
    stalled = memo.context.watch_health.stalled_for(time.monotonic())
    if stalled is not None:
        log.error("operator.watch_stalled", lagging_seconds=round(stalled))
        raise kopf.PermanentError(f"the MediaAsset watch has lagged the API server for {stalled:.0f} s")
    return "ok"
