"""Retention: finished MediaAssets are deleted from the cluster after `retention_seconds`, against the fake
API server; active ones and young finished ones stay, and the database record is never touched."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import kubernetes
import pytest

from mediaingest.models.enums import JobPriority, MediaType, Stage
from mediaingest.operator import naming
from mediaingest.operator.dispatcher import KubernetesDispatcher
from mediaingest.operator.handlers.capacity import CapacityLedger
from mediaingest.operator.handlers.handle_asset import OperatorContext, index_finished_assets, sweep_finished_assets
from mediaingest.operator.handlers.lifecycle import retention_interval
from mediaingest.operator.handlers.reconcile import format_time
from mediaingest.operator.kube import KubeApi, load_api_client
from mediaingest.operator.mirror import InMemoryMirror
from mediaingest.operator.settings import OperatorSettings

NOW = datetime(2030, 6, 1, tzinfo=UTC)
WEEK = 7 * 24 * 3600


def _create() -> str:
    asset_id = str(uuid.uuid4())
    KubernetesDispatcher(namespace="default").dispatch(
        asset_id=asset_id, owner_id="u1", media_type=MediaType.VIDEO, bucket="incoming", key=f"uploads/u1/{asset_id}",
        size=1, priority=JobPriority.NORMAL, stages=[Stage("probe")],
    )  # fmt: skip
    return naming.asset_resource_name(asset_id)


def _names() -> list[str]:
    api = kubernetes.client.CustomObjectsApi(load_api_client())
    listed = api.list_namespaced_custom_object(naming.GROUP, naming.VERSION, "default", naming.PLURAL)
    return sorted(item["metadata"]["name"] for item in listed["items"])


async def test_finished_assets_are_deleted_after_their_retention(apiserver: Any) -> None:
    old, young, running = [await asyncio.to_thread(_create) for _ in range(3)]
    settings = OperatorSettings(_env_file=None, retention_seconds=WEEK)  # type: ignore[call-arg]
    ctx = OperatorContext(
        settings=settings, kube=KubeApi(load_api_client()), mirror=InMemoryMirror(),
        ledger=CapacityLedger(max_running=1, max_running_per_tenant=1), clock=lambda: NOW,
    )  # fmt: skip
    statuses = {
        old: {"phase": "Ready", "finishedAt": format_time(NOW - timedelta(days=8))},
        young: {"phase": "Failed", "finishedAt": format_time(NOW - timedelta(days=1))},
        running: {"phase": "Running"},
    }
    # What kopf's `finished_assets` index holds: (namespace, name) → its values.
    index: dict[Any, list[str]] = {}
    for name, status in statuses.items():
        for key, value in index_finished_assets(name=name, namespace="default", status=status).items():
            index.setdefault(key, []).append(value)
    assert set(index) == {("default", old), ("default", young)}  # a running asset is never a candidate
    assert await sweep_finished_assets(ctx, index) == 1
    assert await asyncio.to_thread(_names) == sorted([young, running])
    # Swept again before the watch saw the deletion: already gone is fine.
    assert await sweep_finished_assets(ctx, {("default", old): index[("default", old)]}) == 0
    # Retention off: nothing is ever deleted.
    keep = dataclasses.replace(ctx, settings=OperatorSettings(_env_file=None, retention_seconds=0))  # type: ignore[call-arg]
    assert await sweep_finished_assets(keep, index) == 0


def test_the_sweep_runs_often_enough_but_at_most_once_a_minute() -> None:
    assert retention_interval(OperatorSettings(_env_file=None)) == 3600  # type: ignore[call-arg]
    assert retention_interval(OperatorSettings(_env_file=None, retention_seconds=600)) == 60  # type: ignore[call-arg]


async def test_startup_sets_watch_timeouts_and_starts_the_retention_sweep() -> None:
    """Without server and client timeouts a silently dropped watch never ends (kopf issue 585)."""
    from mediaingest.operator.handlers.lifecycle import cleanup, startup

    kopf_settings = kopf.OperatorSettings()
    # Without the key that signs stage tokens the operator refuses to start, saying which setting is missing.
    unsigned = OperatorSettings(_env_file=None, namespace="default")  # type: ignore[call-arg]
    memo = kopf.Memo(operator_settings=unsigned, kube=object(), mirror=InMemoryMirror(), metrics_port=None)
    with pytest.raises(ValueError, match="URL_SIGNING_SECRET"):
        await startup(settings=kopf_settings, memo=memo, asset_states={}, active_jobs={}, finished_assets={})
    config = OperatorSettings(_env_file=None, namespace="default", URL_SIGNING_SECRET="k" * 40)  # type: ignore[call-arg]
    memo = kopf.Memo(operator_settings=config, kube=object(), mirror=InMemoryMirror(), metrics_port=None)
    await startup(settings=kopf_settings, memo=memo, asset_states={}, active_jobs={}, finished_assets={})
    try:
        assert kopf_settings.watching.server_timeout == 300
        assert kopf_settings.watching.client_timeout == 330  # ends a watch the server never closes
        assert kopf_settings.watching.connect_timeout == 30
        assert memo.retention_task is not None and not memo.retention_task.done()
    finally:
        await cleanup(memo=memo)
    assert memo.retention_task.cancelled()
