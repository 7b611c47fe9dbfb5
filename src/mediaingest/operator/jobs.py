"""Pure builders for the stage Jobs, and the pure reading of a Job's status.

No Kubernetes I/O here: `build_stage_job` returns the manifest the runner creates for one claimed
attempt, `observe_job` turns a watched Job into a `KubeJobObservation`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from mediaingest.models.enums import JobPriority, Stage
from mediaingest.operator import naming
from mediaingest.operator.model import KubeJobObservation, KubeJobState, lookup
from mediaingest.operator.settings import OperatorSettings, StageConfig
from mediaingest.pipeline.registry import stage_named

SCRATCH_VOLUME = "scratch"
SCRATCH_PATH = "/scratch"
TOKEN_VOLUME = "stage-token"  # noqa: S105 - a volume name
TOKEN_DIR = "/var/run/secrets/mediaingest"  # noqa: S105 - where the kubelet projects it
TOKEN_FILE = f"{TOKEN_DIR}/token"
# The run-stage contract: exit 3 = the media is unusable, never retry; any other failure is transient.
PERMANENT_EXIT_CODE = 3
TERMINATION_MESSAGE_PATH = "/dev/termination-log"  # Kubernetes' default, named so run-stage knows it
MEMORY_SCALE_KEY = "memoryScale"  # in a stage task's payload: the memory factor of its next attempt
_MIB = 2**20


@dataclass(frozen=True)
class StageAttempt:
    """One claimed attempt, as the Job builder needs it (read from the task and its asset)."""

    task_id: str
    asset_id: str
    owner_id: str
    media_type: str
    priority: JobPriority
    stage: Stage
    attempt: int
    duration_seconds: float | None = None  # the probe's measure: the deadline grows with it
    memory_scale: int = 1  # doubled after each out-of-memory kill

    @property
    def job_name(self) -> str:
        return naming.job_name(naming.asset_resource_name(self.asset_id), self.stage, self.attempt)


def job_labels(attempt: StageAttempt, *, release: str | None = None) -> dict[str, str]:
    labels = {
        naming.LABEL_NAME: "mediaingest",
        naming.LABEL_COMPONENT: "stage-job",
        naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
        naming.LABEL_ASSET_ID: naming.label_value(attempt.asset_id),
        naming.LABEL_TASK: naming.label_value(attempt.task_id),
        naming.LABEL_STAGE: attempt.stage,
        naming.LABEL_ATTEMPT: str(attempt.attempt),
        naming.LABEL_TENANT: naming.label_value(attempt.owner_id),
        naming.LABEL_MEDIA_TYPE: attempt.media_type,
    }
    if release:
        labels[naming.LABEL_RELEASE] = naming.label_value(release)
    return labels


# A Kubernetes quantity's suffixes (apimachinery's resource.Quantity), binary and decimal.
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_QUANTITY = re.compile(r"([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?")


def parse_quantity(quantity: str | int | float) -> Decimal:
    """A quantity's value: "2Gi" → 2147483648, "500m" → 0.5, "1e3" → 1000; ValueError if it is none."""
    match = _QUANTITY.fullmatch(str(quantity).strip())
    if match is None:
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity")
    number, suffix = Decimal(match[1]), match[2] or ""
    if suffix in _BINARY:
        return number * 1024 ** _BINARY[suffix]
    if suffix in _DECIMAL:
        return number.scaleb(_DECIMAL[suffix])
    return number.scaleb(int(suffix[1:]))  # an exponent, e.g. 1e3


def _mebibytes(quantity: str) -> int:
    return int(parse_quantity(quantity) / _MIB)


def memory_for(config: StageConfig, scale: int) -> tuple[str, str]:
    """The memory request and limit of an attempt: the stage's, times `scale`, never above its cap."""
    cap = _mebibytes(config.memory_cap)
    request = _mebibytes(config.requests.get("memory", config.limits.get("memory", "256Mi")))
    limit = _mebibytes(config.limits.get("memory", config.requests.get("memory", "256Mi")))
    return f"{min(cap, request * scale)}Mi", f"{min(cap, max(limit, limit * scale))}Mi"


def next_memory_scale(config: StageConfig, scale: int) -> int | None:
    """The scale after an out-of-memory kill at `scale`; None once the cap is already reached."""
    _, limit = memory_for(config, scale)
    return None if _mebibytes(limit) >= _mebibytes(config.memory_cap) else scale * 2


