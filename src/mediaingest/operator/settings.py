"""Operator-only settings, read from `OPERATOR_*` environment variables (the chart renders them).

Only how the operator runs the queue's work on Kubernetes lives here: the Jobs' shape and placement, how
many run at once, and the MediaAssets' upkeep. Every rule about the work itself — attempts, backoff,
per-tenant fairness, the plan, READY — is the task queue's and `progression`'s, from `Settings`, the
same for both executors. The namespace and release are read from the `K8S_*` variables the API uses.

Per-stage Job sizes and scheduling arrive as one JSON object in `OPERATOR_STAGES` (camelCase keys, as
in values.yaml); stages or keys it leaves out keep the registry's defaults.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator
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
    """How one stage's Job is sized and placed: container resources, its scratch volume, its deadline, and
    where its pods may run (per stage: gVisor for the decoders of untrusted media, spot pools for proxies)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    # Kubernetes quantities ("500m", "2Gi", 2); `ephemeral-storage` sizes the scratch volume for Kueue and
    # the scheduler: leave it out where a ClusterQueue does not cover that resource.
    requests: dict[str, Quantity]
    limits: dict[str, Quantity]
    scratch_size_limit: Quantity  # emptyDir sizeLimit of the WORK_DIR volume
    # activeDeadlineSeconds: this, plus `deadlineSecondsPerMediaSecond` × the media's length once probed.
    active_deadline_seconds: int = Field(gt=0)
    deadline_seconds_per_media_second: float = Field(0.0, ge=0)
    # An attempt killed for memory is retried with twice the memory (request and limit), up to this.
    memory_cap: Quantity = "8Gi"
    node_selector: dict[str, str] = {}
    tolerations: list[dict[str, Any]] = []
    affinity: dict[str, Any] = {}
    priority_class_name: str | None = None  # else by the asset's priority (priorityClassNames)
    runtime_class_name: str | None = None


def _stage(resources: JobResources) -> StageConfig:
    return StageConfig(
        requests={"cpu": resources.cpu[0], "memory": resources.memory[0], "ephemeral-storage": resources.scratch},
        limits={"cpu": resources.cpu[1], "memory": resources.memory[1], "ephemeral-storage": resources.scratch_limit},
        scratch_size_limit=resources.scratch,
        active_deadline_seconds=resources.deadline_seconds,
        deadline_seconds_per_media_second=resources.deadline_per_media_second,
        memory_cap=resources.memory_cap,
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
    # A stage whose code needs more than the stage image (`OPERATOR_STAGE_IMAGES`, JSON {stage: image}), e.g.
    # the transcript stage in mediaingest-speech; a stage not named runs in `worker_image`.
    stage_images: dict[Stage, str] = {}
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: list[str] = []
    job_config_map_name: str = "mediaingest"  # envFrom: pipeline options, bucket names (no secrets in it)
    # Stage pods get no database or storage credentials: they report to the API here, as their attempt's
    # pod, with a projected token of this ServiceAccount for STAGE_TOKEN_AUDIENCE (verified by TokenReview).
    stage_api_url: str = "http://mediaingest-api:8000"
    stage_service_account: str = Field("mediaingest-stage", alias="STAGE_SERVICE_ACCOUNT")
    stage_token_audience: str = Field("mediaingest-stage-report", alias="STAGE_TOKEN_AUDIENCE")
    stage_token_seconds: int = Field(3600, ge=600)  # the kubelet rotates it at 80 % of this
    stages: dict[Stage, StageConfig] = Field(default_factory=default_stage_configs)
    # Long enough for the operator to read a finished Job (and its pod's exit) before the TTL removes it.
    ttl_seconds_after_finished: int = Field(600, ge=60)
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
    # What a stage needs from outside its image, e.g. a larger transcription model: volumes (a PVC, a
    # ConfigMap), where the stage container mounts them, and init containers that fill them (pod spec
    # fields as Kubernetes takes them, added after ours).
    job_extra_volumes: list[dict[str, Any]] = []
    job_extra_volume_mounts: list[dict[str, Any]] = []
    job_init_containers: list[dict[str, Any]] = []
    # With Kueue installed: its LocalQueue for stage Jobs. Jobs are then created suspended with the
    # queue label and Kueue admits them (quotas, fair sharing, priorities, preemption).
    kueue_queue_name: str | None = None

    # --- the runner ----------------------------------------------------------------------------
    # Stage Jobs this operator keeps at once (created and not yet finished, admitted or waiting in Kueue).
    # Per-tenant fairness is the claim's (TENANT_MAX_RUNNING_STAGES), as for a worker.
    max_running_jobs: int = Field(200, ge=1)
    poll_interval_seconds: float = Field(1.0, gt=0)
    # The lease on each claimed task: heartbeated while its Job lives. A restarted operator takes up its
    # tasks under the same runner id; one gone longer than this has its tasks reaped and retried.
    lease_seconds: float = Field(300.0, ge=10)
    # A created Job the watch has not shown after this long was deleted: its attempt ended unrecorded.
    job_missing_seconds: float = Field(120.0, gt=0)

    # --- the MediaAssets -----------------------------------------------------------------------
    # How often unfinished MediaAssets are brought up to date from the database. A new phase is written at
    # once; any other change (stages running, progress, a retry) at most every `progress_interval_seconds`.
    projection_interval_seconds: float = Field(5.0, gt=0)
    progress_interval_seconds: float = Field(60.0, ge=0)
    # Ready and Failed MediaAssets are deleted this long after they finished (0: at once). Each is ~2 KB in
    # etcd; the database keeps the record and the API keeps answering for the asset.
    retention_seconds: float = Field(600.0, ge=0)

    # --- the Kubernetes API --------------------------------------------------------------------
    # A client-side budget for the operator's own calls (creates, patches, deletes, reads), like
    # client-go's QPS and burst: a burst of uploads never floods the API server.
    api_qps: float = Field(50.0, gt=0)
    api_burst: int = Field(100, ge=1)
    # Watches end server-side after this long and are started again, and a client-side timeout a little
    # longer ends one the network silently dropped; a stream that stays open and delivers not even a
    # bookmark for `watch_inactivity_seconds` is restarted too.
    watch_server_timeout_seconds: float = Field(300.0, gt=0)
    watch_connect_timeout_seconds: float = Field(30.0, gt=0)
    watch_inactivity_seconds: float = Field(90.0, gt=0)
    list_chunk_size: int = Field(500, ge=1)  # paged lists: memory holds one page, not every object

    @property
    def runner_id(self) -> str:
        """The operator's name on the tasks it holds: stable across restarts (one operator per release)."""
        return f"operator:{self.namespace}/{self.release or 'default'}"

    @field_validator("kueue_queue_name", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("run_as_user", mode="before")
    @classmethod
    def _no_user(cls, value: Any) -> Any:
        # The chart renders a null runAsUser as the text "null" (an environment variable is a string).
        return None if isinstance(value, str) and value.strip().lower() in ("", "null", "none") else value

    @field_validator("stage_images", mode="before")
    @classmethod
    def _registered_stages(cls, value: Any) -> Any:
        # A stage the registry does not know is refused by name (UnknownStageError), never silently unused.
        return {stage_named(key): image for key, image in value.items()} if isinstance(value, dict) else value

    def image_for(self, stage: Stage) -> str:
        """The image a Job of `stage` runs."""
        return self.stage_images.get(stage) or self.worker_image

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
