"""thumbnails: a poster frame for videos; JPEG and WebP thumbnails for still images.

Sprite sheets and the storyboard are not made here but in the proxies pass, which decodes the video
anyway; a poster needs one frame, found with a fast input seek, and is never near-black when the video
has a brighter picture at one of the places it looks.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

from PIL import Image, ImageOps, ImageStat, UnidentifiedImageError

from mediaingest.exceptions import MediaUnreadableError, ProcessingError
from mediaingest.models.enums import MediaType, ProxyType
from mediaingest.pipeline.ffmpeg import FfmpegCommand, FfmpegInput, FfmpegOutput, FilterGraph, filter_spec
from mediaingest.pipeline.filters import base_video_filters, video_stream_specifier
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.stages.probe import check_pixel_budget, has_transparency, image_unreadable
from mediaingest.pipeline.types import MediaMetadata, ProgressCallback, StageOutput, StageResult

POSTER_NAME = "poster.jpg"
_SHOT_CANDIDATES = 3


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
    """The poster command, and the poster's size."""
    width, height = _poster_size(metadata, options)
    graph = FilterGraph()
    filters = [*base_video_filters(metadata), filter_spec("scale", width, height), filter_spec("setsar", 1)]
    graph.chain([video_stream_specifier(metadata)], filters, ["poster"])
    command = FfmpegCommand(
        # -ss before -i: the demuxer jumps to the keyframe before `position` instead of decoding there.
        # Slice threads only: frame threads each take a frame ahead before the first comes out, work a
        # single frame never uses (a 2160p H.264 poster: 0.49 → 0.36 CPU-s, as fast).
        inputs=[FfmpegInput(source, ["-thread_type", "slice", "-ss", f"{position:.3f}"])],
        filter_graph=graph,
        outputs=[
            FfmpegOutput(
                out_dir / POSTER_NAME,
                ["-map", "[poster]", "-frames:v", "1", "-c:v", "mjpeg", "-q:v", "3", "-f", "image2", "-update", "1"],
            )
        ],
    )
    return command, width, height


def _poster_size(metadata: MediaMetadata, options: PipelineOptions) -> tuple[int, int]:
    """The displayed picture fitted into poster_max_size."""
    display_width = metadata.display_width or metadata.width or options.poster_max_size
    display_height = metadata.display_height or metadata.height or options.poster_max_size
    scale = min(1.0, options.poster_max_size / max(display_width, display_height))
    return max(2, round(display_width * scale)), max(2, round(display_height * scale))


def poster_positions(metadata: MediaMetadata, options: PipelineOptions) -> list[float]:
    """Where to look for the poster, best first: the first shots after the first second (fades and slates
    live in it) when the proxies pass has found them, then `poster_position` of the way in, then further."""
    duration = metadata.duration_seconds or 0.0
    if duration <= 0:
        return [0.0]
    fractions = (options.poster_position, 0.25, 0.5, 0.75)
    positions = [*_shot_starts(metadata), *(duration * fraction for fraction in fractions), 0.0]
    return [round(p, 3) for p in dict.fromkeys(positions) if p < duration][: _SHOT_CANDIDATES + len(fractions) + 1]


def _shot_starts(metadata: MediaMetadata) -> list[float]:
    """The first shots the proxies pass found after the first second, half a frame in: a timestamp rounded
    on the way cannot land on the shot before."""
    rate = float(Fraction(metadata.frame_rate)) if metadata.frame_rate else 25.0
    found = metadata.measured("proxies", "shots") or []
    return [cut + 0.5 / rate for cut in found if cut >= 1.0][:_SHOT_CANDIDATES]


