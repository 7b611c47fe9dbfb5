"""The Kubernetes API calls the operator makes itself (kopf does the watching): creating and deleting
stage Jobs and MediaAssets, patching a MediaAsset's status, reading a failed pod's exit.

The official client is synchronous, so each call runs in a worker thread, after the client-side rate
limit lets it through. Built at operator start-up from the in-cluster service account, else the
kubeconfig, never at import.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf
import kubernetes
from kubernetes.client.exceptions import ApiException

from mediaingest.operator import metrics, naming


def load_configuration() -> kubernetes.client.Configuration:
    """In-cluster service account first, then $KUBECONFIG (read now, not at import) or ~/.kube/config."""
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration)
    return configuration


def load_api_client(*, pool_size: int | None = None) -> kubernetes.client.ApiClient:
    """`pool_size`: connections kept to the API server, for a caller with many requests at once."""
    configuration = load_configuration()
    if pool_size is not None:
        configuration.connection_pool_maxsize = pool_size
    return kubernetes.client.ApiClient(configuration)


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


class RateLimit:
    """A token bucket: `qps` calls a second on average, `burst` at once (client-go's client-side limit)."""

    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.qps, self.burst, self._clock = qps, burst, clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.qps)
            self._stamp = now
            if self._tokens < 1:
                await asyncio.sleep((1 - self._tokens) / self.qps)
                self._stamp = self._clock()
                self._tokens = 1.0
            self._tokens -= 1


class KubeApi:
    """The operator's own calls, each counted by verb and kind (`kube_requests_total`) and rate-limited."""

    def __init__(self, api_client: kubernetes.client.ApiClient, *, limit: RateLimit | None = None) -> None:
        self._batch = kubernetes.client.BatchV1Api(api_client)
        self._core = kubernetes.client.CoreV1Api(api_client)
        self._custom = kubernetes.client.CustomObjectsApi(api_client)
        self._limit = limit

    async def _call(self, verb: str, kind: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._limit is not None:
            await self._limit.acquire()
        metrics.kube_requests_total.labels(verb=verb, kind=kind).inc()
        return await asyncio.to_thread(function, *args, **kwargs)

    # --- stage Jobs ---------------------------------------------------------------------------------
    async def create_job(self, namespace: str, body: Mapping[str, Any]) -> bool:
        """Creates the Job; False when it already existed (the same attempt's: just as good)."""
        return await self._create("Job", self._batch.create_namespaced_job, namespace, body)

    async def delete_job(self, namespace: str, name: str) -> bool:
        """Deletes the Job and, in the background, its pod; False when it was already gone."""
        options = kubernetes.client.V1DeleteOptions(propagation_policy="Background")
        return await self._delete("Job", self._batch.delete_namespaced_job, name, namespace, body=options)

    async def pod_termination(self, namespace: str, job_name: str) -> PodTermination | None:
        """How the stage container of the Job's last pod ended, if a pod is still there to say."""
        pods = await self._call(
            "list", "Pod", self._core.list_namespaced_pod, namespace, label_selector=f"job-name={job_name}"
        )
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

    # --- MediaAssets --------------------------------------------------------------------------------
    async def create_media_asset(self, namespace: str, body: Mapping[str, Any]) -> bool:
        create = self._custom.create_namespaced_custom_object
        return await self._create(
            naming.KIND, lambda ns, manifest: create(naming.GROUP, naming.VERSION, ns, naming.PLURAL, manifest),
            namespace, body,
        )  # fmt: skip

    async def patch_media_asset_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> bool:
        """A merge patch of the status subresource; False when the MediaAsset is gone."""
        patch = self._custom.patch_namespaced_custom_object_status
        return await self._patch(patch, namespace, name, {"status": dict(status)})

    async def label_media_asset(self, namespace: str, name: str, labels: Mapping[str, str]) -> bool:
        """Merges labels into the MediaAsset's; False when it is gone."""
        patch = self._custom.patch_namespaced_custom_object
        return await self._patch(patch, namespace, name, {"metadata": {"labels": dict(labels)}})

    async def delete_media_asset(self, namespace: str, name: str) -> bool:
        """Deletes the MediaAsset; False if it was already gone."""
        options = kubernetes.client.V1DeleteOptions(propagation_policy="Background")
        delete = self._custom.delete_namespaced_custom_object
        return await self._delete(
            naming.KIND, lambda n, ns, body: delete(naming.GROUP, naming.VERSION, ns, naming.PLURAL, n, body=body),
            name, namespace, body=options,
        )  # fmt: skip

    async def media_asset_pages(
        self, namespace: str, *, label_selector: str, limit: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The MediaAssets the selector picks, a page at a time (the server filters; memory holds a page)."""
        token: str | None = None
        while True:
            page: Any = await self._call(
                "list", naming.KIND, self._custom.list_namespaced_custom_object,
                naming.GROUP, naming.VERSION, namespace, naming.PLURAL,
                label_selector=label_selector, limit=limit, **({"_continue": token} if token else {}),
            )  # fmt: skip
            yield list(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    # --- the one way to create and delete ----------------------------------------------------------
    async def _create(self, kind: str, create: Callable[..., Any], namespace: str, body: Mapping[str, Any]) -> bool:
        try:
            # The client serializes a plain manifest as it would its model; its stubs only name the model.
            manifest: Any = dict(body)
            await self._call("create", kind, create, namespace, manifest)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def _patch(self, patch: Callable[..., Any], namespace: str, name: str, body: Mapping[str, Any]) -> bool:
        try:
            await self._call("patch", naming.KIND, patch, naming.GROUP, naming.VERSION, namespace, naming.PLURAL, name,
                             dict(body))  # fmt: skip
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def _delete(self, kind: str, delete: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        try:
            await self._call("delete", kind, delete, *args, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True
