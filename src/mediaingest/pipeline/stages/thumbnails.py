"""thumbnails: a poster frame for videos; JPEG and WebP thumbnails for still images.

Sprite sheets and the storyboard are not made here but in the proxies pass, which decodes the video
anyway; a poster needs one frame, found with a fast input seek.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from mediaingest.exceptions import MediaUnreadableError, ProcessingError
from mediaingest.models.enums import MediaType, ProxyType
from mediaingest.pipeline.ffmpeg import FfmpegCommand, FfmpegInput, FfmpegOutput, FilterGraph, filter_spec
from mediaingest.pipeline.filters import base_video_filters, video_stream_specifier
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.stages.probe import check_pixel_budget, image_unreadable
from mediaingest.pipeline.types import MediaMetadata, ProgressCallback, StageOutput, StageResult

POSTER_NAME = "poster.jpg"


def generate_thumbnails(
    source: Path,
    metadata: MediaMetadata,
    media_type: MediaType,
    out_dir: Path,
    *,
    options: PipelineOptions,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> StageResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    if media_type == MediaType.IMAGE:
        return _image_thumbnails(source, out_dir, options, on_progress)
    if media_type == MediaType.VIDEO and metadata.has_video:
        return _video_poster(source, metadata, out_dir, options, on_progress, cancel)
    return StageResult(message=f"no thumbnails for {media_type.value.lower()} without a picture")


# --- video poster -------------------------------------------------------------------------------


def build_poster_command(
    source: Path, metadata: MediaMetadata, out_dir: Path, options: PipelineOptions, *, position: float
) -> tuple[FfmpegCommand, int, int]:
    """The poster command, and the poster's size: the displayed picture fitted into poster_max_size."""
    display_width = metadata.display_width or metadata.width or options.poster_max_size
    display_height = metadata.display_height or metadata.height or options.poster_max_size
    scale = min(1.0, options.poster_max_size / max(display_width, display_height))
    width, height = max(2, round(display_width * scale)), max(2, round(display_height * scale))
    graph = FilterGraph()
    filters = [*base_video_filters(metadata), filter_spec("scale", width, height), filter_spec("setsar", 1)]
    graph.chain([video_stream_specifier(metadata)], filters, ["poster"])
    command = FfmpegCommand(
        # -ss before -i: the demuxer jumps to the keyframe before `position` instead of decoding there.
        inputs=[FfmpegInput(source, ["-ss", f"{position:.3f}"])],
        filter_graph=graph,
        outputs=[
            FfmpegOutput(
                out_dir / POSTER_NAME,
                ["-map", "[poster]", "-frames:v", "1", "-c:v", "mjpeg", "-q:v", "3", "-f", "image2", "-update", "1"],
            )
        ],
    )
    return command, width, height


