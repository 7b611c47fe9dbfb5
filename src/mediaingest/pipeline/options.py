"""The knobs of the stage functions, gathered once from Settings so stages never read the environment."""

from __future__ import annotations

from dataclasses import dataclass, field

from mediaingest.config import Settings
from mediaingest.pipeline.ffmpeg import FfmpegDeadline, FfmpegTools


@dataclass(frozen=True)
class PipelineOptions:
    tools: FfmpegTools = field(default_factory=FfmpegTools)
    # --- proxies
    proxy_heights: tuple[int, ...] = (360, 720, 1080)
    proxy_vp9: bool = False
    hls_segment_seconds: int = 2  # the keyframe grid every encoded rung shares; segments hold whole GOPs
    # veryfast/23: proxies are for previewing, and encode time is what the user waits for.
    x264_preset: str = "veryfast"
    x264_crf: int = 23
    vp9_crf: int = 34
    vp9_cpu_used: int = 5
    audio_bitrate_kbps: int = 128
    # A web-playable source is remuxed only while it is proxy-sized: above this many bits per pixel
    # per frame (a 1080p30 camera master at 100 Mbit/s is ~1.6; a phone clip ~0.3) it would make a
    # poor proxy, so it is encoded.
    remux_max_bits_per_pixel: float = 0.5
    # --- sprites and storyboard (made in the proxies pass)
    sprite_interval_seconds: float = 2.0
    sprite_tile_width: int = 160
    sprite_tile_height: int = 90
    sprite_columns: int = 10
    sprite_rows: int = 10
    sprite_jpeg_quality: int = 75  # Pillow's scale, 1 … 95
    # --- thumbnails
    poster_position: float = 0.1  # fraction of the duration, when no shot tells a better place
    poster_min_luma: float = 0.1  # a poster whose mean luma (0–1) is below this is near-black: try elsewhere
    shot_threshold: float = 10.0  # scdet's scene score (0–100) above which a frame starts a new shot
    poster_max_size: int = 1280  # bounding box, so portrait posters are not 1280 wide and 2276 tall
    image_thumbnail_sizes: tuple[int, ...] = (1280, 320)
    image_jpeg_quality: int = 85
    image_webp_quality: int = 80
    # --- frames on demand (the timeline): stills an editor compares with the footage, so kept sharp
    frame_jpeg_quality: int = 90
    frame_webp_quality: int = 90
    # --- audio visuals
    waveform_width: int = 1800
    waveform_height: int = 240
    waveform_color: str = "#3b82f6"
    spectrogram_width: int = 1024
    spectrogram_height: int = 512
    peaks_levels: tuple[int, ...] = (256, 1024, 4096)
    peaks_sample_rate: int = 8000
    # --- transcript
    transcribe: bool | None = None  # None: where the `transcribe` extra is installed
    transcribe_model: str = ""  # a model folder or name; empty: the packaged tiny.en (stages/transcript.py)
    transcribe_language: str | None = None  # None: detected
    # --- bounds (media bombs): pixels a stage may decode at once, checked from the header before any
    # decoder runs (a 48 MP phone photo fits; a 657 KB PNG declaring 13000x13000 does not)
    max_decoded_pixels: int = 50_000_000
    # --- running ffmpeg: a run may take `base + per_media_second × duration`, where the duration grows
    # with what ffmpeg has really decoded (a header may claim 1 s of a 2 h file); a stalled run ends.
    ffmpeg_timeout_seconds: float | None = None  # an absolute override of the rule above
    ffmpeg_timeout_base_seconds: float = 600.0
    ffmpeg_timeout_per_media_second: float = 10.0
    progress_interval_seconds: float = 0.25

    def ffmpeg_deadline(self, duration_seconds: float | None) -> FfmpegDeadline:
        if self.ffmpeg_timeout_seconds is not None:
            return FfmpegDeadline(base_seconds=self.ffmpeg_timeout_seconds)
        return FfmpegDeadline(
            base_seconds=self.ffmpeg_timeout_base_seconds,
            per_media_second=self.ffmpeg_timeout_per_media_second,
            claimed_seconds=duration_seconds or 0.0,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> PipelineOptions:
        values: dict[str, object] = {
            "tools": _ffmpeg_tools(settings),
            "max_decoded_pixels": settings.max_decoded_pixels,
            "proxy_heights": tuple(sorted(set(settings.proxy_heights))),
            "proxy_vp9": settings.proxy_vp9,
            "sprite_interval_seconds": settings.sprite_interval_seconds,
            "sprite_tile_width": settings.sprite_tile_width,
            "sprite_tile_height": settings.sprite_tile_height,
            "sprite_columns": settings.sprite_columns,
            "sprite_rows": settings.sprite_rows,
            "waveform_width": settings.waveform_width,
            "waveform_height": settings.waveform_height,
            "spectrogram_width": settings.spectrogram_width,
            "spectrogram_height": settings.spectrogram_height,
            "transcribe": settings.transcribe,
            "transcribe_model": settings.transcribe_model,
            "transcribe_language": settings.transcribe_language,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def _ffmpeg_tools(settings: Settings) -> FfmpegTools:
    """ffmpeg and ffprobe as configured; 0 MB and 0 threads leave memory unlimited and threads to ffmpeg."""
    return FfmpegTools(
        ffmpeg=settings.ffmpeg_path,
        ffprobe=settings.ffprobe_path,
        memory_limit_bytes=settings.tool_memory_limit_mb * 2**20 if settings.tool_memory_limit_mb else None,
        threads=settings.ffmpeg_threads or None,
    )
