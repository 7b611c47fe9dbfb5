"""Plain values the operator reads off Kubernetes: what one of its stage Jobs is observed to be doing."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mediaingest.models.enums import Stage


class JobState(StrEnum):
    ACTIVE = "active"  # created, pod pending or running (or suspended, waiting for Kueue)
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class JobObservation:
    """One stage Job as last seen on the watch stream (kept in a kopf index, by its task)."""

    name: str
    task_id: str
    stage: Stage
    attempt: int
    state: JobState
    reason: str | None = None  # the Failed condition's reason: PodFailurePolicy, DeadlineExceeded, …
    message: str | None = None
    suspended: bool = False  # created suspended, not admitted yet (Kueue)
