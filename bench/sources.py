"""Generated benchmark media, made once by ffmpeg from lavfi sources and cached under bench/.cache/.

A cached file's name carries a hash of the command that made it, so changing a recipe regenerates it
instead of silently benchmarking the old file.
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
SOURCES = CACHE / "sources"


@dataclass(frozen=True)
class Source:
    name: str
    kind: str  # "video", "audio" or "image"
    path: Path
    mime_type: str
    media_seconds: float  # what "realtime factor" divides by; 0 for a still image
    description: str


@dataclass(frozen=True)
class _Recipe:
    name: str
    kind: str
    suffix: str
    mime_type: str
    media_seconds: float
    description: str
    args: tuple[str, ...]  # ffmpeg arguments between the global options and the output path
    muxer: str


def _video_inputs(size: str, seconds: float) -> tuple[str, ...]:
    # testsrc2 moves (a scrolling pattern and a clock), so the encoders have real work on every frame.
    return (
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
    )  # fmt: skip


def _recipes(quick: bool) -> list[_Recipe]:
    long, uhd, audio = (4, 2, 10) if quick else (60, 30, 60)  # quick: the whole run under 2 minutes
    h264 = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-profile:v", "high", "-pix_fmt", "yuv420p")
    aac = ("-ac", "2", "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", "-shortest")
    return [
        _Recipe(
            f"h264_1080p30_{long}s", "video", "mp4", "video/mp4", long,
            f"{long} s 1080p30 H.264 High + AAC in MP4 (web-playable: the 1080p rung is a remux)",
            (*_video_inputs("1920x1080", long), *h264, "-g", "60", *aac),
            "mp4",
        ),
        _Recipe(
            f"mpeg2_1080p30_{long}s", "video", "mpg", "video/mpeg", long,
            f"{long} s 1080p30 MPEG-2 15 Mbit/s + MP2 in MPEG-PS (not web-playable: every rung is encoded)",
            (
                *_video_inputs("1920x1080", long), "-ac", "2",
                "-c:v", "mpeg2video", "-b:v", "15M", "-maxrate", "15M", "-bufsize", "9M", "-g", "15",
                "-pix_fmt", "yuv420p", "-c:a", "mp2", "-b:a", "192k", "-shortest",
            ),
            "mpeg",
        ),
        _Recipe(
            f"h264_2160p30_{uhd}s", "video", "mp4", "video/mp4", uhd,
            f"{uhd} s 2160p30 H.264 High + AAC in MP4 (above every rung: all three are encoded)",
            (*_video_inputs("3840x2160", uhd), *h264, "-g", "60", *aac),
            "mp4",
        ),
        _Recipe(
            f"wav_{audio}s", "audio", "wav", "audio/wav", audio,
            f"{audio} s 48 kHz stereo 16-bit WAV",
            (
                "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={audio}",
                "-f", "lavfi", "-i", f"anoisesrc=color=pink:sample_rate=48000:amplitude=0.1:duration={audio}",
                "-filter_complex", "[0:a][1:a]amix=inputs=2", "-ac", "2", "-c:a", "pcm_s16le",
            ),
            "wav",
        ),
        _Recipe(
            "jpeg_20mp", "image", "jpg", "image/jpeg", 0,
            "20 MP (5472×3648) JPEG, q2, with sensor-like noise",
            (
                "-f", "lavfi", "-i", "testsrc2=size=5472x3648:rate=1:duration=1,noise=alls=8",
                "-frames:v", "1", "-q:v", "2", "-pix_fmt", "yuvj420p",
            ),
            "image2",
        ),
    ]  # fmt: skip


def cached(name: str, suffix: str, recipe: Sequence[str], make: Callable[[Path], None], *, log: bool = True) -> Path:
    """SOURCES/<name>-<hash of recipe>.<suffix>, made by `make(partial_path)` when it is not there yet.

    `make` writes a partial file that is renamed once complete, so only a finished file is ever cached."""
    SOURCES.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256("\0".join(recipe).encode()).hexdigest()[:10]
    path = SOURCES / f"{name}-{digest}.{suffix}"
    if not path.is_file():
        started = time.monotonic()
        partial = path.with_name(f".partial-{path.name}")
        make(partial)
        partial.rename(path)
        if log:
            print(f"  generated {path.name} in {time.monotonic() - started:.1f} s", flush=True)
    return path


def run_ffmpeg(args: Sequence[str], muxer: str, out: Path) -> None:
    """ffmpeg quietly, the muxer named (a partial file's name does not end in the real suffix)."""
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    subprocess.run([*argv, "-f", muxer, str(out)], check=True)


def ensure_sources(quick: bool, *, log: bool = True) -> list[Source]:
    """Every source of the run, generated on first use (a full set takes ~2 minutes on 2 cores)."""
    sources = []
    for recipe in _recipes(quick):
        path = cached(
            recipe.name,
            recipe.suffix,
            [*recipe.args, recipe.muxer],
            functools.partial(run_ffmpeg, recipe.args, recipe.muxer),
            log=log,
        )
        sources.append(
            Source(recipe.name, recipe.kind, path, recipe.mime_type, recipe.media_seconds, recipe.description)
        )
    return sources


def ensure_upload_file(size: int) -> Path:
    """A WAV of exactly `size` bytes (the service sniffs the real type, so it must be a real file).

    The samples are pseudo-random, so nothing on the way can shortcut them (no run of zeros).
    """
    SOURCES.mkdir(parents=True, exist_ok=True)
    path = SOURCES / f"upload-{size}.wav"
    if path.is_file() and path.stat().st_size == size:
        return path
    data_size = size - 44
    header = b"".join(
        [
            b"RIFF", (size - 8).to_bytes(4, "little"), b"WAVE",
            b"fmt ", (16).to_bytes(4, "little"), (1).to_bytes(2, "little"), (2).to_bytes(2, "little"),
            (48000).to_bytes(4, "little"), (48000 * 4).to_bytes(4, "little"), (4).to_bytes(2, "little"),
            (16).to_bytes(2, "little"),
            b"data", data_size.to_bytes(4, "little"),
        ]
    )  # fmt: skip
    partial = path.with_name(f".partial-{path.name}")
    block = hashlib.shake_256(b"mediaingest-bench").digest(1024 * 1024)
    with partial.open("wb") as handle:
        handle.write(header)
        remaining = data_size
        while remaining > 0:
            chunk = block[: min(len(block), remaining)]
            handle.write(chunk)
            remaining -= len(chunk)
    partial.rename(path)
    return path
