"""The batch's media: a photographer's stills, a phone's clips and voice notes, generated here, never downloaded.

At scale 1: 300 stills (JPEG, HEIC, PNG at 12–48 MP: a mandelbrot zoom blended over colour gradients
with sensor grain, so encoders and decoders meet texture, not flat colour; camera EXIF on every JPEG,
an EXIF orientation on some), 100 clips of 3–15 s (H.264 or HEVC, 1080p landscape, 1080×1920 portrait,
or landscape stored with a 90° rotation as phones write portrait; 30 or 60 fps; AAC) and 100 voice notes
of 5–60 s (espeak-ng sentences over room tone; mono AAC in M4A or Opus in Ogg). Each file's recipe is
drawn from a generator seeded by its index, so every run and every machine makes the same set; they are
cached by sources.cached under bench/.cache/sources/ (a changed recipe makes a new file).
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from bench.sources import Source, cached, run_ffmpeg

COUNTS = {"image": 300, "video": 100, "audio": 100}
_VERSION = "batch-v1"  # part of every recipe: bump it to regenerate the set

# (width, height, weight): 12 MP (most phones), 24, 33 and 48 MP (a phone's full-resolution mode, a DSLR).
_STILL_SIZES = ((4032, 3024, 45), (6000, 4000, 25), (7008, 4672, 15), (8064, 6048, 15))
# Phones write HEIC at 12 or 24 MP (their 48 MP modes write JPEG or RAW), denoised before encoding.
_HEIC_SIZES = _STILL_SIZES[:2]
# Points of the mandelbrot set with detail at every zoom: (x, y) for start_x/start_y.
_MANDELBROT = ((-0.743643887037151, 0.13182590420533), (-0.7453, 0.1127), (-1.25066, 0.02012), (-0.1011, 0.9563))
_CAMERAS = (("Apple", "iPhone 15 Pro"), ("Google", "Pixel 8"), ("SONY", "ILCE-7M4"), ("Canon", "Canon EOS R6"))
_SENTENCES = (
    "Hi, it's me, just calling about the shoot tomorrow morning.",
    "Can you send me the files from the wedding when you get a minute?",
    "The light was amazing at the harbour, I think we got the shot.",
    "Don't forget to pick up the batteries for the second camera.",
    "I moved the meeting to three o'clock, the client is running late.",
    "Let me know which version of the edit you like better.",
    "We need two more close ups of the product before Friday.",
    "The drone footage is uploading now, it should be there in an hour.",
    "Call me back when you get this, it's about the budget.",
    "Great work today, everyone was really happy with the results.",
)


@dataclass(frozen=True)
class _Made:
    """A file to make: the Source it becomes, its cache name and recipe, and how to make it."""

    kind: str
    name: str
    suffix: str
    mime_type: str
    media_seconds: float
    description: str
    recipe: tuple[str, ...]
    make: Callable[[Path], None]


def _picture_graph(rng: random.Random, width: int, height: int, grain: int) -> str:
    """A photo-like picture: drawn at a quarter of the size (the blend is the slow part), then scaled up
    and given grain at full size, so the file has full-resolution texture."""
    x, y = rng.choice(_MANDELBROT)
    qw, qh = width // 4, height // 4
    zoom = rng.choice((0.002, 0.01, 0.03, 0.1))
    mode = rng.choice(("softlight", "overlay", "multiply"))
    return (
        f"mandelbrot=s={qw // 2}x{qh // 2}:r=1:maxiter=150:start_x={x}:start_y={y}:start_scale={zoom},"
        f"scale={qw}x{qh}:flags=bicubic,format=rgb24[m];"
        f"gradients=s={qw}x{qh}:r=1:d=1:nb_colors={rng.randint(2, 6)}:seed={rng.randrange(2**31)},format=rgb24[g];"
        f"[g][m]blend=all_mode={mode}:all_opacity={rng.uniform(0.5, 0.9):.2f},"
        f"scale={width}x{height}:flags=bicubic"
        + (f",noise=alls={grain}:allf=t:all_seed={rng.randrange(2**31)}" if grain else "")
    )


def _exif_segment(rng: random.Random, orientation: int) -> bytes:
    """An APP1 Exif segment as a camera writes it: make, model, date and, on some, an orientation."""
    exif = Image.Exif()
    make, model = rng.choice(_CAMERAS)
    exif[0x010F], exif[0x0110] = make, model
    exif[0x0132] = (
        f"2026:{rng.randint(1, 12):02d}:{rng.randint(1, 28):02d} {rng.randint(6, 21):02d}:{rng.randint(0, 59):02d}:00"
    )
    exif[0x0131] = "bench/batch_sources.py"
    if orientation != 1:
        exif[0x0112] = orientation
    data = exif.tobytes()  # b"Exif\0\0" + the TIFF structure
    return b"\xff\xe1" + (len(data) + 2).to_bytes(2, "big") + data


def _with_exif(jpeg: Path, segment: bytes) -> None:
    """Insert the Exif segment after the JFIF header ffmpeg's mjpeg encoder writes (ffmpeg writes no Exif)."""
    data = jpeg.read_bytes()
    at = 2
    if data[2:4] == b"\xff\xe0":
        at = 4 + int.from_bytes(data[4:6], "big")
    jpeg.write_bytes(data[:at] + segment + data[at:])


