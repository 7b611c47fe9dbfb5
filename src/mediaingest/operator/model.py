"""Plain values shared by the Job builders and the reconciler: what a MediaAsset asks for, and what
one of its Jobs is observed to be doing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mediaingest.models.enums import JobPriority, MediaType, Stage
from mediaingest.pipeline.registry import stage_named


@dataclass(frozen=True)
class AssetSpec:
    """A MediaAsset's spec, parsed. Raises ValueError for a spec the CRD schema should have refused."""

    asset_id: str
    owner: str
    media_type: MediaType
    bucket: str
    key: str
    size: int
    priority: JobPriority
    stages: tuple[Stage, ...]

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> AssetSpec:
        try:
            source = spec["source"]
            stages = tuple(stage_named(stage) for stage in spec["stages"])
            parsed = cls(
                asset_id=str(spec["assetId"]),
                owner=str(spec["owner"]),
                media_type=MediaType(spec["mediaType"]),
                bucket=str(source["bucket"]),
                key=str(source["key"]),
                size=int(spec.get("size") or 0),
                priority=JobPriority(spec.get("priority") or JobPriority.NORMAL),
                stages=stages,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"invalid MediaAsset spec: {exc!r}") from exc
        if not stages or len(set(stages)) != len(stages):
            raise ValueError("invalid MediaAsset spec: stages must be a non-empty list without repeats")
        return parsed

    def to_spec(self) -> dict[str, Any]:
        return {
            "assetId": self.asset_id,
            "owner": self.owner,
            "mediaType": self.media_type.value,
            "source": {"bucket": self.bucket, "key": self.key},
            "size": self.size,
            "priority": self.priority.value,
            "stages": list(self.stages),
        }


class JobState(StrEnum):
    ACTIVE = "active"  # created, pod pending or running
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class JobObservation:
    """One stage Job as last seen on the watch stream (kept in a kopf index)."""

    name: str
    stage: Stage
    attempt: int
    tenant: str  # the tenant label value (see naming.label_value)
    state: JobState
    started_at: str | None = None  # RFC 3339, as Kubernetes writes it
    finished_at: str | None = None
    reason: str | None = None  # the Failed condition's reason: PodFailurePolicy, DeadlineExceeded, …
    message: str | None = None
    exit_code: int | None = None  # from the pod, filled in by the handler for unsettled failures
    suspended: bool = False  # created suspended, not admitted yet (Kueue)
