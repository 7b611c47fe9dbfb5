"""Request and response bodies of the asset endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import structlog
from pydantic import (
    AliasChoices,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    computed_field,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from mediaingest.models.enums import (
    AssetProcessingStatus,
    IngestionJobStatus,
    IngestionJobType,
    JobPriority,
    MediaType,
    UploadStatus,
)
from mediaingest.pipeline.registry import Presentation
from mediaingest.pipeline.types import Measurements
from mediaingest.schemas import ApiModel, ErrorEnvelope, RequestModel

log = structlog.stdlib.get_logger(__name__)


class UploadUrlRequest(RequestModel):
    # The examples make Swagger's "Try it out" body a request the service accepts (not "string").
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"fileName": "interview.mp4", "fileSize": 157286400, "mimeType": "video/mp4", "projectId": "launch"}
            ]
        }
    )

    file_name: str = Field(min_length=1, max_length=1024, examples=["interview.mp4"])
    file_size: int = Field(
        description="Bytes; checked against the 5 GiB cap and the plan's quota.", examples=[157286400]
    )
    mime_type: str = Field(min_length=3, max_length=128, examples=["video/mp4"])
    project_id: str | None = Field(None, max_length=128, examples=["launch"])
    sha256: str | None = Field(
        None, pattern=r"^[0-9a-fA-F]{64}$", description="Hex SHA-256 of the file; verified on confirm."
    )
    multipart: bool | None = Field(
        None,
        description="true for parts, false for one PUT (up to 5 GiB); default: parts above MULTIPART_THRESHOLD, "
        "or when partSize is given.",
    )
    part_size: int | None = Field(
        None,
        description="Multipart only: the size of every part but the last (at least 5 MiB, at most 10,000 parts). "
        "Default: the server's MULTIPART_PART_SIZE, larger when the file needs it.",
    )


class PresignedPart(ApiModel):
    part_number: int
    url: str
    size: int
    headers: dict[str, str] = Field(description="Send exactly these headers with the PUT (they are signed).")


class MultipartUpload(ApiModel):
    upload_id: str
    part_size: int
    parts: list[PresignedPart]


class UploadUrlResponse(ApiModel):
    asset_id: str
    storage_key: str
    file_name: str
    expires_at: datetime = Field(description="When these URLs expire; GET /api/assets/{id}/upload signs new ones.")
    session_expires_at: datetime = Field(
        description="When the upload is abandoned if nothing happens meanwhile; each part, and each request "
        "for URLs, moves it forward."
    )
    method: str = "PUT"
    upload_url: str | None = Field(None, description="Single-part upload: PUT the whole file here.")
    headers: dict[str, str] = Field(default_factory=dict, description="Send these headers with the PUT.")
    multipart: MultipartUpload | None = Field(None, description="Files above the multipart threshold.")


class ReceivedPart(ApiModel):
    part_number: int
    size: int
    etag: str


class UploadState(ApiModel):
    """Where an upload in progress stands, and what is left to send (the resume API)."""

    asset_id: str
    upload_status: UploadStatus
    file_size: int
    upload_id: str | None = Field(None, description="Multipart uploads only.")
    part_size: int | None = None
    received_parts: list[ReceivedPart] = Field(
        default_factory=list, description="The parts storage holds, with the ETags to confirm them with."
    )
    parts: list[PresignedPart] = Field(
        default_factory=list, description="Fresh URLs for exactly the parts still missing (no checksum signed in)."
    )
    upload_url: str | None = Field(None, description="Single-part upload not stored yet: PUT the file here.")
    headers: dict[str, str] = Field(default_factory=dict, description="Send these headers with that PUT.")
    complete: bool = Field(description="Every byte is in storage: confirm the upload.")
    etag: str | None = Field(None, description="Single-part upload stored: the ETag to confirm it with.")
    expires_at: datetime = Field(description="When these URLs expire.")
    session_expires_at: datetime


class PartToSign(RequestModel):
    part_number: int = Field(ge=1, le=10_000)
    sha256: str | None = Field(
        None, pattern=r"^[0-9a-fA-F]{64}$", description="Hex SHA-256 of the part: storage refuses other bytes."
    )


class SignPartsRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"parts": [{"partNumber": 1}, {"partNumber": 2}]}]})

    parts: list[PartToSign] = Field(min_length=1, max_length=1000)


class SignedParts(ApiModel):
    parts: list[PresignedPart]
    expires_at: datetime
    session_expires_at: datetime


class AbortedUpload(ApiModel):
    asset_id: str
    aborted: bool = True


class ConfirmedPart(RequestModel):
    part_number: int = Field(ge=1, le=10_000)
    etag: str = Field(min_length=1, max_length=128)


class ConfirmUploadRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"assetId": "4ed1c2d0-9b1e-4c55-8a57-2f0d5a9c1e77", "etag": '"9b2cf535f27731c974343645a3985328"'}
            ]
        }
    )

    asset_id: str = Field(min_length=1, max_length=36, examples=["4ed1c2d0-9b1e-4c55-8a57-2f0d5a9c1e77"])
    etag: str | None = Field(None, max_length=128, description="The ETag the storage answered the PUT with.")
    parts: list[ConfirmedPart] | None = Field(None, max_length=10_000)

    @model_validator(mode="after")
    def _etag_or_parts(self) -> ConfirmUploadRequest:
        if not self.etag and not self.parts:
            raise ValueError("etag is required (or parts, for a multipart upload)")
        return self


class ConfirmUploadResponse(ApiModel):
    asset_id: str
    etag: str
    checksum: str | None = Field(None, description="SHA-256 of the stored bytes, once known.")
    upload_status: UploadStatus
    processing_status: AssetProcessingStatus


class _RegisteredOutputKinds:
    """Documents AssetProxy.type as the component `ProxyType` (its name while it was a closed enum), listing
    the output kinds the stages registered when the document is generated declare (after STAGE_MODULES)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.str_schema(ref="ProxyType")

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        from mediaingest.pipeline.registry import output_kinds

        reference = handler(schema)
        definition = handler.resolve_ref_schema(reference)
        definition.update(title="ProxyType", enum=list(output_kinds()))
        return reference


