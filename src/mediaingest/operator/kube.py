"""Every call mediaingest makes to the Kubernetes API itself (kopf does the watching): the operator's
stage Jobs and MediaAssets, a failed pod's exit, and the API's TokenReviews of stage pods' tokens.

Credentials are kopf's: the in-cluster service account (`kopf.login_with_service_account`), else the
kubeconfig (`kopf.login_with_kubeconfig`), and the TLS context and Authorization header come from the
`kopf.ConnectionInfo` they return — the same login the operator's watches use. Requests are plain REST
over httpx (already a core dependency): asynchronous for the operator, synchronous for the API's request
threads. Built when first needed, never at import.

    KubeApiError   the API server answered with an error status (404, 409, 410, 403, …)
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import version as package_version
from typing import Any

import httpx
import kopf

from mediaingest.operator import metrics, naming
from mediaingest.operator.model import lookup

# Our requests name themselves, apart from kopf's (`kopf/…`) in the API server's audit log.
USER_AGENT = f"mediaingest/{package_version('mediaingest')}"
MERGE_PATCH = "application/merge-patch+json"
# A bound on every call: a hung one would otherwise stall the operator's loop until liveness failed.
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
_BACKGROUND = {"propagationPolicy": "Background"}  # delete the Job's pods after it, not before


class KubeApiError(Exception):
    """The API server refused a request: `status` is the HTTP status, `reason` its phrase ("Conflict"),
    `message` the Status object's message."""

    def __init__(self, status: int, reason: str, message: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")
        self.status, self.reason, self.message = status, reason, message


def load_connection(settings: kopf.OperatorSettings | None = None) -> kopf.ConnectionInfo:
    """In-cluster service account first, then $KUBECONFIG (read now, not at import) or ~/.kube/config."""
    settings = settings or kopf.OperatorSettings()
    connection = _in_cluster(settings) or kopf.login_with_kubeconfig(settings=settings)
    if connection is None:
        raise kopf.LoginError("no in-cluster service account and no kubeconfig ($KUBECONFIG, ~/.kube/config)")
    return connection


def _in_cluster(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo | None:
    """The pod's service account, None outside a cluster."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if not (host and port):
        return None
    connection = kopf.login_with_service_account(settings=settings)
    if connection is None:
        return None
    # The service's address from the environment, as client-go does: no DNS lookup needed.
    host = f"[{host}]" if ":" in host else host
    return dataclasses.replace(connection, server=f"https://{host}:{port}")


def login(*, settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
    """kopf's credentials: the same login as the operator's own requests."""
    return load_connection(settings)


class _Credentials(httpx.Auth):
    """The login's Authorization header; on a 401 it logs in again once and retries, since a service
    account token is rotated by the kubelet while the process runs (kopf re-logs in the same way)."""

    def __init__(self, connection: kopf.ConnectionInfo) -> None:
        self._headers = connection.as_http_headers()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        headers = self._headers
        request.headers.update(headers)
        response = yield request
        if response.status_code == 401:
            fresh = load_connection().as_http_headers()
            if fresh != headers:
                self._headers = fresh
                request.headers.update(fresh)
                yield request


def _client_options(connection: kopf.ConnectionInfo, pool_size: int | None) -> dict[str, Any]:
    return {
        "base_url": connection.server,
        "verify": connection.as_ssl_context(),  # the CA (path or data), client certificate, insecure flag
        "auth": _Credentials(connection),
        "headers": {"User-Agent": USER_AGENT, "Accept": "application/json"},
        "timeout": TIMEOUT,
        "proxy": connection.proxy_url,
        "trust_env": connection.trust_env,
        **(
            {"limits": httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)}
            if pool_size
            else {}
        ),
    }


def _request(
    client: httpx.Client | httpx.AsyncClient,
    method: str,
    path: str,
    *,
    params: Mapping[str, Any] | None = None,
    body: Any = None,
    patch: bool = False,
) -> httpx.Request:
    headers = {"Content-Type": MERGE_PATCH} if patch else None
    return client.build_request(method, path, params=params, json=body, headers=headers)


def _answer(response: httpx.Response) -> Any:
    """The response's JSON, or KubeApiError with the Status object's message."""
    if response.is_success:
        return response.json()
    raise KubeApiError(response.status_code, response.reason_phrase, _status_message(response))


def _status_message(response: httpx.Response) -> str:
    """The message of the Status object an error answer carries, else the start of its body."""
    try:
        status = response.json()
    except ValueError:
        return response.text[:200]
    return str(status.get("message") or "") if isinstance(status, dict) else ""


def _objects(group: str, version: str, namespace: str, plural: str) -> str:
    """The collection's path: /api/v1/… for the core group, /apis/<group>/<version>/… otherwise."""
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    return f"{prefix}/namespaces/{namespace}/{plural}"


class ApiClient:
    """Synchronous requests, for the API's request threads (TokenReviews) and command-line checks."""

    def __init__(self, connection: kopf.ConnectionInfo, *, pool_size: int | None = None) -> None:
        self._client = httpx.Client(**_client_options(connection, pool_size))

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None) -> Any:
        return _answer(self._client.send(_request(self._client, method, path, params=params, body=body)))

    def review_token(self, token: str, audiences: list[str]) -> dict[str, Any]:
        """The TokenReview's status: who the token belongs to, for which audiences (authentication.k8s.io)."""
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                  "spec": {"token": token, "audiences": audiences}}  # fmt: skip
        answer = self.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", body=review)
        return dict(answer.get("status") or {})

    def close(self) -> None:
        self._client.close()


def load_api_client(*, pool_size: int | None = None) -> ApiClient:
    """`pool_size`: connections kept to the API server, for a caller with many requests at once."""
    return ApiClient(load_connection(), pool_size=pool_size)


