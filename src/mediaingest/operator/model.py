"""Plain values the operator reads off Kubernetes: what one of its stage Jobs is observed to be doing."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mediaingest.models.enums import Stage


class KubeJobState(StrEnum):
    """A Kubernetes stage Job as observed on the watch stream (its task's status is `TaskStatus`)."""

    ACTIVE = "active"  # created, pod pending or running (or suspended, waiting for Kueue)
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class KubeJobObservation:
    """One stage Job as last seen on the watch stream (kept in a kopf index, by its task)."""

    name: str
    task_id: str
    stage: Stage
    attempt: int
    state: KubeJobState
    reason: str | None = None  # the Failed condition's reason: PodFailurePolicy, DeadlineExceeded, …
    message: str | None = None
    suspended: bool = False  # created suspended, not admitted yet (Kueue)