def _video_poster(
    source: Path,
    metadata: MediaMetadata,
    out_dir: Path,
    options: PipelineOptions,
    on_progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> StageResult:
    """The first candidate frame that is not near-black (a fade, a black leader); the brightest if all are.

    A container that overstates its duration makes a seek land past the last frame, and ffmpeg then
    writes nothing without failing: that candidate is skipped.
    """
    path = out_dir / POSTER_NAME
    brightest: tuple[float, float, Path] | None = None  # (luma, position, kept file)
    for position in poster_positions(metadata, options):
        luma = _poster_frame(source, metadata, out_dir, options, cancel, position)
        if luma is None:
            continue
        brightest = _keep_brighter(brightest, (luma, position, path), out_dir)
        if luma >= options.poster_min_luma:
            break
    if brightest is None:
        raise MediaUnreadableError("no video frame could be decoded for the poster")
    luma, position, kept = brightest
    kept.replace(path)
    if on_progress is not None:
        on_progress(1.0, "poster")
    output = _poster_output(path, _poster_size(metadata, options), position, luma)
    return StageResult(outputs=[output], message=f"poster at {position:.1f} s")


def _poster_output(path: Path, size: tuple[int, int], position: float, luma: float) -> StageOutput:
    width, height = size
    return StageOutput(
        kind=ProxyType.POSTER,
        path=path,
        bucket="processed",
        format="jpeg",
        content_type="image/jpeg",
        resolution=f"{width}x{height}",
        width=width,
        height=height,
        quality="q3",
        details={"positionSeconds": position, "meanLuma": round(luma, 3)},
    )


def _poster_frame(
    source: Path,
    metadata: MediaMetadata,
    out_dir: Path,
    options: PipelineOptions,
    cancel: threading.Event | None,
    position: float,
) -> float | None:
    """Writes the frame at `position` as the poster and returns its mean luma; None when ffmpeg wrote none."""
    path = out_dir / POSTER_NAME
    path.unlink(missing_ok=True)
    command, _, _ = build_poster_command(source, metadata, out_dir, options, position=position)
    options.tools.run(
        command,
        duration_seconds=None,
        on_progress=None,
        cancel=cancel,
        timeout=options.ffmpeg_deadline(metadata.duration_seconds),
        label="poster",
    )
    if not path.is_file() or path.stat().st_size == 0:
        return None
    return mean_luma(path)


def _keep_brighter(
    brightest: tuple[float, float, Path] | None, candidate: tuple[float, float, Path], out_dir: Path
) -> tuple[float, float, Path]:
    """The brighter of the two (luma, position, file): a brighter candidate's file is set aside under its
    own name and the previous one's deleted; a darker one is left to be overwritten."""
    luma, position, path = candidate
    if brightest is not None and luma <= brightest[0]:
        return brightest
    kept = path.replace(out_dir / f"candidate-{position:.3f}.jpg")
    if brightest is not None:
        brightest[2].unlink(missing_ok=True)
    return luma, position, kept


def mean_luma(path: Path) -> float:
    """Mean brightness of a picture, 0 (black) to 1 (white)."""
    with Image.open(path) as image:
        return float(ImageStat.Stat(image.convert("L")).mean[0]) / 255


# --- still images -------------------------------------------------------------------------------


def _image_thumbnails(
    source: Path, out_dir: Path, options: PipelineOptions, on_progress: ProgressCallback | None
) -> StageResult:
    sizes = sorted(set(options.image_thumbnail_sizes), reverse=True)
    if not sizes:
        return StageResult(message="no thumbnail sizes configured")
    outputs: list[StageOutput] = []
    image, icc_profile = _open_upright(source, options, largest=sizes[0])
    for index, size in enumerate(sizes):
        # Each size is made from the previous, larger one: a big original is resampled only once.
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
        outputs += _save_thumbnail(image, out_dir, size, options, icc_profile)
        if on_progress is not None:
            on_progress((index + 1) / len(sizes), f"thumbnail {size}")
    return StageResult(outputs=outputs, message=f"{len(outputs)} thumbnails")


def _open_upright(source: Path, options: PipelineOptions, *, largest: int) -> tuple[Image.Image, bytes | None]:
    """The image turned upright in a web mode, decoded no larger than needed, and its ICC profile."""
    try:
        with Image.open(source) as opened:
            check_pixel_budget(*opened.size, options)  # before anything decodes
            # JPEG decodes straight at 1/2, 1/4 or 1/8 scale when that still covers the largest size.
            opened.draft("RGB", (largest, largest))
            icc_profile = opened.info.get("icc_profile")
            image = _web_mode(ImageOps.exif_transpose(opened))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise image_unreadable(exc, source) from exc
    return image, icc_profile


def _web_mode(image: Image.Image) -> Image.Image:
    """RGB, or RGBA when the image has transparency; 16-bit greys scaled down rather than clipped."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return image.convert("I").point(lambda value: value * (1 / 256)).convert("L").convert("RGB")
    return image.convert("RGBA" if has_transparency(image) else "RGB")


def _save_thumbnail(
    image: Image.Image, out_dir: Path, size: int, options: PipelineOptions, icc_profile: bytes | None
) -> list[StageOutput]:
    jpeg_path, webp_path = out_dir / f"thumb_{size}.jpg", out_dir / f"thumb_{size}.webp"
    flat = _on_white(image)
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


def _on_white(image: Image.Image) -> Image.Image:
    """JPEG has no alpha: composite over white, as a browser shows a transparent PNG on a page."""
    if image.mode != "RGBA":
        return image
    flat = Image.new("RGB", image.size, (255, 255, 255))
    flat.paste(image, mask=image.getchannel("A"))
    return flat


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
