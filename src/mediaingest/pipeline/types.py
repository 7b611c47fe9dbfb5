"""Values the stages return: what was measured (MediaMetadata, Measurements) and what was written (StageOutput).

Stages never touch the database or object storage; the worker (or a Kubernetes Job) turns these
values into AssetMetadata / AssetProxy rows and uploads the files they name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from pydantic_core import to_jsonable_python

ProgressCallback = Callable[[float, str], None]
"""Called with a fraction in [0, 1] and a short message; never more than a few times a second."""


@dataclass(frozen=True)
class LiveOutputs:
    """How a stage publishes files before it ends (HLS segments and playlists while ffmpeg writes them).

    Stages still never touch storage or the database themselves: the caller (the stage runner) decides
    what publishing and being playable mean.
    """

    publish: Callable[[Path, str], None]  # stores the file under a name relative to the stage's folder
    playable: Callable[[float], None]  # seconds from the start that can now be played


Bucket = Literal["processed", "proxies"]


class Measurements(BaseModel):
    """What a stage after the probe measured: each StageSpec names a subclass (`StageSpec.measurements`).

    Stored as JSON under the stage's name on the asset's metadata row (`AssetMetadata.measurements`), so a
    new field or a new stage needs no migration; the API documents and returns it from this model.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    # Fields kept in the AssetMetadata column of the same name instead of the JSON: a value the probe's
    # record already holds (and the stage refines), or one a database index reads (the transcript's text).
    # A new measurement never needs one. A field declared `Field(exclude=True)` is stored but not sent.
    columns: ClassVar[frozenset[str]] = frozenset()

    def stored(self) -> dict[str, Any]:
        """The JSON kept under the stage's name: every field but the columns, sent or not."""
        return {
            name: to_jsonable_python(getattr(self, name))
            for name in type(self).model_fields
            if name not in self.columns
        }

    @classmethod
    def sent(cls) -> frozenset[str]:
        """The fields the API sends: all but those declared `Field(exclude=True)` (which need a default)."""
        return frozenset(name for name, info in cls.model_fields.items() if not info.exclude)

    def column_values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.columns}


@dataclass
class MediaMetadata:
    """What probe measured. Field names mirror the AssetMetadata columns one to one."""

    format_name: str | None = None
    duration_seconds: float | None = None
    bitrate: int | None = None
    # video
    video_codec: str | None = None
    video_profile: str | None = None
    video_bitrate: int | None = None
    width: int | None = None  # as stored in the stream, before sample aspect ratio and rotation
    height: int | None = None
    display_width: int | None = None  # as shown: sample aspect ratio and rotation applied
    display_height: int | None = None
    display_aspect_ratio: str | None = None  # "16:9", of the displayed picture
    rotation: int = 0  # degrees clockwise to turn the stored picture for display: 0, 90, 180, 270
    fps: float | None = None  # the container's average, as ffprobe reports it
    frame_rate: str | None = None  # the timeline rate every proxy is encoded at, exact: "30000/1001"
    is_variable_frame_rate: bool | None = None
    frame_count: int | None = None  # frames in the source's picture stream, counted from its packets
    timecode: str | None = None  # start timecode, "01:00:00:00" (";" before the frames when drop-frame)
    pixel_format: str | None = None
    bit_depth: int | None = None
    color_space: str | None = None
    color_primaries: str | None = None
    color_transfer: str | None = None
    color_range: str | None = None
    has_hdr: bool = False
    hdr_format: str | None = None  # "PQ" or "HLG"
    mastering_display: dict[str, float] | None = None
    content_light_level: dict[str, int] | None = None  # {"MaxCLL": …, "MaxFALL": …}
    # audio
    audio_codec: str | None = None
    audio_bitrate: int | None = None
    channels: int | None = None
    channel_layout: str | None = None
    sample_rate: int | None = None
    has_audio: bool = False
    audio_tracks: list[dict[str, Any]] | None = None  # every audio stream: index, codec, channels, layout…
    has_video: bool = False  # a real picture stream; cover art attached to audio does not count
    # images
    color_depth: int | None = None  # bits per channel
    has_alpha: bool = False
    exif: dict[str, Any] | None = None
    iptc: dict[str, Any] | None = None
    image_format: str | None = None  # Pillow's name: "JPEG", "PNG", …
    raw: dict[str, Any] | None = None  # ffprobe's JSON as it came
    # What the later stages measured, by stage: their Measurements as stored (the probe leaves it empty).
    measurements: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def measured(self, stage: str, name: str) -> Any:
        """What `stage` measured as `name` (`measured("proxies", "shots")`), None before it has."""
        return (self.measurements.get(stage) or {}).get(name)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MediaMetadata:
        """Rebuild from a stored row or JSON; unknown keys (ids, timestamps) are ignored."""
        names = {f.name for f in fields(cls)}
        found = {key: value for key, value in data.items() if key in names}
        if found.get("measurements") is None:  # a row written before the stages' JSON existed
            found.pop("measurements", None)
        return cls(**found)


@dataclass
class StageOutput:
    """One file a stage wrote into its output folder; the worker uploads it under a key built from path.name."""

    kind: str  # one of the kinds its StageSpec declares (`StageSpec.outputs`); ProxyType names the built-in ones
    path: Path
    bucket: Bucket
    format: str  # "mp4", "webm", "jpeg", "webp", "png", "vtt", "json"
    content_type: str
    resolution: str | None = None  # "720p" for video renditions, "1280x720" for stills
    width: int | None = None
    height: int | None = None
    quality: str | None = None  # how it was encoded, e.g. "crf23/veryfast", "q85", "copy"
    details: dict[str, Any] = field(default_factory=dict)
    name: str | None = None  # its name under the stage's folder when not path.name ("hls/master.m3u8")

    @property
    def key_name(self) -> str:
        return self.name or self.path.name


@dataclass
class StageResult:
    outputs: list[StageOutput] = field(default_factory=list)
    metadata: MediaMetadata | None = None  # set by probe only: the whole record
    # What a later stage measured on its way (loudness in the audio pass, shots in the picture pass): the
    # fields of its StageSpec's Measurements model, checked against it where the result is recorded.
    measurements: dict[str, Any] = field(default_factory=dict)
    message: str = ""
