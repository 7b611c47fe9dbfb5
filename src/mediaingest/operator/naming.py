"""The MediaAsset API coordinates, the labels the operator puts on its Jobs, and deterministic names.

Names and label values are derived, never random, so every reconciliation of the same asset, stage
and attempt arrives at the same Job and a create that finds it existing is a success.
"""

from __future__ import annotations

import hashlib
import re

from mediaingest.models.enums import Stage

GROUP = "mediaingest.io"
VERSION = "v1alpha1"
PLURAL = "mediaassets"
KIND = "MediaAsset"
API_VERSION = f"{GROUP}/{VERSION}"

# Labels on every Job (and its pod template) the operator creates.
LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "mediaingest-operator"
LABEL_ASSET_ID = f"{GROUP}/asset-id"
LABEL_STAGE = f"{GROUP}/stage"
LABEL_ATTEMPT = f"{GROUP}/attempt"
LABEL_TENANT = f"{GROUP}/tenant"
LABEL_MEDIA_TYPE = f"{GROUP}/media-type"
LABEL_TASK = f"{GROUP}/task-id"  # the queue's task whose attempt a Job runs
LABEL_FINISHED = f"{GROUP}/finished"  # "true" on a Ready or Failed MediaAsset: watches leave it out
LABEL_KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
# The Helm release (K8S_RELEASE) that made a MediaAsset or Job: each release's operator handles its own.
LABEL_RELEASE = f"{GROUP}/release"
# Label values are limited to 63 characters of a narrow alphabet; the raw owner id goes here instead.
ANNOTATION_OWNER = f"{GROUP}/owner"

CONTAINER_NAME = "stage"
MAX_NAME = 63  # a Job's name becomes its pods' `job-name` label value, so 63, not 253
# A Job's pods are named `<job>-<5 random>`, from a prefix the API server cuts at 58 characters: at most 57
# keeps the whole Job name in its pods' names, which is how a stage pod's token is tied to its attempt.
MAX_JOB_NAME = 57

_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_NOT_LABEL_CHARS = re.compile(r"[^-A-Za-z0-9_.]+")
_NOT_DNS_CHARS = re.compile(r"[^-a-z0-9]+")


def _digest(value: str, length: int = 8) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:length]


def asset_resource_name(asset_id: str) -> str:
    """`asset-<id>`: the MediaAsset for an asset id (a UUID gives 42 characters)."""
    base = _NOT_DNS_CHARS.sub("-", asset_id.lower()).strip("-")
    name = f"asset-{base}"
    if len(name) > MAX_NAME or base != asset_id:
        # Keep it a DNS label and still unique: ids that needed rewriting get a hash of the original.
        name = f"{name[: MAX_NAME - 9].rstrip('-')}-{_digest(asset_id)}"
    return name


def stage_slug(stage: Stage) -> str:
    return stage.replace("_", "-")


def job_name(asset_name: str, stage: Stage, attempt: int) -> str:
    """`<asset>-<stage>-<attempt>`, shortened with a hash of the full name when over 57 characters."""
    suffix = f"-{stage_slug(stage)}-{attempt}"
    name = f"{asset_name}{suffix}"
    if len(name) <= MAX_JOB_NAME:
        return name
    keep = MAX_JOB_NAME - len(suffix) - 9
    return f"{asset_name[:keep].rstrip('-')}-{_digest(asset_name)}{suffix}"


def label_value(value: str) -> str:
    """A valid label value that stays distinct for distinct inputs (owner ids may hold `|`, `@`, …)."""
    if _LABEL_VALUE.match(value):
        return value
    cleaned = _NOT_LABEL_CHARS.sub("-", value).strip("-_.")[:54].strip("-_.")
    return f"{cleaned}-{_digest(value)}" if cleaned else _digest(value, 16)
