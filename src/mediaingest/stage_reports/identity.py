"""Who is reporting: a stage pod proves it is the pod of one attempt with the token Kubernetes gave it.

Each stage Job mounts a projected ServiceAccount token for the API's audience (`STAGE_TOKEN_AUDIENCE`),
which the kubelet mints when the pod starts, rotates while it runs, and which dies with the pod. The
API asks the Kubernetes API whose token it is (a TokenReview, as Vault's Kubernetes auth does): it must
be the stage ServiceAccount's, and bound to a pod of the Job of the attempt the request names — Job
names are derived from (asset, stage, attempt), and a Job's pods are named after it. Nothing is minted,
stored or revoked here, and a Secret per attempt is no longer needed.

The request names its attempt in one header, `X-Stage-Attempt: <asset id>/<stage>/<attempt>`; whether
that attempt is still the current one is the endpoints' check (the task's state), made on every call.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from mediaingest.exceptions import AuthenticationError, PermissionDeniedError
from mediaingest.models.enums import Stage
from mediaingest.operator import naming
from mediaingest.pipeline.registry import UnknownStageError, stage_named

if TYPE_CHECKING:
    from mediaingest.operator.kube import ApiClient

log = structlog.stdlib.get_logger(__name__)

ATTEMPT_HEADER = "X-Stage-Attempt"
POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
# A reviewed token is trusted this long without asking again: a pod reports progress twice a second.
REVIEW_CACHE_SECONDS = 60.0
_CACHE_LIMIT = 10_000


@dataclass(frozen=True)
class StageClaims:
    """The attempt a request speaks for: one stage of one asset, at one attempt number."""

    asset_id: str
    stage: Stage
    attempt: int

    def header(self) -> str:
        return f"{self.asset_id}/{self.stage}/{self.attempt}"

    @classmethod
    def from_header(cls, value: str | None) -> StageClaims:
        if not value:
            raise AuthenticationError(f"the {ATTEMPT_HEADER} header is required")
        try:
            asset_id, stage, attempt = value.split("/")
            claims = cls(asset_id=asset_id, stage=stage_named(stage), attempt=int(attempt))
        except (ValueError, UnknownStageError) as exc:
            raise AuthenticationError(f"{ATTEMPT_HEADER} is not <asset id>/<stage>/<attempt>") from exc
        if not asset_id or claims.attempt < 1:
            raise AuthenticationError(f"{ATTEMPT_HEADER} is not <asset id>/<stage>/<attempt>")
        return claims


@dataclass(frozen=True)
class ReviewedToken:
    """What the Kubernetes API says of a token: whose it is and, for a bound token, which pod holds it."""

    username: str
    pod_name: str | None


class TokenReviewer(Protocol):
    def review(self, token: str, audience: str) -> ReviewedToken | None:
        """None when the token is not valid for the audience (expired, forged, another audience)."""


class KubernetesTokenReviewer:
    """TokenReview through the Kubernetes API (the API's ServiceAccount needs `system:auth-delegator`),
    with answers cached briefly by the token's hash."""

    def __init__(self, api_client: ApiClient, *, cache_seconds: float = REVIEW_CACHE_SECONDS) -> None:
        self._api = api_client
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ReviewedToken | None]] = {}
        self._lock = threading.Lock()

    def review(self, token: str, audience: str) -> ReviewedToken | None:
        key = hashlib.sha256(f"{audience}\0{token}".encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] > now:
                return cached[1]
        answer = self._ask(token, audience)
        self._remember(key, answer, now=now)
        return answer

    def _remember(self, key: str, answer: ReviewedToken | None, *, now: float) -> None:
        """Caches the answer; a full cache first drops the answers that have expired."""
        with self._lock:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            self._cache[key] = (now + self._cache_seconds, answer)

    def _ask(self, token: str, audience: str) -> ReviewedToken | None:
        from mediaingest.operator.kube import KubeApiError  # the stage pods' client imports this module

        try:
            status = self._api.review_token(token, [audience])
        except KubeApiError as exc:
            log.warning("stage_reports.token_review_failed", status=exc.status)
            raise AuthenticationError("the stage token could not be reviewed; try again") from exc
        return _reviewed(status, audience)


def _reviewed(status: dict[str, Any], audience: str) -> ReviewedToken | None:
    """What a TokenReview's status says of the token; None when it is not valid for the audience."""
    user = status.get("user")
    if not status.get("authenticated") or not user:
        return None
    if audience not in (status.get("audiences") or [audience]):  # an API server that ignored the audience
        return None
    pods = (user.get("extra") or {}).get(POD_NAME_EXTRA) or []
    return ReviewedToken(username=str(user.get("username") or ""), pod_name=str(pods[0]) if pods else None)


def stage_username(namespace: str, service_account: str) -> str:
    return f"system:serviceaccount:{namespace}:{service_account}"


def authenticate(
    reviewer: TokenReviewer,
    *,
    token: str,
    attempt_header: str | None,
    audience: str,
    username: str,
) -> StageClaims:
    """The claims of a request whose token belongs to a pod of its attempt's Job; 401/403 otherwise."""
    claims = StageClaims.from_header(attempt_header)
    reviewed = reviewer.review(token, audience)
    if reviewed is None:
        raise AuthenticationError("not a valid stage token")
    if reviewed.username != username:
        raise AuthenticationError("the token is not a stage pod's")
    job = naming.job_name(naming.asset_resource_name(claims.asset_id), claims.stage, claims.attempt)
    if reviewed.pod_name is None or not reviewed.pod_name.startswith(f"{job}-"):
        raise PermissionDeniedError("the token's pod does not run this attempt")
    return claims
