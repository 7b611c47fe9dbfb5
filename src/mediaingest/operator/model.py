"""Plain values the operator reads off Kubernetes: what one of its stage Jobs is observed to be doing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

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

    @property
    def past_deadline(self) -> bool:
        """Failed for running past its activeDeadlineSeconds: the Job says so, its pod has nothing to add."""
        return self.reason == "DeadlineExceeded"


def lookup(obj: Mapping[str, Any] | None, *path: str) -> Any:
    """`obj[path[0]][path[1]]…` of a Kubernetes object; None where a level is missing or null (the API
    server leaves empty fields out)."""
    value: Any = obj
    for key in path:
        value = (value or {}).get(key)
    return value
