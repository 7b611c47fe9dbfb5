"""The API side of the Kubernetes executor: one MediaAsset custom resource per confirmed asset.

`dispatch` creates it (an existing one is success, so confirming twice is harmless) and `cancel`
deletes it (a missing one is success); its Jobs and their pods go with it through their owner
references. The kubernetes client is built in the constructor (in-cluster service account, else the
kubeconfig), never at import.
"""

from __future__ import annotations

from typing import Any

import kubernetes
import structlog
import urllib3
from kubernetes.client.exceptions import ApiException

from mediaingest.exceptions import ExecutorUnavailableError
from mediaingest.models.enums import JobPriority, MediaType, Stage
from mediaingest.operator import naming
from mediaingest.operator.kube import load_api_client
from mediaingest.operator.model import AssetSpec
from mediaingest.pipeline.registry import stage_named

log = structlog.get_logger(__name__)


def build_media_asset(
    *,
    namespace: str,
    asset_id: str,
    owner_id: str,
    media_type: MediaType,
    bucket: str,
    key: str,
    size: int,
    priority: JobPriority,
    stages: list[Stage],
    release: str | None = None,
) -> dict[str, Any]:
    """The MediaAsset manifest (pure). `release` labels it for its release's operator alone."""
    spec = AssetSpec(
        asset_id=asset_id,
        owner=owner_id,
        media_type=MediaType(media_type),
        bucket=bucket,
        key=key,
        size=size,
        priority=JobPriority(priority),
        stages=tuple(stage_named(stage) for stage in stages),
    )
    return {
        "apiVersion": naming.API_VERSION,
        "kind": naming.KIND,
        "metadata": {
            "name": naming.asset_resource_name(asset_id),
            "namespace": namespace,
            "labels": {
                naming.LABEL_NAME: "mediaingest",
                naming.LABEL_COMPONENT: "media-asset",
                naming.LABEL_ASSET_ID: naming.label_value(asset_id),
                naming.LABEL_TENANT: naming.label_value(owner_id),
                naming.LABEL_MEDIA_TYPE: spec.media_type.value,
                **({naming.LABEL_RELEASE: naming.label_value(release)} if release else {}),
            },
            "annotations": {naming.ANNOTATION_OWNER: owner_id},
        },
        "spec": spec.to_spec(),
    }


class KubernetesDispatcher:
    def __init__(
        self, *, namespace: str, release: str | None = None, api_client: kubernetes.client.ApiClient | None = None
    ) -> None:
        self.namespace = namespace
        self.release = release
        self._api = kubernetes.client.CustomObjectsApi(api_client or load_api_client())

    def dispatch(
        self,
        *,
        asset_id: str,
        owner_id: str,
        media_type: MediaType,
        bucket: str,
        key: str,
        size: int,
        priority: JobPriority,
        stages: list[Stage],
    ) -> None:
        body = build_media_asset(
            namespace=self.namespace,
            asset_id=asset_id,
            owner_id=owner_id,
            media_type=media_type,
            bucket=bucket,
            key=key,
            size=size,
            priority=priority,
            stages=stages,
            release=self.release,
        )
        try:
            self._api.create_namespaced_custom_object(naming.GROUP, naming.VERSION, self.namespace, naming.PLURAL, body)
        except ApiException as exc:
            if exc.status != 409:
                raise _unavailable("create", exc) from exc
            log.info("asset.dispatch_exists", asset_id=asset_id, resource=body["metadata"]["name"])
            return
        except urllib3.exceptions.HTTPError as exc:
            raise _unavailable("create", exc) from exc
        log.info("asset.dispatched", asset_id=asset_id, resource=body["metadata"]["name"])

    def cancel(self, *, asset_id: str) -> None:
        name = naming.asset_resource_name(asset_id)
        try:
            self._api.delete_namespaced_custom_object(
                naming.GROUP,
                naming.VERSION,
                self.namespace,
                naming.PLURAL,
                name,
                # Background: the API call returns at once; the garbage collector removes the Jobs.
                body=kubernetes.client.V1DeleteOptions(propagation_policy="Background"),
            )
        except ApiException as exc:
            if exc.status != 404:
                raise _unavailable("delete", exc) from exc
            return
        except urllib3.exceptions.HTTPError as exc:
            raise _unavailable("delete", exc) from exc
        log.info("asset.dispatch_cancelled", asset_id=asset_id, resource=name)


def _unavailable(action: str, error: Exception) -> ExecutorUnavailableError:
    """The Kubernetes API's failure, translated at the boundary; the caller's transaction rolls back."""
    reason = f"HTTP {error.status}" if isinstance(error, ApiException) else type(error).__name__
    log.warning("asset.dispatch_failed", action=action, reason=reason)
    return ExecutorUnavailableError(f"cannot {action} the MediaAsset resource ({reason}); try again")
