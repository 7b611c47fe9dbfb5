"""mediaingest's own Kubernetes requests (`operator/kube.py`) against the fake API server: kopf's login
from the kubeconfig, the answers the operator relies on (409 on create, 404 on patch and delete) and how
a refusal arrives (`KubeApiError` with the server's status)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fixtures.kube import ApiServer, ThreadedApiServer, write_kubeconfig
from mediaingest.operator import naming
from mediaingest.operator.kube import KubeApi, KubeApiError, load_api_client, load_connection

NAMESPACE = "default"


def _asset(name: str) -> dict[str, object]:
    return {"apiVersion": f"{naming.GROUP}/{naming.VERSION}", "kind": naming.KIND, "metadata": {"name": name},
            "spec": {"assetId": name}}  # fmt: skip


async def test_create_patch_and_delete_say_whether_the_object_was_there(apiserver: ApiServer) -> None:
    kube = KubeApi(load_connection())
    try:
        assert await kube.create_media_asset(NAMESPACE, _asset("asset-a")) is True
        assert await kube.create_media_asset(NAMESPACE, _asset("asset-a")) is False  # 409: already there
        assert await kube.label_media_asset(NAMESPACE, "asset-a", {"x": "1"}) is True
        assert await kube.patch_media_asset_status(NAMESPACE, "asset-a", {"phase": "Running"}) is True
        assert await kube.patch_media_asset_status(NAMESPACE, "asset-gone", {"phase": "Running"}) is False  # 404
        pages = [page async for page in kube.media_asset_pages(NAMESPACE, label_selector="x=1", limit=10)]
        assert [item["metadata"]["name"] for page in pages for item in page] == ["asset-a"]
        assert await kube.delete_media_asset(NAMESPACE, "asset-a") is True
        assert await kube.delete_media_asset(NAMESPACE, "asset-a") is False  # 404: already gone
    finally:
        await kube.aclose()
    ours = [r for r in apiserver.recorded if r.agent.startswith("mediaingest/")]
    assert [(r.method, r.subresource) for r in ours] == [
        ("POST", ""), ("POST", ""), ("PATCH", ""), ("PATCH", "status"), ("PATCH", "status"), ("GET", ""),
        ("DELETE", ""), ("DELETE", ""),
    ]  # fmt: skip
    assert [r.selector for r in ours if r.method == "GET"] == ["x=1"]


def test_a_refusal_arrives_with_the_servers_status(threaded_apiserver: ThreadedApiServer) -> None:
    client = load_api_client()
    try:
        with pytest.raises(KubeApiError) as refused:
            client.request("GET", f"/apis/{naming.GROUP}/{naming.VERSION}/namespaces/{NAMESPACE}/mediaassets/absent")
    finally:
        client.close()
    assert refused.value.status == 404 and refused.value.reason == "Not Found"


async def test_a_rotated_token_is_read_again_when_the_server_refuses_the_old_one(apiserver: ApiServer) -> None:
    kube = KubeApi(load_connection())  # logged in with the kubeconfig's token, "not-a-secret"
    try:
        # The token is rotated: the server takes only the new one, which the kubeconfig now holds.
        write_kubeconfig(Path(os.environ["KUBECONFIG"]), str(apiserver.url), token="rotated")
        apiserver.accepted_tokens = {"rotated"}
        assert await kube.create_media_asset(NAMESPACE, _asset("asset-b")) is True
        assert await kube.delete_media_asset(NAMESPACE, "asset-b") is True  # and keeps using it
    finally:
        await kube.aclose()
    assert apiserver.refused == ["POST"]  # the first try, with the old token; the retry had the new one
    assert [r.method for r in apiserver.recorded if r.agent.startswith("mediaingest/")] == ["POST", "DELETE"]