def deadline_seconds(config: StageConfig, duration_seconds: float | None) -> int:
    return int(config.active_deadline_seconds + config.deadline_seconds_per_media_second * (duration_seconds or 0.0))


def _downward(name: str, resource: str, divisor: str) -> dict[str, Any]:
    field = {"containerName": naming.CONTAINER_NAME, "resource": resource, "divisor": divisor}
    return {"name": name, "valueFrom": {"resourceFieldRef": field}}


def build_stage_job(attempt: StageAttempt, *, namespace: str, settings: OperatorSettings) -> dict[str, Any]:
    """The batch/v1 Job that runs one attempt of one stage: `mediaingest run-stage …` in the worker image.

    The pod holds no credentials but a projected token of the stage ServiceAccount, minted by the kubelet
    for the API's audience when the pod starts (so none expires while Kueue holds the Job) and gone with
    the pod; the API ties it to this Job, and so to this attempt (`stage_reports.identity`).
    """
    config = settings.stages[attempt.stage]
    labels = job_labels(attempt, release=settings.release)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": settings.stage_service_account,
        # Its own token is projected below, for the API's audience only; the default one (for the
        # Kubernetes API, which stage code never calls) is not mounted.
        "automountServiceAccountToken": False,
        "securityContext": _pod_security(settings),
        "containers": [_stage_container(attempt, settings, config)],
        "volumes": _pod_volumes(settings, config),
        **_pod_placement(attempt, settings, config),
    }
    metadata_labels = dict(labels)
    if settings.kueue_queue_name:
        metadata_labels[naming.LABEL_KUEUE_QUEUE] = settings.kueue_queue_name
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": attempt.job_name,
            "namespace": namespace,
            "labels": metadata_labels,
            "annotations": {naming.ANNOTATION_OWNER: attempt.owner_id},
        },
        "spec": {
            # Under Kueue, created suspended: Kueue starts it once its queue admits it.
            **({"suspend": True} if settings.kueue_queue_name else {}),
            "backoffLimit": 0,  # the task queue owns retries: one Job per attempt
            "activeDeadlineSeconds": deadline_seconds(config, attempt.duration_seconds),
            "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
            "podFailurePolicy": {
                "rules": [
                    # Exit 3 fails the Job with reason PodFailurePolicy: permanent, readable without the pod.
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": naming.CONTAINER_NAME,
                            "operator": "In",
                            "values": [PERMANENT_EXIT_CODE],
                        },
                    },
                    # An evicted or preempted pod is not the media's fault: the Job replaces it for free.
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                ]
            },
            "template": {
                "metadata": {"labels": dict(labels), "annotations": dict(settings.job_pod_annotations)},
                "spec": pod_spec,
            },
        },
    }


def _pod_security(settings: OperatorSettings) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
        **(
            {"runAsUser": settings.run_as_user, "runAsGroup": settings.run_as_user, "fsGroup": settings.run_as_user}
            if settings.run_as_user is not None
            else {}
        ),
    }


