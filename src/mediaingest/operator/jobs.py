"""Pure builders for the stage Jobs, and the pure reading of a Job's status.

No Kubernetes I/O here: `build_stage_job` returns the manifest the handler creates (after
`kopf.adopt` adds the owner reference), `observe_job` turns a watched Job into a `JobObservation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mediaingest.models.enums import Stage
from mediaingest.operator import naming
from mediaingest.operator.model import AssetSpec, JobObservation, JobState
from mediaingest.operator.settings import OperatorSettings
from mediaingest.pipeline.registry import stage_named
from mediaingest.stage_reports import tokens

SCRATCH_VOLUME = "scratch"
SCRATCH_PATH = "/scratch"
# The run-stage contract: exit 3 = the media is unusable, never retry; any other failure is transient.
PERMANENT_EXIT_CODE = 3
TERMINATION_MESSAGE_PATH = "/dev/termination-log"  # Kubernetes' default, named so run-stage knows it
TOKEN_KEY = "STAGE_TOKEN"  # noqa: S105 - the key of the token in its Secret, not a secret


def job_labels(*, asset: AssetSpec, stage: Stage, attempt: int, release: str | None = None) -> dict[str, str]:
    labels = {
        naming.LABEL_NAME: "mediaingest",
        naming.LABEL_COMPONENT: "stage-job",
        naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
        naming.LABEL_ASSET_ID: asset.asset_id,
        naming.LABEL_STAGE: stage,
        naming.LABEL_ATTEMPT: str(attempt),
        naming.LABEL_TENANT: naming.label_value(asset.owner),
        naming.LABEL_MEDIA_TYPE: asset.media_type.value,
    }
    if release:
        labels[naming.LABEL_RELEASE] = naming.label_value(release)
    return labels


def build_token_secret(
    *, asset: AssetSpec, asset_name: str, namespace: str, stage: Stage, attempt: int, settings: OperatorSettings
) -> dict[str, Any]:
    """The Secret holding the token a stage pod reports with: this asset, stage and attempt, for the stage's
    deadline plus the grace. Named like its Job; the handler makes the MediaAsset its owner."""
    ttl = settings.stages[stage].active_deadline_seconds + settings.stage_token_grace_seconds
    claims = tokens.StageClaims(asset_id=asset.asset_id, owner_id=asset.owner, stage=stage, attempt=attempt)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": naming.job_name(asset_name, stage, attempt),
            "namespace": namespace,
            "labels": job_labels(asset=asset, stage=stage, attempt=attempt, release=settings.release),
        },
        "type": "Opaque",
        "stringData": {TOKEN_KEY: tokens.issue(settings.stage_token_secret(), claims, ttl_seconds=ttl)},
    }


def _job_metadata_labels(labels: dict[str, str], settings: OperatorSettings) -> dict[str, str]:
    if settings.kueue_queue_name:
        return {**labels, naming.LABEL_KUEUE_QUEUE: settings.kueue_queue_name}
    return labels


def build_stage_job(
    *,
    asset: AssetSpec,
    asset_name: str,
    namespace: str,
    stage: Stage,
    attempt: int,
    settings: OperatorSettings,
) -> dict[str, Any]:
    """The batch/v1 Job that runs one attempt of one stage: `mediaingest run-stage …` in the worker image.

    The pod holds no credentials but its attempt's token, from the Secret of the Job's name
    (`build_token_secret`), good for this attempt only (`stage_reports.tokens`).
    """
    config = settings.stages[stage]
    labels = job_labels(asset=asset, stage=stage, attempt=attempt, release=settings.release)
    job_name = naming.job_name(asset_name, stage, attempt)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # Stage code talks to the API and to storage on signed URLs, never to the Kubernetes API.
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
            **(
                {"runAsUser": settings.run_as_user, "runAsGroup": settings.run_as_user, "fsGroup": settings.run_as_user}
                if settings.run_as_user is not None
                else {}
            ),
        },
        "containers": [
            {
                "name": naming.CONTAINER_NAME,
                "image": settings.worker_image,
                "imagePullPolicy": settings.image_pull_policy,
                "command": ["mediaingest"],
                "args": ["run-stage", "--asset", asset.asset_id, "--stage", stage, "--attempt", str(attempt)],
                # The release's settings (pipeline options), never its Secret: no database password, no
                # storage keys, no JWT secret in a pod that runs ffmpeg on untrusted uploads.
                "envFrom": [{"configMapRef": {"name": settings.job_config_map_name}}],
                # The root filesystem is read-only: downloads, ffmpeg temp files and HOME live on scratch.
                "env": [
                    {"name": "STAGE_API_URL", "value": settings.stage_api_url},
                    # From a Secret, not the pod spec: the `view` role may read Jobs but not Secrets.
                    {
                        "name": "STAGE_TOKEN",
                        "valueFrom": {"secretKeyRef": {"name": job_name, "key": TOKEN_KEY}},
                    },
                    {"name": "TERMINATION_MESSAGE_PATH", "value": TERMINATION_MESSAGE_PATH},
                    {"name": "WORK_DIR", "value": SCRATCH_PATH},
                    {"name": "TMPDIR", "value": SCRATCH_PATH},
                    {"name": "HOME", "value": SCRATCH_PATH},
                    *(dict(item) for item in settings.job_extra_env),
                ],
                "resources": {"requests": dict(config.requests), "limits": dict(config.limits)},
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "runAsNonRoot": True,
                    "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "volumeMounts": [{"name": SCRATCH_VOLUME, "mountPath": SCRATCH_PATH}],
                # The failure reason the operator copies into status: the stage's last words, or its log tail.
                "terminationMessagePath": TERMINATION_MESSAGE_PATH,
                "terminationMessagePolicy": "FallbackToLogsOnError",
            }
        ],
        "volumes": [{"name": SCRATCH_VOLUME, "emptyDir": {"sizeLimit": config.scratch_size_limit}}],
    }
    if settings.job_service_account:
        pod_spec["serviceAccountName"] = settings.job_service_account
    if settings.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": name} for name in settings.image_pull_secrets]
    if settings.node_selector:
        pod_spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        pod_spec["tolerations"] = [dict(toleration) for toleration in settings.tolerations]
    if settings.job_affinity:
        pod_spec["affinity"] = dict(settings.job_affinity)
    priority_class = settings.priority_class_names.get(asset.priority)
    if priority_class:
        pod_spec["priorityClassName"] = priority_class

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name,
            "namespace": namespace,
            "labels": _job_metadata_labels(labels, settings),
            "annotations": {naming.ANNOTATION_OWNER: asset.owner},
        },
        "spec": {
            # Under Kueue, created suspended: Kueue starts it once its queue admits it.
            **({"suspend": True} if settings.kueue_queue_name else {}),
            "backoffLimit": 0,  # the operator owns retries, with its own backoff and attempt count
            "activeDeadlineSeconds": config.active_deadline_seconds,
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


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def observe_job(body: Mapping[str, Any]) -> JobObservation | None:
    """What a watched Job says; None for a Job without the operator's labels."""
    metadata = body.get("metadata") or {}
    labels = metadata.get("labels") or {}
    try:
        stage = stage_named(labels[naming.LABEL_STAGE])
        attempt = int(labels[naming.LABEL_ATTEMPT])
    except (KeyError, ValueError):
        return None
    status = body.get("status") or {}
    suspended = bool((body.get("spec") or {}).get("suspend")) and not status.get("active")
    complete = _condition(status, "Complete")
    failed = _condition(status, "Failed")
    state = JobState.ACTIVE
    finished_at: str | None = None
    reason = message = None
    if complete is not None or (status.get("succeeded") or 0) > 0:
        state = JobState.SUCCEEDED
        finished_at = status.get("completionTime") or (complete or {}).get("lastTransitionTime")
    elif failed is not None or ((status.get("failed") or 0) > 0 and not status.get("active")):
        state = JobState.FAILED
        finished_at = (failed or {}).get("lastTransitionTime")
        reason = (failed or {}).get("reason")
        message = (failed or {}).get("message")
    return JobObservation(
        name=str(metadata.get("name")),
        stage=stage,
        attempt=attempt,
        tenant=str(labels.get(naming.LABEL_TENANT, "")),
        state=state,
        started_at=status.get("startTime"),
        finished_at=finished_at,
        reason=reason,
        message=message,
        suspended=suspended and state == JobState.ACTIVE,
    )