def _still(index: int) -> _Made:
    rng = random.Random(f"{_VERSION}-still-{index}")
    fmt = rng.choices(("jpeg", "heic", "png"), weights=(50, 30, 20))[0]
    sizes = _HEIC_SIZES if fmt == "heic" else _STILL_SIZES
    width, height, _ = rng.choices(sizes, weights=[w for *_, w in sizes])[0]
    if rng.random() < 0.3:  # a portrait shot, stored upright
        width, height = height, width
    grain = {"jpeg": rng.randint(10, 16), "heic": rng.randint(2, 4), "png": 0}[fmt]
    graph = _picture_graph(rng, width, height, grain=grain)
    megapixels = round(width * height / 1e6)
    name = f"batch_still_{index:03d}_{fmt}_{megapixels}mp"
    inputs = ("-f", "lavfi", "-i", graph, "-frames:v", "1")
    if fmt == "jpeg":
        orientation = rng.choice((6, 8, 3)) if rng.random() < 0.3 else 1
        segment = _exif_segment(rng, orientation)
        args = (*inputs, "-pix_fmt", "yuvj420p", "-q:v", str(rng.randint(2, 4)))

        def make_jpeg(out: Path) -> None:
            run_ffmpeg(args, "image2", out)
            _with_exif(out, segment)

        turned = f", EXIF orientation {orientation}" if orientation != 1 else ""
        recipe = (*args, segment.hex())
        return _Made("image", name, "jpg", "image/jpeg", 0, f"{width}×{height} JPEG{turned}", recipe, make_jpeg)
    if fmt == "png":
        args = (*inputs, "-pix_fmt", "rgb24", "-c:v", "png")
        make_png = lambda out: run_ffmpeg(args, "image2", out)  # noqa: E731
        return _Made("image", name, "png", "image/png", 0, f"{width}×{height} PNG", args, make_png)
    quality = rng.choice((60, 70, 80))

    def make_heic(out: Path) -> None:
        import pillow_heif

        argv = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", *inputs, "-pix_fmt", "rgb24"]
        pixels = subprocess.run([*argv, "-f", "rawvideo", "pipe:1"], check=True, capture_output=True).stdout
        image = Image.frombytes("RGB", (width, height), pixels)
        # x265's ultrafast preset: 2 CPU-s for 12 MP instead of 23 (the default); decoding costs the same.
        pillow_heif.from_pillow(image).save(out, quality=quality, format="HEIF", enc_params={"preset": "ultrafast"})

    recipe = (*inputs, f"heic-q{quality}-ultrafast")
    return _Made("image", name, "heic", "image/heic", 0, f"{width}×{height} HEIC q{quality}", recipe, make_heic)


