"""Values the stages return: what was measured (MediaMetadata) and what was written (StageOutput).

Stages never touch the database or object storage; the worker (or a Kubernetes Job) turns these
values into AssetMetadata / AssetProxy rows and uploads the files they name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from mediaingest.models.enums import ProxyType

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
    loudness: dict[str, Any] | None = None  # EBU R128 of the first track: integratedLufs, loudnessRangeLu, …
    has_video: bool = False  # a real picture stream; cover art attached to audio does not count
    # images
    color_depth: int | None = None  # bits per channel
    has_alpha: bool = False
    exif: dict[str, Any] | None = None
    iptc: dict[str, Any] | None = None
    image_format: str | None = None  # Pillow's name: "JPEG", "PNG", …
    raw: dict[str, Any] | None = None  # ffprobe's JSON as it came
    shots: list[float] | None = None  # seconds where the picture cuts to a new shot
    # what is said (the transcript stage): its language, its text for full-text search, and each
    # segment's text with its words' starts, to say where a search hit is said
    transcript_language: str | None = None
    transcript_text: str | None = None
    transcript_segments: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MediaMetadata:
        """Rebuild from a stored row or JSON; unknown keys (ids, timestamps) are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


@dataclass
class StageOutput:
    """One file a stage wrote into its output folder; the worker uploads it under a key built from path.name."""

    kind: ProxyType
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
    # What a later stage measured on its way (loudness in the audio pass, shots in the picture pass):
    # MediaMetadata field names and values, written over the probe's record.
    measurements: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.measurements) - {f.name for f in fields(MediaMetadata)}
        if unknown:
            raise ValueError(f"not metadata fields: {sorted(unknown)}")
