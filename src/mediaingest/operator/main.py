"""kopf registration and the operator's loop: the Kubernetes runner of the task queue.

kopf does what it is good at — logging in, watching with timeouts, paged lists and server-side label
selectors, keeping indices, serving the liveness endpoint — and decides nothing:

    index  stage_jobs    this release's stage Jobs (`…/component=stage-job`), by task id
    index  live_assets   this release's unfinished MediaAssets (`…/finished!=true`), by asset id
    probe  runner        seconds since the loop last went round (liveness fails when it stalls)

One loop, started at start-up, ticks the `runner` (claim stage tasks, create and follow their Jobs,
create MediaAssets) every poll interval and the `projection` (status from the database, retention)
every projection interval. Every rule it applies is the task queue's and `progression`'s.

Handlers are registered on a registry built from the settings, rather than by import-time decorators
on kopf's global registry, so importing this module has no side effects and tests run their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
import structlog

from mediaingest.config import Settings
from mediaingest.db import SessionFactory, create_db_engine, create_session_factory
from mediaingest.operator import kube, metrics, naming, projection
from mediaingest.operator.jobs import observe_job
from mediaingest.operator.kube import KubeApi, RateLimit, load_connection
from mediaingest.operator.model import KubeJobObservation
from mediaingest.operator.runner import KubernetesRunner
from mediaingest.operator.settings import OperatorSettings

log = structlog.stdlib.get_logger(__name__)
JOBS = ("batch", "v1", "jobs")
ASSETS = (naming.GROUP, naming.VERSION, naming.PLURAL)


def index_stage_jobs(body: Mapping[str, Any], **_: Any) -> dict[str, KubeJobObservation]:
    """Task id → the Jobs of its attempts, as last seen."""
    observation = observe_job(body)
    return {} if observation is None else {observation.task_id: observation}


@dataclass
class OperatorLoop:
    runner: KubernetesRunner
    projector: projection.Projector
    settings: OperatorSettings
    last_round: float = field(default_factory=time.monotonic)
    _last_projection: float = 0.0

    async def round(self, jobs: Mapping[str, Any], live: Mapping[str, Any]) -> None:
        await self.runner.tick(jobs)
        now = time.monotonic()
        if now - self._last_projection >= self.settings.projection_interval_seconds:
            self._last_projection = now
            await self.projector.project(live)
            if self.projector.sweep_due():
                await self.projector.sweep()
        self.last_round = time.monotonic()

    async def run(self, jobs: Mapping[str, Any], live: Mapping[str, Any]) -> None:
        await self.runner.take_up()
        while True:
            try:
                await self.round(jobs, live)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database or the API server failed this round: the next one tries again
                log.exception("operator.round_failed")
            await asyncio.sleep(self.settings.poll_interval_seconds)


def build_registry(settings: OperatorSettings) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    kopf.on.login(registry=registry)(kube.login)
    kopf.on.startup(registry=registry)(_with_indices(startup))
    kopf.on.cleanup(registry=registry)(cleanup)
    kopf.on.probe(registry=registry, id="runner")(probe_runner)
    kopf.index(*JOBS, registry=registry, id="stage_jobs")(index_stage_jobs)
    kopf.index(*ASSETS, registry=registry, id="live_assets")(projection.index_live_assets)
    return registry


def _with_indices(handler: Any) -> Any:
    """kopf passes each index to every handler as a keyword argument named after the index's id; its
    handler protocols cannot list them, so a handler that requires one is typed as any callable here."""
    return handler


def build_memo(settings: OperatorSettings, *, metrics_port: int | None = None, **overrides: object) -> kopf.Memo:
    """The memo every handler sees; tests pass `kube`, `session_factory` or `app_settings` overrides."""
    return kopf.Memo(operator_settings=settings, metrics_port=metrics_port, **overrides)


def _session_factory(app_settings: Settings) -> SessionFactory:
    return create_session_factory(create_db_engine(app_settings.resolved_database_url, pool_size=4))


async def startup(
    settings: kopf.OperatorSettings,
    memo: kopf.Memo,
    stage_jobs: kopf.Index[str, KubeJobObservation],
    live_assets: kopf.Index[str, projection.LiveAsset],
    **_: Any,
) -> None:
    config: OperatorSettings = memo.operator_settings
    _configure_kopf(settings, config)
    app_settings: Settings = memo.get("app_settings") or Settings()
    kube_api = memo.get("kube")
    if kube_api is None:  # made here, so closed at cleanup (a test's own is the test's to close)
        kube_api = memo.own_kube = KubeApi(load_connection(settings), limit=RateLimit(config.api_qps, config.api_burst))
    session_factory = memo.get("session_factory") or _session_factory(app_settings)
    runner = KubernetesRunner(
        settings=config, app_settings=app_settings, kube=kube_api, session_factory=session_factory
    )
    projector = projection.Projector(settings=config, kube=kube_api, session_factory=session_factory)
    loop = OperatorLoop(runner=runner, projector=projector, settings=config)
    memo.loop = loop
    memo.loop_task = asyncio.create_task(loop.run(stage_jobs, live_assets))

    metrics.collector.jobs = lambda: runner.job_counts(stage_jobs)
    metrics.collector.limit = config.max_running_jobs
    metrics.collector.live_assets = lambda: len(live_assets)
    port = memo.get("metrics_port")
    if port:
        from prometheus_client import start_http_server

        memo.metrics_server = start_http_server(port)
    log.info("operator.started", namespace=config.namespace, runner=config.runner_id,
             max_running_jobs=config.max_running_jobs)  # fmt: skip


def _configure_kopf(settings: kopf.OperatorSettings, config: OperatorSettings) -> None:
    """kopf's settings for this operator: what it watches and how, and what it writes of its own."""
    # Watches and lists select on the server: this release's stage Jobs and unfinished MediaAssets only,
    # a page at a time, so memory follows the work in flight, not the history.
    settings.watching.label_selectors[JOBS[0], JOBS[2]] = projection.jobs_selector(config)
    settings.watching.label_selectors[ASSETS[0], ASSETS[2]] = projection.live_selector(config)
    settings.watching.chunk_size = config.list_chunk_size
    settings.watching.server_timeout = config.watch_server_timeout_seconds
    settings.watching.client_timeout = config.watch_server_timeout_seconds + 30
    settings.watching.connect_timeout = config.watch_connect_timeout_seconds
    settings.watching.inactivity_timeout = config.watch_inactivity_seconds
    # kopf writes nothing of its own on our objects (no handler changes them), and posts no Events.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=naming.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=naming.GROUP, key="last-handled-configuration"
    )
    settings.posting.enabled = False
    if config.namespace != "*":
        # One known namespace: no cluster-wide listing of namespaces and CRDs, so a namespaced Role
        # is all the RBAC the operator needs.
        settings.scanning.disabled = True