@dataclass(frozen=True)
class PodTermination:
    exit_code: int | None
    reason: str | None  # OOMKilled, Error, …
    message: str | None  # the termination message, or the log tail (FallbackToLogsOnError)


def last_termination(pods: Iterable[Mapping[str, Any]], job_name: str) -> PodTermination | None:
    """How the stage container ended in the Job's pod that ended last (pure: the pods as listed)."""
    ended = sorted(_stage_terminations(pods, job_name), key=lambda item: item[0])  # RFC 3339 UTC sorts as text
    return _termination(ended[-1][1]) if ended else None


def _termination(terminated: Mapping[str, Any]) -> PodTermination:
    """What a container's `terminated` state says."""
    message = (terminated.get("message") or "").strip() or None
    return PodTermination(exit_code=terminated.get("exitCode"), reason=terminated.get("reason"), message=message)


def _stage_terminations(pods: Iterable[Mapping[str, Any]], job_name: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(when, the `terminated` state) of each ended stage container among the Job's pods."""
    for pod in pods:
        # The Job's own pods only: belt and braces for API servers that ignore the selector.
        if lookup(pod, "metadata", "labels", "job-name") == job_name:
            yield from _ended_stage_container(pod)


def _ended_stage_container(pod: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(when, the `terminated` state) of the pod's stage container, once it has ended."""
    for container in lookup(pod, "status", "containerStatuses") or []:
        terminated = lookup(container, "state", "terminated")
        if container.get("name") == naming.CONTAINER_NAME and terminated is not None:
            yield str(terminated.get("finishedAt") or lookup(pod, "metadata", "creationTimestamp") or ""), terminated


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

    def __init__(self, connection: kopf.ConnectionInfo, *, limit: RateLimit | None = None) -> None:
        self._client = httpx.AsyncClient(**_client_options(connection, None))
        self._limit = limit

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(
        self, verb: str, kind: str, method: str, path: str, *,
        params: Mapping[str, Any] | None = None, body: Any = None, patch: bool = False,
    ) -> Any:  # fmt: skip
        if self._limit is not None:
            await self._limit.acquire()
        metrics.kube_requests_total.labels(verb=verb, kind=kind).inc()
        request = _request(self._client, method, path, params=params, body=body, patch=patch)
        return _answer(await self._client.send(request))

    # --- stage Jobs ---------------------------------------------------------------------------------
    async def create_job(self, namespace: str, body: Mapping[str, Any]) -> bool:
        """Creates the Job; False when it already existed (the same attempt's: just as good)."""
        return await self._create("Job", _objects("batch", "v1", namespace, "jobs"), body)

    async def delete_job(self, namespace: str, name: str) -> bool:
        """Deletes the Job and, in the background, its pod; False when it was already gone."""
        return await self._delete("Job", f"{_objects('batch', 'v1', namespace, 'jobs')}/{name}")

    async def pod_termination(self, namespace: str, job_name: str) -> PodTermination | None:
        """How the stage container of the Job's last pod ended, if a pod is still there to say."""
        pods = await self._call("list", "Pod", "GET", _objects("", "v1", namespace, "pods"),
                                params={"labelSelector": f"job-name={job_name}"})  # fmt: skip
        return last_termination(pods.get("items") or [], job_name)

    # --- MediaAssets --------------------------------------------------------------------------------
    async def create_media_asset(self, namespace: str, body: Mapping[str, Any]) -> bool:
        return await self._create(naming.KIND, _media_assets(namespace), body)

    async def patch_media_asset_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> bool:
        """A merge patch of the status subresource; False when the MediaAsset is gone."""
        return await self._patch(f"{_media_assets(namespace)}/{name}/status", {"status": dict(status)})

    async def label_media_asset(self, namespace: str, name: str, labels: Mapping[str, str]) -> bool:
        """Merges labels into the MediaAsset's; False when it is gone."""
        return await self._patch(f"{_media_assets(namespace)}/{name}", {"metadata": {"labels": dict(labels)}})

    async def delete_media_asset(self, namespace: str, name: str) -> bool:
        """Deletes the MediaAsset; False if it was already gone."""
        return await self._delete(naming.KIND, f"{_media_assets(namespace)}/{name}")

    async def media_asset_pages(
        self, namespace: str, *, label_selector: str, limit: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The MediaAssets the selector picks, a page at a time (the server filters; memory holds a page)."""
        token: str | None = None
        while True:
            params = {"labelSelector": label_selector, "limit": limit, **({"continue": token} if token else {})}
            page = await self._call("list", naming.KIND, "GET", _media_assets(namespace), params=params)
            yield list(page.get("items") or [])
            token = lookup(page, "metadata", "continue")
            if not token:
                return

    # --- the one way to create, patch and delete -----------------------------------------------------
    async def _create(self, kind: str, collection: str, body: Mapping[str, Any]) -> bool:
        return await self._done_unless(409, "create", kind, "POST", collection, body=dict(body))

    async def _patch(self, path: str, body: Mapping[str, Any]) -> bool:
        return await self._done_unless(404, "patch", naming.KIND, "PATCH", path, body=dict(body), patch=True)

    async def _delete(self, kind: str, path: str) -> bool:
        return await self._done_unless(404, "delete", kind, "DELETE", path, body=_BACKGROUND)

    async def _done_unless(self, status: int, verb: str, kind: str, method: str, path: str, **request: Any) -> bool:
        """The call; False when the API server answers `status` (409: it exists already, 404: it is gone)."""
        try:
            await self._call(verb, kind, method, path, **request)
        except KubeApiError as exc:
            if exc.status == status:
                return False
            raise
        return True


def _media_assets(namespace: str) -> str:
    return _objects(naming.GROUP, naming.VERSION, namespace, naming.PLURAL)