class ProxyOut(ApiModel):
    id: str
    type: Annotated[str, _RegisteredOutputKinds()]
    label: str = Field("", description="What the page calls this kind of output (from its stage's declaration).")
    shown_as: Presentation | None = Field(
        None,
        description="How the page shows it: image (a still), strip (a picture along the media's time), video, "
        "audio, or a link to the file (vtt, json, text, playlist). Null for a kind no loaded stage declares.",
    )
    note: str | None = Field(None, description="A hint the page adds to the label.")
    resolution: str | None
    format: str
    content_type: str
    size_bytes: int
    quality: str | None
    width: int | None
    height: int | None
    details: dict[str, Any] | None
    url: str | None = None

    @computed_field(description="The seed's flag: a proxy is listed only once its file is stored, so always true.")
    def is_processed(self) -> bool:
        return True

    @model_validator(mode="after")
    def _shown_from_registry(self) -> ProxyOut:
        from mediaingest.pipeline.registry import output_kinds

        declared = output_kinds().get(self.type)
        if declared is not None:
            self.label, self.shown_as, self.note = declared.label, declared.shown_as, declared.note
        else:
            self.label = self.label or self.type
        return self


class _RegisteredMeasurements:
    """Documents `measurements` as an object with one property per stage that declares a Measurements model
    (each that model's schema), for the stages registered when the document is generated."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return handler(source)

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        from mediaingest.pipeline.registry import measured_by

        return {
            "type": "object",
            "title": "StageMeasurements",
            "properties": {stage: handler(model.__pydantic_core_schema__) for stage, model in measured_by().items()},
        }


def _readable_measurements(stored: dict[str, dict[str, Any]]) -> dict[str, Measurements]:
    """Each stage's stored measurements read through the stage's model: the fields it sends (what an earlier
    version stored, and what is kept unsent, are left alone). A stage no longer loaded is left out (its data
    is kept, not described, so not sent), and so are measurements its model can no longer read."""
    from mediaingest.pipeline.registry import measured_by

    models = measured_by()
    readable: dict[str, Measurements] = {}
    for stage, measured in stored.items():
        model = models.get(stage)
        if model is None:
            continue
        try:
            readable[stage] = model.model_validate(
                {key: value for key, value in measured.items() if key in model.sent()}
            )
        except ValidationError:
            log.warning("asset.measurements_unreadable", stage=stage, model=model.__name__)
    return readable


class MetadataOut(ApiModel):
    format_name: str | None = None
    duration_seconds: float | None = None
    bitrate: int | None = None
    video_codec: str | None = None
    video_profile: str | None = None
    video_bitrate: int | None = None
    width: int | None = None
    height: int | None = None
    display_width: int | None = None
    display_height: int | None = None
    display_aspect_ratio: str | None = None
    rotation: int | None = None
    fps: float | None = None
    frame_rate: str | None = Field(
        None, description='The timeline rate every video proxy is encoded at, exact: "30000/1001".'
    )
    is_variable_frame_rate: bool | None = Field(None, description="The source's frame intervals vary (phones).")
    frame_count: int | None = Field(None, description="Frames in the source's picture stream.")
    timecode: str | None = Field(
        None, description='Start timecode of the source, also written into every MP4 proxy; ";" marks drop-frame.'
    )
    pixel_format: str | None = None
    bit_depth: int | None = None
    color_space: str | None = None
    color_primaries: str | None = None
    color_transfer: str | None = None
    color_range: str | None = None
    has_hdr: bool = False
    hdr_format: str | None = None
    mastering_display: dict[str, Any] | None = None
    content_light_level: dict[str, Any] | None = None
    audio_codec: str | None = None
    audio_bitrate: int | None = None
    channels: int | None = None
    channel_layout: str | None = None
    sample_rate: int | None = None
    has_audio: bool = False
    audio_tracks: list[dict[str, Any]] | None = Field(
        None,
        description="Every audio track: index, streamIndex, codec, channels, channelLayout, sampleRate, language, "
        "title, and its loudness once the audio stage has measured it.",
    )
    loudness: dict[str, Any] | None = Field(None, description="measurements.audio_visuals.loudness, here too.")
    has_video: bool = False
    color_depth: int | None = None
    has_alpha: bool | None = None
    image_format: str | None = None
    exif: dict[str, Any] | None = None
    iptc: dict[str, Any] | None = None
    shots: list[float] | None = Field(None, description="measurements.proxies.shots, here too.")
    transcript_language: str | None = Field(
        None, description="measurements.transcript.transcriptLanguage, here too. The text: the outputs."
    )
    measurements: Annotated[dict[str, dict[str, Any]], _RegisteredMeasurements()] = Field(
        default_factory=dict,
        description="What each stage after the probe measured, by stage, as its StageSpec declares. A field that "
        "was on the wire before its stage declared it (loudness, shots, transcriptLanguage) is also above.",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_record(cls, data: Any) -> Any:
        """An AssetMetadata row: its columns, then each stage's stored measurements, sent through the stage's
        model (its names and what it sends). A field named above that is no column (loudness, shots,
        transcriptLanguage) is read from them; a measurement never hides a column of the same name."""
        if isinstance(data, dict):
            return data
        values = {name: getattr(data, name) for name in cls.model_fields if hasattr(data, name)}
        readable = _readable_measurements(getattr(data, "measurements", None) or {})
        for known in readable.values():
            shown = cls.model_fields.keys() - values.keys()  # loudness, shots, transcript_language: not columns
            values.update({name: getattr(known, name) for name in shown & type(known).model_fields.keys()})
        values["measurements"] = {
            stage: known.model_dump(mode="json", by_alias=True) for stage, known in readable.items()
        }
        return values

    # The seed's names for the same facts (the main product reads these); each is derived from its richer
    # field above, so the two can never disagree.
    @computed_field(description="The seed's name for durationSeconds.")
    def duration(self) -> float | None:
        return self.duration_seconds

    @computed_field(description="The seed's name for videoCodec.")
    def codec_video(self) -> str | None:
        return self.video_codec

    @computed_field(description="The seed's name for audioCodec.")
    def codec_audio(self) -> str | None:
        return self.audio_codec

    @computed_field(description="The seed's name for displayAspectRatio.")
    def aspect_ratio(self) -> str | None:
        return self.display_aspect_ratio

    @computed_field(alias="hasHDR", description="The seed's name for hasHdr.")
    def has_hdr_seed(self) -> bool:
        return self.has_hdr

    @computed_field(description="The seed's name for audioBitrate.")
    def bitrate_audio(self) -> int | None:
        return self.audio_bitrate

    @computed_field(description="The seed's name for exif.")
    def exif_data(self) -> dict[str, Any] | None:
        return self.exif

    @computed_field(description="The seed's name for iptc.")
    def iptc_data(self) -> dict[str, Any] | None:
        return self.iptc


class SpokenMatch(ApiModel):
    seconds: float = Field(description="Where the searched words are first said (the first word's start).")
    text: str = Field(description="The words around them, as said (… where cut).")


class AssetSummary(ApiModel):
    id: str
    user_id: str = Field(
        validation_alias=AliasChoices("owner_id", "user_id", "userId"),
        serialization_alias="userId",
        description="The owner (the seed's MediaAsset.userId).",
    )
    name: str
    original_name: str
    type: MediaType
    file_size: int
    mime_type: str
    upload_status: UploadStatus
    processing_status: AssetProcessingStatus
    project_id: str | None
    etag: str | None
    checksum: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    uploaded_at: datetime | None
    processed_at: datetime | None
    poster_url: str | None = Field(None, description="In listings: the poster's (or thumbnail's) signed URL.")
    duration_seconds: float | None = Field(None, description="In listings: the media's length, once probed.")
    spoken_match: SpokenMatch | None = Field(
        None, description="In a search (`q`): where the asset says the searched words, when it does."
    )
    parent_id: str | None = Field(None, description="A clip's parent: the asset it was cut from.")
    clip: dict[str, Any] | None = Field(None, description="A clip's range of its parent: inFrame, outFrame, …")


class Playback(ApiModel):
    hls_url: str | None = Field(None, description="Signed master playlist (CMAF HLS); set once `ready`.")
    ready: bool = Field(description="At least one segment of one rendition can be played.")
    playable_seconds: float = Field(description="Seconds from the start that play now; grows while ingesting.")
    complete: bool = Field(description="Every rendition's playlist is finished (the proxies pass is done).")


class AssetDetail(AssetSummary):
    storage_bucket: str
    storage_key: str
    download_url: str | None = Field(None, description="The original, signed; it stops working at downloadExpiresAt.")
    download_expires_at: datetime | None = None
    playback: Playback | None = Field(None, description="HLS playback, from the first segment on (video only).")
    metadata: MetadataOut | None = None
    proxies: list[ProxyOut] = Field(default_factory=list)
    ingestion_jobs: list[IngestionJobOut] = Field(
        default_factory=list, description="Every stage's job, in the seed's IngestionJob shape, oldest first."
    )


class AssetPage(ApiModel):
    items: list[AssetSummary]
    total: int
    page: int
    page_size: int


class DeletedAsset(ApiModel):
    asset_id: str
    deleted: bool = True


class _RegisteredJobTypes:
    """Documents IngestionJob.type as the component `IngestionJobType` (its name while it was a closed enum),
    listing the job types of the stages registered when the document is generated (after STAGE_MODULES)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.str_schema(ref="IngestionJobType")

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        from mediaingest.pipeline.registry import stages

        reference = handler(schema)
        definition = handler.resolve_ref_schema(reference)
        definition.update(title="IngestionJobType", enum=[spec.job_type for spec in stages()])
        return reference


class JobOut(ApiModel):
    id: str
    type: Annotated[IngestionJobType, _RegisteredJobTypes()]
    label: str = Field("", description="What the stage does, in words for people (from the stage registry).")
    status: IngestionJobStatus
    progress: float
    message: str | None
    error: str | None
    retries: int
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None

    @model_validator(mode="after")
    def _label_from_registry(self) -> JobOut:
        if not self.label:
            from mediaingest.pipeline.registry import label_for

            self.label = label_for(self.type)
        return self


class IngestionJobOut(JobOut):
    """The seed's IngestionJob: status, type, priority, progress, message, logs, retries and error."""

    priority: JobPriority
    logs: list[dict[str, Any]] = Field(default_factory=list, description="What happened to the job, oldest first.")
    created_at: datetime
    updated_at: datetime


class AssetStatus(ApiModel):
    asset_id: str
    upload_status: UploadStatus
    processing_status: AssetProcessingStatus
    error: str | None
    current_job: JobOut | None
    jobs: list[JobOut]
    playback: Playback | None = None


UNKNOWN_ASSET: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorEnvelope, "description": "No such asset for this user"}
}