def _stage_container(attempt: StageAttempt, settings: OperatorSettings, config: StageConfig) -> dict[str, Any]:
    memory_request, memory_limit = memory_for(config, attempt.memory_scale)
    requests = {**config.requests, "memory": memory_request}
    limits = {**config.limits, "memory": memory_limit}
    return {
        "name": naming.CONTAINER_NAME,
        "image": settings.image_for(attempt.stage),
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["mediaingest"],
        "args": [
            "run-stage",
            "--asset",
            attempt.asset_id,
            "--stage",
            attempt.stage,
            "--attempt",
            str(attempt.attempt),
        ],
        # The release's settings (pipeline options), never its Secret: no database password, no
        # storage keys, no JWT secret in a pod that runs ffmpeg on untrusted uploads.
        "envFrom": [{"configMapRef": {"name": settings.job_config_map_name}}],
        # The root filesystem is read-only: downloads, ffmpeg temp files and HOME live on scratch.
        "env": [
            {"name": "STAGE_API_URL", "value": settings.stage_api_url},
            {"name": "STAGE_TOKEN_FILE", "value": TOKEN_FILE},
            {"name": "TERMINATION_MESSAGE_PATH", "value": TERMINATION_MESSAGE_PATH},
            {"name": "WORK_DIR", "value": SCRATCH_PATH},
            {"name": "TMPDIR", "value": SCRATCH_PATH},
            {"name": "HOME", "value": SCRATCH_PATH},
            # ffmpeg sizes its threads and its memory cap from the pod's limits, not the node's.
            _downward("FFMPEG_THREADS", "limits.cpu", "1"),
            _downward("CONTAINER_MEMORY_LIMIT_MB", "limits.memory", "1Mi"),
            *(dict(item) for item in settings.job_extra_env),
        ],
        "resources": {"requests": requests, "limits": limits},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": SCRATCH_VOLUME, "mountPath": SCRATCH_PATH},
            {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True},
            *(dict(item) for item in settings.job_extra_volume_mounts),
        ],
        # The failure reason the operator shows: the stage's last words, or its log tail.
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _pod_volumes(settings: OperatorSettings, config: StageConfig) -> list[dict[str, Any]]:
    return [
        {"name": SCRATCH_VOLUME, "emptyDir": {"sizeLimit": config.scratch_size_limit}},
        {
            "name": TOKEN_VOLUME,
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": settings.stage_token_audience,
                            "expirationSeconds": settings.stage_token_seconds,
                            "path": "token",
                        }
                    }
                ]
            },
        },
        *(dict(item) for item in settings.job_extra_volumes),
    ]


def _pod_placement(attempt: StageAttempt, settings: OperatorSettings, config: StageConfig) -> dict[str, Any]:
    """The pod's optional fields (init containers, pull secrets, where and how it is scheduled): set ones only."""
    fields: dict[str, Any] = {
        "initContainers": [dict(item) for item in settings.job_init_containers],
        "imagePullSecrets": [{"name": name} for name in settings.image_pull_secrets],
        # The stage's own placement adds to (node selector, tolerations) or replaces (affinity) the release's.
        "nodeSelector": {**settings.node_selector, **config.node_selector},
        "tolerations": [dict(toleration) for toleration in (*settings.tolerations, *config.tolerations)],
        "affinity": dict(config.affinity or settings.job_affinity),
        "priorityClassName": config.priority_class_name or settings.priority_class_names.get(attempt.priority),
        "runtimeClassName": config.runtime_class_name,
    }
    return {name: value for name, value in fields.items() if value}


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def observe_job(body: Mapping[str, Any]) -> KubeJobObservation | None:
    """What a watched Job says; None for a Job without the operator's labels."""
    labels = lookup(body, "metadata", "labels") or {}
    try:
        stage = stage_named(labels[naming.LABEL_STAGE])
        attempt = int(labels[naming.LABEL_ATTEMPT])
        task_id = str(labels[naming.LABEL_TASK])
    except (KeyError, ValueError):
        return None
    status = body.get("status") or {}
    state, failed = _job_state(status)
    return KubeJobObservation(
        name=str(lookup(body, "metadata", "name")),
        task_id=task_id,
        stage=stage,
        attempt=attempt,
        state=state,
        reason=failed.get("reason"),
        message=failed.get("message"),
        suspended=state == KubeJobState.ACTIVE and _awaiting_admission(body),
    )


def _awaiting_admission(body: Mapping[str, Any]) -> bool:
    """Created suspended and no pod started yet: Kueue has not admitted it."""
    return bool(lookup(body, "spec", "suspend")) and not lookup(body, "status", "active")


def _job_state(status: Mapping[str, Any]) -> tuple[KubeJobState, Mapping[str, Any]]:
    """The Job's state from its status, and its Failed condition (empty unless it failed)."""
    if _succeeded(status):
        return KubeJobState.SUCCEEDED, {}
    if _failed(status):
        return KubeJobState.FAILED, _condition(status, "Failed") or {}
    return KubeJobState.ACTIVE, {}


def _succeeded(status: Mapping[str, Any]) -> bool:
    """Complete, or its pod succeeded (the counts can run ahead of the condition)."""
    return _condition(status, "Complete") is not None or (status.get("succeeded") or 0) > 0


def _failed(status: Mapping[str, Any]) -> bool:
    """Failed, or its pod failed and none runs in its place (the counts can run ahead of the condition)."""
    return _condition(status, "Failed") is not None or ((status.get("failed") or 0) > 0 and not status.get("active"))
