"""Media for the pipeline tests, generated once per session from lavfi sources: small and short.

1080p only where a test needs it, at 25 fps (a standard rate: proxies are encoded at the nearest
standard rate, and only a source already at it can be remuxed), so the whole pipeline suite stays well
under a minute and a half on two shared cores.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mediaingest.pipeline.ffmpeg import FfmpegTools
from mediaingest.pipeline.options import PipelineOptions

FFMPEG = "/usr/bin/ffmpeg"
FFPROBE = "/usr/bin/ffprobe"

ProbeFile = Callable[[Path], dict[str, Any]]


def _ffmpeg(*args: str | Path) -> None:
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *map(str, args)], check=True)


def _testsrc(size: str, duration: float, fps: int = 25) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}:duration={duration}"]


def _sine(duration: float, *, rate: int = 48000, layout: str = "stereo") -> list[str]:
    source = f"sine=frequency=440:sample_rate={rate}:duration={duration},aformat=channel_layouts={layout}"
    return ["-f", "lavfi", "-i", source]


@pytest.fixture(scope="session")
def pipeline_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pipeline-media")


@pytest.fixture(scope="session")
def options() -> PipelineOptions:
    # ultrafast keeps the encodes cheap; everything else is the production default.
    return PipelineOptions(tools=FfmpegTools(ffmpeg=FFMPEG, ffprobe=FFPROBE), x264_preset="ultrafast")


@pytest.fixture(scope="session")
def probe_file() -> ProbeFile:
    """ffprobe's -show_streams -show_format JSON of an output, for asserting what was really written."""

    def run(path: Path) -> dict[str, Any]:
        done = subprocess.run(
            [FFPROBE, "-v", "error", "-of", "json", "-show_streams", "-show_format", str(path)],
            capture_output=True,
            check=True,
        )
        return json.loads(done.stdout)

    return run


@pytest.fixture(scope="session")
def video_1080p(pipeline_media: Path) -> Path:
    """1920×1080 H.264 (High, yuv420p) + stereo AAC in MP4: web-playable, so its 1080p rung is a remux."""
    path = pipeline_media / "landscape-1080p.mp4"
    _ffmpeg(
        *_testsrc("1920x1080", 3),
        *_sine(3),
        *("-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-pix_fmt", "yuv420p", "-profile:v", "high"),
        *("-c:a", "aac", "-b:a", "96k", "-shortest", path),
    )
    return path