def _video_poster(
    source: Path,
    metadata: MediaMetadata,
    out_dir: Path,
    options: PipelineOptions,
    on_progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> StageResult:
    path = out_dir / POSTER_NAME
    path.unlink(missing_ok=True)
    position = (metadata.duration_seconds or 0.0) * options.poster_position
    # A container that overstates its duration makes the seek land past the last frame, and ffmpeg
    # then writes nothing without failing: fall back to the first frame.
    for attempt in dict.fromkeys((position, 0.0)):
        command, width, height = build_poster_command(source, metadata, out_dir, options, position=attempt)
        options.tools.run(
            command,
            duration_seconds=None,
            on_progress=on_progress,
            cancel=cancel,
            timeout=options.ffmpeg_deadline(metadata.duration_seconds),
            label="poster",
        )
        if path.is_file() and path.stat().st_size > 0:
            output = StageOutput(
                kind=ProxyType.POSTER,
                path=path,
                bucket="processed",
                format="jpeg",
                content_type="image/jpeg",
                resolution=f"{width}x{height}",
                width=width,
                height=height,
                quality="q3",
                details={"positionSeconds": round(attempt, 3)},
            )
            return StageResult(outputs=[output], message=f"poster at {attempt:.1f} s")
    raise MediaUnreadableError("no video frame could be decoded for the poster")


# --- still images -------------------------------------------------------------------------------


def _image_thumbnails(
    source: Path, out_dir: Path, options: PipelineOptions, on_progress: ProgressCallback | None
) -> StageResult:
    sizes = sorted(set(options.image_thumbnail_sizes), reverse=True)
    if not sizes:
        return StageResult(message="no thumbnail sizes configured")
    outputs: list[StageOutput] = []
    try:
        with Image.open(source) as opened:
            check_pixel_budget(*opened.size, options)  # before anything decodes
            # JPEG decodes straight at 1/2, 1/4 or 1/8 scale when that still covers the largest size.
            opened.draft("RGB", (sizes[0], sizes[0]))
            icc_profile = opened.info.get("icc_profile")
            image = _web_mode(ImageOps.exif_transpose(opened))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise image_unreadable(exc, source) from exc

    for index, size in enumerate(sizes):
        # Each size is made from the previous, larger one: a big original is resampled only once.
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
        outputs += _save_thumbnail(image, out_dir, size, options, icc_profile)
        if on_progress is not None:
            on_progress((index + 1) / len(sizes), f"thumbnail {size}")
    return StageResult(outputs=outputs, message=f"{len(outputs)} thumbnails")


def _web_mode(image: Image.Image) -> Image.Image:
    """RGB, or RGBA when the image has transparency; 16-bit greys scaled down rather than clipped."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return image.convert("I").point(lambda value: value * (1 / 256)).convert("L").convert("RGB")
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def _save_thumbnail(
    image: Image.Image, out_dir: Path, size: int, options: PipelineOptions, icc_profile: bytes | None
) -> list[StageOutput]:
    jpeg_path, webp_path = out_dir / f"thumb_{size}.jpg", out_dir / f"thumb_{size}.webp"
    flat = image
    if image.mode == "RGBA":
        # JPEG has no alpha: composite over white, as a browser shows a transparent PNG on a page.
        flat = Image.new("RGB", image.size, (255, 255, 255))
        flat.paste(image, mask=image.getchannel("A"))
    # The ICC profile keeps wide-gamut photos' colours; EXIF is left out on purpose (GPS, serials).
    # Both encoders release the GIL, so the WebP is written on a second thread while the JPEG is; from
    # a copy, because save() keeps its options on the image object (encoderinfo) for the plugin to read.
    with ThreadPoolExecutor(1) as webp_writer:
        webp_done = webp_writer.submit(
            image.copy().save, webp_path, "WEBP", quality=options.image_webp_quality, method=4, icc_profile=icc_profile
        )
        flat.save(jpeg_path, "JPEG", quality=options.image_jpeg_quality, optimize=True, icc_profile=icc_profile)
        webp_done.result()
    for path in (jpeg_path, webp_path):
        if not path.is_file():
            raise ProcessingError(f"Pillow wrote no {path.name}")
    return [
        _thumbnail_output(jpeg_path, image.size, "jpeg", f"q{options.image_jpeg_quality}", size, alpha=False),
        _thumbnail_output(
            webp_path, image.size, "webp", f"q{options.image_webp_quality}", size, alpha=image.mode == "RGBA"
        ),
    ]


def _thumbnail_output(
    path: Path, dimensions: tuple[int, int], fmt: str, quality: str, size: int, *, alpha: bool
) -> StageOutput:
    width, height = dimensions
    return StageOutput(
        kind=ProxyType.THUMBNAIL,
        path=path,
        bucket="processed",
        format=fmt,
        content_type=f"image/{fmt}",
        resolution=f"{width}x{height}",
        width=width,
        height=height,
        quality=quality,
        details={"maxSize": size, "alpha": alpha},
    )
