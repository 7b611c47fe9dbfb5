"""kopf registration only: which function handles what. The logic lives in `handlers/`.

Handlers are registered on a registry built from the settings (the timer interval is one of them),
rather than by import-time decorators on kopf's global registry, so importing this module has no
side effects and tests can run the operator with their own settings.

    index  stage_jobs    batch/v1 Jobs we manage → (namespace, MediaAsset) → JobObservation
    index  active_jobs   Jobs still running, by tenant (for the caps)
    index  asset_states  MediaAssets by phase and by stage state (for the metrics)
    timer  reconcile     every MediaAsset until Ready or Failed: the one writer of its status
    index  finished_assets  Ready and Failed MediaAssets → finishedAt, swept by the retention loop (lifecycle)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import kopf

from mediaingest.operator import kube, naming
from mediaingest.operator.handlers import handle_asset, handle_job, lifecycle
from mediaingest.operator.settings import OperatorSettings

_OURS = {naming.LABEL_MANAGED_BY: naming.MANAGED_BY}


def build_registry(settings: OperatorSettings) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    asset = (naming.GROUP, naming.VERSION, naming.PLURAL)
    # With a release, only its own MediaAssets and Jobs: another release in the namespace is not ours.
    release = {naming.LABEL_RELEASE: naming.label_value(settings.release)} if settings.release else {}
    ours = {**_OURS, **release}

    # In-cluster service account, else the kubeconfig: the same rule as the operator's own client.
    kopf.on.login(registry=registry)(kube.login)
    kopf.on.startup(registry=registry)(_with_indices(lifecycle.startup))
    kopf.on.cleanup(registry=registry)(lifecycle.cleanup)
    kopf.on.probe(registry=registry, id="running_jobs")(_with_indices(lifecycle.probe_running_jobs))
    kopf.on.probe(registry=registry, id="watch")(lifecycle.probe_watch)

    kopf.index("batch", "v1", "jobs", registry=registry, id="stage_jobs", labels=ours)(handle_job.index_stage_jobs)
    kopf.index("batch", "v1", "jobs", registry=registry, id="active_jobs", labels=ours)(handle_job.index_active_jobs)
    kopf.index(*asset, registry=registry, id="asset_states", labels=release or None)(handle_asset.index_asset_states)
    kopf.index(*asset, registry=registry, id="finished_assets", labels=release or None)(
        handle_asset.index_finished_assets
    )

    kopf.timer(
        *asset,
        registry=registry,
        id="reconcile",
        labels=release or None,
        interval=settings.reconcile_interval_seconds,
        backoff=settings.error_backoff_seconds,
        when=handle_asset.is_active,
    )(_with_indices(handle_asset.reconcile_asset))
    return registry


def _with_indices(handler: Callable[..., Any]) -> Any:
    """kopf passes each index to every handler as a keyword argument named after the index's id; its
    handler protocols cannot list them, so a handler that requires one is typed as any callable here."""
    return handler


def build_memo(settings: OperatorSettings, *, metrics_port: int | None = None, **overrides: object) -> kopf.Memo:
    """The memo every handler sees; tests pass `kube`, `mirror` or `clock` overrides."""
    return kopf.Memo(operator_settings=settings, metrics_port=metrics_port, **overrides)


def run(namespace: str | None, liveness_port: int, metrics_port: int) -> None:
    """Runs the operator until SIGINT/SIGTERM: `mediaingest operator`.

    `namespace` None watches the namespace from K8S_NAMESPACE; "*" watches the whole cluster (then
    the operator needs a ClusterRole). Replicas agree through kopf peering which one of them works.
    """
    from mediaingest.config import Settings
    from mediaingest.logging import configure_logging
    from mediaingest.pipeline.registry import load_stage_modules

    app_settings = Settings()
    configure_logging(app_settings.log_level, json=app_settings.log_json)
    load_stage_modules(app_settings.stage_modules)  # before OperatorSettings: their Jobs' sizes default from them
    # kopf logs every successful timer run at INFO; our own events (operator.*) say what happened.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    logging.getLogger("kopf.objects").addFilter(handle_asset.QuietCapacityWaits())
    settings = OperatorSettings()
    watched = namespace or settings.namespace
    if watched != "*":
        settings = settings.model_copy(update={"namespace": watched})
    kopf.run(
        registry=build_registry(settings),
        memo=build_memo(settings, metrics_port=metrics_port),
        # With peering, replicas of the release agree who works (the chart creates the KopfPeering).
        standalone=settings.peering_name is None,
        peering_name=settings.peering_name,
        priority=settings.peering_priority,
        clusterwide=watched == "*",
        namespaces=[] if watched == "*" else [watched],
        liveness_endpoint=f"http://0.0.0.0:{liveness_port}/healthz",
    )