@pytest.fixture(scope="session")
def phone_clip(pipeline_media: Path) -> Path:
    """Stored 640×360 with a display matrix turning it a quarter clockwise, as a phone held upright writes it."""
    plain = pipeline_media / "phone-unrotated.mp4"
    _ffmpeg(
        *_testsrc("640x360", 2),
        *_sine(2, layout="mono"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest", plain),
    )
    path = pipeline_media / "phone-portrait.mp4"
    # ffmpeg 5.1 turns the legacy rotate tag into a display matrix only when stream copying, and
    # counter-clockwise: rotate=270 writes the matrix of an upright iPhone (ffprobe "rotation": -90).
    _ffmpeg("-i", plain, "-c", "copy", "-metadata:s:v:0", "rotate=270", path)
    return path


@pytest.fixture(scope="session")
def audio_with_cover(pipeline_media: Path) -> Path:
    """Stereo MP3 with cover art: the cover is a "video" stream that must not make it a video."""
    cover = pipeline_media / "cover.png"
    Image.new("RGB", (64, 64), (10, 120, 200)).save(cover)
    path = pipeline_media / "song.mp3"
    _ffmpeg(
        *_sine(3, rate=44100),
        *("-i", cover, "-map", "0:a", "-map", "1:v", "-c:a", "libmp3lame", "-b:a", "128k"),
        *("-c:v", "png", "-disposition:v", "attached_pic", "-id3v2_version", "3", path),
    )
    return path


@pytest.fixture(scope="session")
def hdr_pq_clip(pipeline_media: Path) -> Path:
    """10-bit PQ HDR10: BT.2020 tags plus mastering-display and content-light SEI.

    HEVC rather than H.264 high10: ffmpeg 5.1's H.264 decoder does not export those SEI messages, so
    only an HEVC clip can show that probe keeps them.
    """
    path = pipeline_media / "hdr-pq.mp4"
    x265 = (
        "log-level=error:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:hdr10=1"
        ":master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
        ":max-cll=1000,400"
    )
    _ffmpeg(
        *_testsrc("640x360", 2),
        *("-pix_fmt", "yuv420p10le", "-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1"),
        *("-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc"),
        *("-x265-params", x265, path),
    )
    return path


@pytest.fixture(scope="session")
def hdr_hlg_clip(pipeline_media: Path) -> Path:
    """10-bit H.264 High 10 tagged HLG (tags only)."""
    path = pipeline_media / "hdr-hlg.mp4"
    _ffmpeg(
        *_testsrc("320x180", 1),
        *("-pix_fmt", "yuv420p10le", "-c:v", "libx264", "-profile:v", "high10", "-preset", "ultrafast"),
        *("-color_primaries", "bt2020", "-color_trc", "arib-std-b67", "-colorspace", "bt2020nc", path),
    )
    return path


@pytest.fixture(scope="session")
def small_silent_video(pipeline_media: Path) -> Path:
    """320×180, no audio: smaller than the lowest rung, and web-playable as it is."""
    path = pipeline_media / "small-silent.mp4"
    _ffmpeg(*_testsrc("320x180", 2), "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", path)
    return path


@pytest.fixture(scope="session")
def mpeg2_clip(pipeline_media: Path) -> Path:
    """MPEG-2 video + MP2 audio in MPEG-PS: nothing a browser plays, so every rung is encoded."""
    path = pipeline_media / "broadcast.mpg"
    _ffmpeg(
        *_testsrc("640x360", 2, fps=25),
        *_sine(2),
        *("-c:v", "mpeg2video", "-q:v", "4", "-c:a", "mp2", "-shortest", path),
    )
    return path


@pytest.fixture(scope="session")
def long_tiny_video(pipeline_media: Path) -> Path:
    """13 s at 160×90 and 2 fps: long enough for several sprite sheets, cheap to decode."""
    path = pipeline_media / "long-tiny.mp4"
    _ffmpeg(*_testsrc("160x90", 13, fps=2), "-c:v", "libx264", "-preset", "ultrafast", path)
    return path


@pytest.fixture(scope="session")
def truncated_video(pipeline_media: Path, video_1080p: Path) -> Path:
    """The first half of the 1080p MP4; its moov atom (at the end, no faststart) is gone."""
    data = video_1080p.read_bytes()
    path = pipeline_media / "truncated.mp4"
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture(scope="session")
def garbage_file(pipeline_media: Path) -> Path:
    path = pipeline_media / "garbage.mp4"
    path.write_bytes(bytes(range(256)) * 64)
    return path


def _iptc_dataset(record: int, dataset: int, value: bytes) -> bytes:
    return bytes([0x1C, record, dataset]) + len(value).to_bytes(2, "big") + value


@pytest.fixture(scope="session")
def jpeg_with_exif_iptc(pipeline_media: Path) -> Path:
    """400×200 as stored, EXIF orientation 6 (shown 200×400), with a red marker in the stored top-left
    corner, and an IPTC block in an APP13 segment (Pillow reads IPTC but does not write it)."""
    image = Image.new("RGB", (400, 200), (128, 128, 128))
    image.paste((255, 0, 0), (0, 0, 60, 60))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    exif[0x010F] = "TestCam"  # Make
    exif[0x0110] = "Model 7"  # Model
    exif.get_ifd(0x8769)[0x9003] = "2024:05:01 12:30:00"  # DateTimeOriginal, in the Exif sub-IFD
    plain = pipeline_media / "photo-plain.jpg"
    image.save(plain, "JPEG", quality=92, exif=exif.tobytes())

    iptc = b"".join(
        [
            _iptc_dataset(1, 90, b"\x1b%G"),  # UTF-8
            _iptc_dataset(2, 0, b"\x00\x04"),
            _iptc_dataset(2, 5, b"Sunset over the bay"),
            _iptc_dataset(2, 25, b"beach"),
            _iptc_dataset(2, 25, b"sunset"),
            _iptc_dataset(2, 80, "Zoë Example".encode()),
            _iptc_dataset(2, 116, b"(c) 2024 Example"),
        ]
    )
    resource = b"8BIM" + (0x0404).to_bytes(2, "big") + b"\x00\x00" + len(iptc).to_bytes(4, "big") + iptc
    resource += b"\x00" * (len(iptc) % 2)
    payload = b"Photoshop 3.0\x00" + resource
    app13 = b"\xff\xed" + (len(payload) + 2).to_bytes(2, "big") + payload
    data = plain.read_bytes()
    path = pipeline_media / "photo.jpg"
    path.write_bytes(data[:2] + app13 + data[2:])  # right after SOI
    return path


@pytest.fixture(scope="session")
def png_with_alpha(pipeline_media: Path) -> Path:
    """300×200 RGBA: left half opaque blue, right half fully transparent."""
    image = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    image.paste((0, 0, 255, 255), (0, 0, 150, 200))
    path = pipeline_media / "logo.png"
    image.save(path)
    return path


@pytest.fixture(scope="session")
def png_16bit(pipeline_media: Path) -> Path:
    image = Image.new("I;16", (64, 32))
    image.paste(40000, (0, 0, 32, 32))
    path = pipeline_media / "depth16.png"
    image.save(path)
    return path


@pytest.fixture(scope="session")
def truncated_jpeg(pipeline_media: Path, jpeg_with_exif_iptc: Path) -> Path:
    data = jpeg_with_exif_iptc.read_bytes()
    path = pipeline_media / "truncated.jpg"
    path.write_bytes(data[: len(data) * 2 // 3])
    return path
