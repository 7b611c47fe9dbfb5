"""The few Kubernetes API calls the operator makes itself (kopf does the watching and the patching).

The official client is synchronous, so each call runs in a worker thread. Built at operator start-up
from the in-cluster service account, else the kubeconfig, never at import.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf
import kubernetes
from kubernetes.client.exceptions import ApiException

from mediaingest.operator import naming


def load_configuration() -> kubernetes.client.Configuration:
    """In-cluster service account first, then $KUBECONFIG (read now, not at import) or ~/.kube/config."""
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration)
    return configuration


def load_api_client() -> kubernetes.client.ApiClient:
    return kubernetes.client.ApiClient(load_configuration())


def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf's credentials, from the same configuration the operator's own client uses."""
    configuration = load_configuration()
    # Newer clients keep the token under "BearerToken", older ones under "authorization".
    header = configuration.get_api_key_with_prefix("BearerToken") or configuration.get_api_key_with_prefix(
        "authorization"
    )
    parts = header.split(" ", 1) if header else []
    scheme, token = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0] if parts else None)
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


@dataclass(frozen=True)
class PodTermination:
    exit_code: int | None
    reason: str | None  # OOMKilled, Error, …
    message: str | None  # the termination message, or the log tail (FallbackToLogsOnError)


class KubeApi:
    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self._batch = kubernetes.client.BatchV1Api(api_client)
        self._core = kubernetes.client.CoreV1Api(api_client)
        self._custom = kubernetes.client.CustomObjectsApi(api_client)

    async def delete_media_asset(self, namespace: str, name: str) -> bool:
        """Deletes the MediaAsset (its Jobs follow by owner reference); False if it was already gone."""
        try:
            await asyncio.to_thread(
                self._custom.delete_namespaced_custom_object,
                naming.GROUP,
                naming.VERSION,
                namespace,
                naming.PLURAL,
                name,
                body=kubernetes.client.V1DeleteOptions(propagation_policy="Background"),
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def media_asset_version(self, namespace: str, name: str) -> str | None:
        """The resourceVersion the API server holds for the MediaAsset; None when it is gone."""
        try:
            body: Any = await asyncio.to_thread(
                self._custom.get_namespaced_custom_object, naming.GROUP, naming.VERSION, namespace, naming.PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return str(body["metadata"]["resourceVersion"])

    async def create_job(self, namespace: str, body: Mapping[str, Any]) -> str | None:
        """Creates the Job; its uid if created now, None if it already existed (which is just as good)."""
        return await _create(self._batch.create_namespaced_job, namespace, body)

    async def create_secret(self, namespace: str, body: Mapping[str, Any]) -> str | None:
        """Creates the Secret; its uid if created now, None if it already existed (the same attempt's)."""
        return await _create(self._core.create_namespaced_secret, namespace, body)

    async def hand_secret_to_job(self, namespace: str, secret_name: str, *, job_name: str, job_uid: str) -> None:
        """Makes the Job the Secret's only owner, so the Secret goes when the Job's TTL removes it."""
        owner = {"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": job_uid}
        patch: Any = [{"op": "replace", "path": "/metadata/ownerReferences", "value": [owner]}]
        await asyncio.to_thread(self._core.patch_namespaced_secret, secret_name, namespace, patch)

    async def pod_termination(self, namespace: str, job_name: str) -> PodTermination | None:
        """How the stage container of the Job's last pod ended, if a pod is still there to say."""
        pods = await asyncio.to_thread(self._core.list_namespaced_pod, namespace, label_selector=f"job-name={job_name}")
        ended = []
        for pod in pods.items:
            metadata = pod.metadata
            if metadata is None or (metadata.labels or {}).get("job-name") != job_name:
                continue  # belt and braces for API servers that ignore the selector
            for container in (pod.status and pod.status.container_statuses) or []:
                terminated = container.state.terminated if container.state is not None else None
                if container.name == naming.CONTAINER_NAME and terminated is not None:
                    ended.append((terminated.finished_at or metadata.creation_timestamp, terminated))
        if not ended:
            return None
        ended.sort(key=lambda item: str(item[0]))
        terminated = ended[-1][1]
        message = (terminated.message or "").strip() or None
        return PodTermination(exit_code=terminated.exit_code, reason=terminated.reason, message=message)


async def _create(create: Callable[..., Any], namespace: str, body: Mapping[str, Any]) -> str | None:
    """One create call in a worker thread: the new object's uid; None when it already exists (409)."""
    try:
        # The client serializes a plain manifest as it would its model; its stubs only name the model.
        manifest: Any = dict(body)
        created = await asyncio.to_thread(create, namespace, manifest)
    except ApiException as exc:
        if exc.status == 409:
            return None
        raise
    return str(created.metadata.uid)