async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    task = memo.get("loop_task")
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    kube_api: KubeApi | None = memo.get("own_kube")
    if kube_api is not None:
        await kube_api.aclose()
    server = memo.get("metrics_server")
    if server:
        _stop_metrics_server(server)
        memo.metrics_server = None


def _stop_metrics_server(server: tuple[Any, threading.Thread]) -> None:
    """Shuts down what `prometheus_client.start_http_server` started: its HTTP server and its thread."""
    httpd, thread = server
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


async def probe_runner(memo: kopf.Memo, **_: Any) -> float:
    """Seconds since the loop last went round; fails the liveness endpoint when it has stalled."""
    loop: OperatorLoop | None = memo.get("loop")
    if loop is None:
        return 0.0
    idle = time.monotonic() - loop.last_round
    limit = 60 + 10 * loop.settings.poll_interval_seconds + loop.settings.projection_interval_seconds
    if idle > limit:
        log.error("operator.loop_stalled", idle_seconds=round(idle))
        raise kopf.PermanentError(f"the operator's loop has not gone round for {idle:.0f} s")
    return round(idle, 1)


def run(namespace: str | None, liveness_port: int, metrics_port: int) -> None:
    """Runs the operator until SIGINT/SIGTERM: `mediaingest operator`.

    `namespace` None watches the namespace from K8S_NAMESPACE. One operator per release: its runner id
    names the tasks it holds, and the chart runs one replica with the Recreate strategy.
    """
    from mediaingest import catalog
    from mediaingest.logging import configure_logging
    from mediaingest.pipeline.registry import load_stage_modules

    catalog.wire()  # a failed Job can end an asset: its webhook is announced from here
    app_settings = Settings()
    configure_logging(app_settings.log_level, json=app_settings.log_json)
    load_stage_modules(app_settings.stage_modules)  # before OperatorSettings: their Jobs' sizes default from them
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings = OperatorSettings()
    if namespace:
        settings = settings.model_copy(update={"namespace": namespace})
    kopf.run(
        registry=build_registry(settings),
        memo=build_memo(settings, metrics_port=metrics_port, app_settings=app_settings),
        standalone=True,  # no peering: leases keep one runner per task, and one operator runs per release
        namespaces=[settings.namespace],
        liveness_endpoint=f"http://0.0.0.0:{liveness_port}/healthz",
    )
