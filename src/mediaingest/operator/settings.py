"""Operator-only settings, read from `OPERATOR_*` environment variables (the chart renders them).

Kept out of `mediaingest.config.Settings` on purpose: the API and the stage Jobs never need them, and
the operator's Deployment is the only place they are set. The one shared value, the namespace, is
read from the same `K8S_NAMESPACE` variable the API's dispatcher uses.

Per-stage resources arrive as one JSON object in `OPERATOR_STAGES` (camelCase keys, as in
values.yaml); stages or keys it leaves out keep the defaults below.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, StringConstraints, field_validator
from pydantic.alias_generators import to_camel
from pydantic_settings import BaseSettings, SettingsConfigDict

from mediaingest.models.enums import JobPriority, Stage
from mediaingest.pipeline.registry import JobResources, stage_named, stages

# A Kubernetes quantity as values.yaml may spell it: "500m", "2Gi", or a bare number (`--set …cpu=2`
# arrives as the integer 2). The chart's values.schema.json uses this same pattern (a test compares).
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$"


def _quantity_text(value: Any) -> Any:
    if isinstance(value, bool):
        return value  # refused below: true is no quantity
    if isinstance(value, int | float):
        return format(value, "g") if isinstance(value, float) else str(value)
    return value


Quantity = Annotated[str, BeforeValidator(_quantity_text), StringConstraints(pattern=QUANTITY_PATTERN)]


class StageConfig(BaseModel):
    """How one stage's Job is sized: container resources, its scratch volume and its deadline."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    # Kubernetes quantities ("500m", "2Gi", 2); include `ephemeral-storage` for the scratch volume.
    requests: dict[str, Quantity]
    limits: dict[str, Quantity]
    scratch_size_limit: Quantity  # emptyDir sizeLimit of the WORK_DIR volume
    active_deadline_seconds: int = Field(gt=0)


def _stage(resources: JobResources) -> StageConfig:
    return StageConfig(
        requests={"cpu": resources.cpu[0], "memory": resources.memory[0], "ephemeral-storage": resources.scratch},
        limits={"cpu": resources.cpu[1], "memory": resources.memory[1], "ephemeral-storage": resources.scratch_limit},
        scratch_size_limit=resources.scratch,
        active_deadline_seconds=resources.deadline_seconds,
    )


