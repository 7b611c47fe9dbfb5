"""The wire between a stage pod and the API: camelCase JSON, validated on both ends."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import Field

from mediaingest.models.enums import MediaType
from mediaingest.pipeline.types import MediaMetadata, StageOutput
from mediaingest.schemas import ApiModel

Role = Literal["processed", "proxies"]
PREFIX = "/internal/stage-run"  # where the API serves stage reports


class StageStart(ApiModel):
    """What a pod learns when its attempt starts: its input, and where to read the source."""

    media_type: MediaType
    source_suffix: str
    source_url: str
    source_etag: str | None  # the bytes verified at confirm; the pod refuses any other
    checksum: str | None
    declared_sha256: str | None
    metadata: dict[str, Any] | None


class ProgressReport(ApiModel):
    fraction: float = Field(ge=0.0, le=1.0)
    message: str = Field(max_length=1024)


class ProgressAnswer(ApiModel):
    current: bool  # False: another attempt (or nobody) owns the stage now; the pod stops


class PlayableReport(ApiModel):
    seconds: float = Field(ge=0.0)


class OutputFile(ApiModel):
    name: str = Field(max_length=600)
    role: Role
    size: int = Field(ge=0)
    content_type: str = Field(max_length=255)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class OutputFiles(ApiModel):
    files: list[OutputFile] = Field(min_length=1, max_length=100)


class SignedPut(ApiModel):
    name: str
    bucket: str
    key: str
    url: str
    headers: dict[str, str]
    expires_at: datetime


class SignedPuts(ApiModel):
    files: list[SignedPut]


class OutputRecord(ApiModel):
    """One final output, as `StageOutput` describes it (without the pod's local path)."""

    kind: str = Field(max_length=32)  # checked against the stage's declared kinds where it is recorded
    name: str = Field(max_length=600)
    role: Role
    format: str = Field(max_length=32)
    content_type: str = Field(max_length=255)
    resolution: str | None = Field(None, max_length=32)
    width: int | None = None
    height: int | None = None
    quality: str | None = Field(None, max_length=64)
    details: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, output: StageOutput) -> OutputRecord:
        return cls(
            kind=output.kind, name=output.key_name, role=output.bucket, format=output.format,
            content_type=output.content_type, resolution=output.resolution, width=output.width,
            height=output.height, quality=output.quality, details=output.details,
        )  # fmt: skip

    def to_output(self) -> StageOutput:
        return StageOutput(
            kind=self.kind, path=Path(PurePosixPath(self.name).name), bucket=self.role, format=self.format,
            content_type=self.content_type, resolution=self.resolution, width=self.width, height=self.height,
            quality=self.quality, details=self.details, name=self.name,
        )  # fmt: skip


class StageRecord(ApiModel):
    message: str = Field("", max_length=4000)
    metadata: dict[str, Any] | None = None
    measurements: dict[str, Any] = Field(default_factory=dict)
    outputs: list[OutputRecord] = Field(default_factory=list, max_length=200)
    checksum: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    published: list[str] = Field(default_factory=list, max_length=1_000_000)

    def metadata_value(self) -> MediaMetadata | None:
        return MediaMetadata.from_dict(self.metadata) if self.metadata is not None else None


class StageRecorded(ApiModel):
    completed: bool
    outputs: int


class FailureReport(ApiModel):
    message: str = Field(max_length=4000)
    permanent: bool


class DiscardReport(ApiModel):
    published: list[str] = Field(default_factory=list, max_length=100_000)
