"""End to end on a real cluster (`make e2e-kind`): upload an image through the API, watch its
MediaAsset go from Pending to Ready, and check the API's status says the same.

Runs only when KUBECONFIG points at a reachable cluster with the chart installed in E2E_NAMESPACE
(default `mediaingest`, release E2E_RELEASE, default `mediaingest`); skipped otherwise.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

pytestmark = pytest.mark.cluster

NAMESPACE = os.environ.get("E2E_NAMESPACE", "mediaingest")
RELEASE = os.environ.get("E2E_RELEASE", "mediaingest")
KUBECTL = os.environ.get("E2E_KUBECTL", "kubectl")
READY_TIMEOUT = float(os.environ.get("E2E_READY_TIMEOUT", "600"))
# The chart's fullname rule (templates/_helpers.tpl): the release name alone if it contains the chart's.
FULLNAME = RELEASE if "mediaingest" in RELEASE else f"{RELEASE}-mediaingest"


def _cluster_or_skip() -> None:
    if not os.environ.get("KUBECONFIG"):
        pytest.skip("no KUBECONFIG: the end-to-end test needs a real cluster (make e2e-kind)")
    from mediaingest.operator.kube import load_api_client

    try:
        load_api_client().request("GET", "/version")
    except Exception as exc:
        pytest.skip(f"KUBECONFIG={os.environ['KUBECONFIG']} does not reach a cluster: {exc!r}")


def kubectl(*args: str) -> str:
    result = subprocess.run([KUBECTL, "-n", NAMESPACE, *args], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def port_forward(service: str, port: int) -> Iterator[int]:
    local = _free_port()
    process = subprocess.Popen(
        [KUBECTL, "-n", NAMESPACE, "port-forward", f"svc/{service}", f"{local}:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", local), timeout=1):
                break
            time.sleep(0.2)
        yield local
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_upload_goes_from_pending_to_ready_and_the_api_agrees() -> None:
    _cluster_or_skip()
    from PIL import Image

    from mediaingest.operator import naming
    from mediaingest.operator.kube import KubeApiError, load_api_client

    # A tenant and a token, made by the API's own CLI inside the cluster.
    token = (
        kubectl(
            "exec",
            f"deploy/{FULLNAME}-api",
            "-c",
            "api",
            "--",
            "mediaingest",
            "users",
            "create",
            "--email",
            f"e2e-{int(time.time())}@example.test",
        )
        .strip()
        .splitlines()[-1]
    )
    headers = {"Authorization": f"Bearer {token}"}
    picture = io.BytesIO()
    Image.new("RGB", (640, 360), (30, 120, 200)).save(picture, "JPEG", quality=90)
    data = picture.getvalue()

    with port_forward(f"{FULLNAME}-api", 80) as api_port, port_forward("minio", 9000) as s3_port:
        api = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=30)
        ticket = api.post(
            "/api/assets/upload-url",
            headers=headers,
            json={"fileName": "e2e.jpg", "fileSize": len(data), "mimeType": "image/jpeg"},
        )
        assert ticket.status_code == 201, ticket.text
        ticket_data = ticket.json()["data"]
        # The presigned URL names the in-cluster endpoint (minio:9000); send it through the port-forward
        # with the signed Host header unchanged.
        url = urlsplit(ticket_data["uploadUrl"])
        put = httpx.put(
            urlunsplit(url._replace(netloc=f"127.0.0.1:{s3_port}")),
            content=data,
            headers={**ticket_data["headers"], "Host": url.netloc},
            timeout=60,
        )
        assert put.status_code == 200, put.text
        confirmed = api.post(
            "/api/assets/confirm-upload",
            headers=headers,
            json={"assetId": ticket_data["assetId"], "etag": put.headers["etag"]},
        )
        assert confirmed.status_code == 200, confirmed.text
        asset_id = ticket_data["assetId"]

        client = load_api_client()
        name = naming.asset_resource_name(asset_id)
        path = f"/apis/{naming.GROUP}/{naming.VERSION}/namespaces/{NAMESPACE}/{naming.PLURAL}/{name}"
        seen: list[str] = []
        deadline = time.monotonic() + READY_TIMEOUT
        body: dict[str, object] = {}
        while time.monotonic() < deadline:
            try:  # created by the operator from a task the confirm queued: a moment after it
                body = client.request("GET", path)
            except KubeApiError as exc:
                if exc.status != 404:
                    raise
                time.sleep(1)
                continue
            phase = (body.get("status") or {}).get("phase", "Pending")
            if not seen or seen[-1] != phase:
                seen.append(phase)
            if phase in ("Ready", "Failed"):
                break
            time.sleep(2)
        assert seen[-1] == "Ready", f"phases seen: {seen}; status: {body.get('status')}"
        assert "Ready" in kubectl("get", "mediaassets", name)
        # The stage pods ran with the ConfigMap and a projected token for the API only: no Secret at all.
        jobs = json.loads(kubectl("get", "jobs", "-l", f"{naming.LABEL_ASSET_ID}={asset_id}", "-o", "json"))
        assert jobs["items"]
        for job in jobs["items"]:
            pod = job["spec"]["template"]["spec"]
            (container,) = pod["containers"]
            assert all("secretRef" not in source for source in container.get("envFrom", []))
            assert not [item for item in container["env"] if "secretKeyRef" in item.get("valueFrom", {})]
            assert next(v for v in pod["volumes"] if "projected" in v)["projected"]["sources"][0]["serviceAccountToken"]
        assert not json.loads(kubectl("get", "secrets", "-l", f"{naming.LABEL_ASSET_ID}={asset_id}", "-o", "json"))[
            "items"
        ]

        status = api.get(f"/api/assets/{asset_id}/status", headers=headers)
        assert status.status_code == 200, status.text
        assert status.json()["data"]["processingStatus"] == "READY"


def test_helm_test_uploads_a_clip_through_the_release_and_it_becomes_ready() -> None:
    """`helm test`: the chart's test Pod, with a user's token from a Secret (helmTest.tokenSecret), uploads a
    generated clip and waits for READY — behind the chart's NetworkPolicies, on the cluster's DNS."""
    _cluster_or_skip()
    helm = os.environ.get("E2E_HELM", "helm")
    token = kubectl("exec", f"deploy/{FULLNAME}-api", "-c", "api", "--", "mediaingest", "users", "create",
                    "--email", f"e2e-helm-test-{int(time.time())}@example.test").strip().splitlines()[-1]  # fmt: skip
    secret = f"{FULLNAME}-helm-test"
    manifest = kubectl("create", "secret", "generic", secret, f"--from-literal=token={token}",
                       "--dry-run=client", "-o", "yaml")  # fmt: skip
    applied = subprocess.run([KUBECTL, "-n", NAMESPACE, "apply", "-f", "-"], input=manifest, capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
    assert applied.returncode == 0, applied.stderr

    def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([helm, "-n", NAMESPACE, *args], capture_output=True, text=True,
                              timeout=READY_TIMEOUT + 120, check=False)  # fmt: skip

    upgraded = run_helm("upgrade", RELEASE, "charts/mediaingest", "--reuse-values",
                        "--set", f"helmTest.tokenSecret.name={secret}", "--wait", "--timeout", "10m")  # fmt: skip
    assert upgraded.returncode == 0, upgraded.stderr
    tested = run_helm("test", RELEASE, "--logs", "--timeout", f"{int(READY_TIMEOUT)}s")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert ": READY" in tested.stdout