def _clip(index: int) -> _Made:
    rng = random.Random(f"{_VERSION}-clip-{index}")
    seconds = round(rng.uniform(3, 15), 1)
    fps = rng.choices((30, 60), weights=(70, 30))[0]
    layout = rng.choices(("landscape", "portrait", "rotated"), weights=(50, 25, 25))[0]
    size = "1080x1920" if layout == "portrait" else "1920x1080"
    hevc = rng.random() < 0.2
    picture = (
        f"testsrc2=size={size}:rate={fps}:duration={seconds},hue=h={rng.randrange(360)},"
        f"noise=alls={rng.randint(2, 5)}:allf=t:all_seed={rng.randrange(2**31)}"
    )
    sound = (
        f"sine=frequency={rng.randint(200, 900)}:sample_rate=48000:duration={seconds}[s];"
        f"anoisesrc=color=pink:sample_rate=48000:amplitude=0.05:duration={seconds}:seed={rng.randrange(2**31)}[n];"
        "[s][n]amix=inputs=2"
    )
    video = (
        ("-c:v", "libx265", "-preset", "ultrafast", "-crf", "24", "-tag:v", "hvc1", "-x265-params", "log-level=error")
        if hevc
        else ("-c:v", "libx264", "-preset", "veryfast", "-crf", "21", "-profile:v", "high")
    )
    args = (
        "-f", "lavfi", "-i", picture, "-f", "lavfi", "-i", sound,
        *video, "-maxrate", "16M", "-bufsize", "32M", "-g", str(fps), "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-movflags", "+faststart", "-shortest",
    )  # fmt: skip
    codec = "hevc" if hevc else "h264"
    name = f"batch_clip_{index:03d}_{codec}_{layout}_{fps}fps_{seconds:g}s"
    shown = {"landscape": "1920×1080", "portrait": "1080×1920", "rotated": "1920×1080 stored, rotated 90°"}[layout]
    description = f"{seconds:g} s {shown} {fps} fps {codec.upper()} + AAC"

    def make(out: Path) -> None:
        if layout != "rotated":
            run_ffmpeg(args, "mp4", out)
            return
        # ffmpeg 5.1 drops a rotate tag when encoding, but writes it as the display matrix on a stream copy.
        stored = out.with_name(f"{out.name}.stored.mp4")
        run_ffmpeg(args, "mp4", stored)
        copy = ("-i", str(stored), "-c", "copy", "-metadata:s:v:0", "rotate=90", "-movflags", "+faststart")
        run_ffmpeg(copy, "mp4", out)
        stored.unlink()

    recipe = (*args, "rotate=90") if layout == "rotated" else args
    return _Made("video", name, "mp4", "video/mp4", seconds, description, recipe, make)


def _voice_note(index: int) -> _Made:
    rng = random.Random(f"{_VERSION}-voice-{index}")
    seconds = round(rng.triangular(5, 60, 12), 1)
    opus = rng.random() < 0.4
    voice = rng.choice(("en-us", "en-gb", "en-gb-scotland", "en-us+f3", "en-gb+f2"))
    speed, pitch = rng.randint(140, 185), rng.randint(30, 70)
    # Enough sentences to fill the note; espeak-ng pauses between them as a speaker would.
    text = " ".join(rng.choice(_SENTENCES) for _ in range(int(seconds / 3) + 2))
    codec = ("-c:a", "libopus", "-b:a", "24k") if opus else ("-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart")
    tail = (
        "-filter_complex",
        f"[0:a]aresample=48000,apad[v];anoisesrc=color=brown:sample_rate=48000:amplitude=0.01:"
        f"seed={rng.randrange(2**31)}[n];[v][n]amix=inputs=2:duration=first,highpass=f=80",
        "-t", str(seconds), "-ac", "1", "-ar", "48000", *codec,
    )  # fmt: skip
    espeak = ("espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch))

    def make(out: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="bench-voice-") as scratch:
            speech = Path(scratch) / "speech.wav"
            subprocess.run([*espeak, "-w", str(speech), text], check=True)
            run_ffmpeg(("-i", str(speech), *tail), "ogg" if opus else "ipod", out)

    suffix, mime, what = ("ogg", "audio/ogg", "Opus in Ogg") if opus else ("m4a", "audio/mp4", "AAC in M4A")
    name = f"batch_voice_{index:03d}_{'opus' if opus else 'aac'}_{seconds:g}s"
    description = f"{seconds:g} s mono speech, {what}"
    return _Made("audio", name, suffix, mime, seconds, description, (*espeak, text, *tail), make)


def counts(scale: float) -> dict[str, int]:
    return {kind: max(1, round(count * scale)) for kind, count in COUNTS.items()}


def ensure_batch_sources(scale: float, *, log: Callable[[str], None]) -> list[Source]:
    """The batch at `scale` × COUNTS, generated on first use on every core (about 10 CPU-minutes at scale 1)."""
    wanted = counts(scale)
    recipes = [
        *(_still(i) for i in range(wanted["image"])),
        *(_clip(i) for i in range(wanted["video"])),
        *(_voice_note(i) for i in range(wanted["audio"])),
    ]

    def ensure(made: _Made) -> Source:
        path = cached(made.name, made.suffix, (_VERSION, *made.recipe), made.make, log=False)
        return Source(made.name, made.kind, path, made.mime_type, made.media_seconds, made.description)

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        sources = list(pool.map(ensure, recipes))
    for kind, count in wanted.items():
        size = sum(s.path.stat().st_size for s in sources if s.kind == kind)
        log(f"  {count} {kind} files, {size / 1e9:.2f} GB")
    return sources