def default_stage_configs() -> dict[Stage, StageConfig]:
    """Each registered stage's Job, as its StageSpec sizes it."""
    return {spec.stage: _stage(spec.resources) for spec in stages()}


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPERATOR_", extra="ignore", populate_by_name=True)

    namespace: str = Field("default", alias="K8S_NAMESPACE")
    # Set by the chart to the release name: this operator handles only MediaAssets and Jobs labelled with
    # it, so two releases in one namespace never run each other's work. None: every one.
    release: str | None = Field(None, alias="K8S_RELEASE")

    # --- the stage Jobs ------------------------------------------------------------------------
    worker_image: str = "mediaingest:latest"
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: list[str] = []
    job_service_account: str | None = None  # none: the namespace's default, with no token mounted
    job_config_map_name: str = "mediaingest"  # envFrom: pipeline options, bucket names (no secrets in it)
    # Stage pods get no database or storage credentials: they report to the API here, with a token for
    # their attempt signed under URL_SIGNING_SECRET (the key the API replicas share to verify it).
    stage_api_url: str = "http://mediaingest-api:8000"
    url_signing_secret: SecretStr | None = Field(None, alias="URL_SIGNING_SECRET")
    # A token lives for the stage's deadline plus this: time for the Job to wait for admission (Kueue)
    # and for its pod to be scheduled. One that expires costs an attempt, never a result.
    stage_token_grace_seconds: int = Field(24 * 3600, ge=60)
    stages: dict[Stage, StageConfig] = Field(default_factory=default_stage_configs)
    # Long enough for the operator to fold a finished Job's result in (a vanished one costs an attempt).
    ttl_seconds_after_finished: int = Field(3600, ge=300)
    node_selector: dict[str, str] = {}
    tolerations: list[dict[str, Any]] = []
    priority_class_names: dict[JobPriority, str] = {}
    # None: the pod names no user and the platform assigns one (OpenShift's restricted-v2 SCC does).
    run_as_user: int | None = Field(10001, ge=1)
    # A long encode must not be evicted for a scale-down: it would restart from zero.
    job_pod_annotations: dict[str, str] = {
        "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
        "karpenter.sh/do-not-disrupt": "true",
    }
    job_affinity: dict[str, Any] = {}
    job_extra_env: list[dict[str, Any]] = []  # [{"name": …, "value": …} or valueFrom], after ours
    # With Kueue installed: its LocalQueue for stage Jobs. Jobs are then created suspended with the
    # queue label and Kueue admits them (quotas, fair sharing, priorities, preemption); the operator's
    # own caps stand aside. None: the operator's caps (max_running_jobs, …) decide.
    kueue_queue_name: str | None = None

    # --- retries and caps ----------------------------------------------------------------------
    max_attempts: int = Field(4, ge=1)
    backoff_base_seconds: float = Field(15.0, ge=0)
    backoff_max_seconds: float = Field(600.0, ge=0)
    max_running_jobs: int = Field(20, ge=1)
    max_running_jobs_per_tenant: int = Field(5, ge=1)
    capacity_retry_seconds: float = Field(15.0, gt=0)

    # --- the control loop ----------------------------------------------------------------------
    # kopf peering: every operator of a release (replicas, a second Deployment, a laptop) keeps itself
    # alive in this namespaced KopfPeering object and only the highest priority alive works. None: no
    # peering (kopf's standalone mode), for a single operator outside the chart.
    peering_name: str | None = None
    # Random by default, so replicas never tie (kopf pauses every operator of a tie).
    peering_priority: int = Field(default_factory=lambda: secrets.randbelow(1_000_000) + 1, ge=0)
    # How long an operator counts as alive after its last keep-alive (sent a few seconds sooner): a
    # standby takes over this long after a leader that died without saying goodbye.
    peering_lifetime_seconds: int = Field(60, ge=2)
    reconcile_interval_seconds: float = Field(10.0, gt=0)
    error_backoff_seconds: float = Field(10.0, gt=0)
    # Watches end server-side after this long and are started again, and a client-side timeout a little
    # longer ends one the network silently dropped: without both, a stalled watch freezes the pipeline
    # while the process looks alive (kopf issue 585).
    watch_server_timeout_seconds: float = Field(300.0, gt=0)
    watch_connect_timeout_seconds: float = Field(30.0, gt=0)
    # A stream can also stay open and deliver nothing: at most this often a reconcile compares its
    # MediaAsset with the API server's, and liveness fails when the stream lags this long (watch_health).
    watch_check_interval_seconds: float = Field(60.0, gt=0)
    watch_stall_seconds: float = Field(120.0, gt=0)
    mirror_database: bool = True  # mirror stage outcomes into DATABASE_URL (off: status only)
    # Ready and Failed MediaAssets are deleted this long after they finished (0: never). Each is ~2 KB in
    # etcd; the database keeps the record and the API keeps answering for the asset.
    retention_seconds: float = Field(7 * 24 * 3600, ge=0)

    @field_validator("kueue_queue_name", "peering_name", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("run_as_user", mode="before")
    @classmethod
    def _no_user(cls, value: Any) -> Any:
        # The chart renders a null runAsUser as the text "null" (an environment variable is a string).
        return None if isinstance(value, str) and value.strip().lower() in ("", "null", "none") else value

    @field_validator("stages", mode="before")
    @classmethod
    def _merge_stage_defaults(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        defaults = default_stage_configs()
        merged: dict[Stage, Any] = {stage: config.model_dump(by_alias=True) for stage, config in defaults.items()}
        for key, override in value.items():
            stage = stage_named(key)
            if isinstance(override, StageConfig):
                override = override.model_dump(by_alias=True)
            merged[stage] = {**merged[stage], **override}
        return merged

    def stage_token_secret(self) -> bytes:
        if self.url_signing_secret is None:
            raise ValueError("URL_SIGNING_SECRET is not set: the operator signs each stage pod's token with it")
        return self.url_signing_secret.get_secret_value().encode()
