"""Smoke test of the built stage image: its own Python, ffmpeg and code run stage pods to READY.

Each pod runs `mediaingest run-stage …` inside the unpacked image (fixtures/stage_image.py: read-only
root, tmpfs /tmp, the scratch emptyDir, the Job's UID) with the environment a stage Job gets
(fixtures/stage_pods.py), against a live API from the test suite. Nothing from the host's virtualenv
or the host's ffmpeg is reachable from inside.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fixtures.kube import ThreadedApiServer
from fixtures.live_server import LiveServerFactory
from fixtures.media import ffmpeg
from fixtures.stage_image import JOB_UID, ImagePod
from fixtures.stage_pods import run_to_ready, uploaded_video

pytestmark = pytest.mark.image

# What users upload and the test suite's media are made of (tests/fixtures/media.py and the pipeline
# tests: H.264, MPEG-4 part 2, HEVC, MPEG-2, VP9, AV1 in MP4/MOV/MKV/WebM/MPEG-PS; AAC, MP3, MP2, FLAC,
# Opus, PCM): each is encoded here by the host's ffmpeg and must decode in the image's.
CORPUS = {
    "h264.mp4": (["-c:v", "libx264", "-pix_fmt", "yuv420p"], ["-c:a", "aac"]),
    "hevc.mov": (["-c:v", "libx265", "-pix_fmt", "yuv420p", "-x265-params", "log-level=none"], ["-c:a", "pcm_s24le"]),
    "mpeg4.avi": (["-c:v", "mpeg4"], ["-c:a", "libmp3lame"]),
    "mpeg2.mpg": (["-c:v", "mpeg2video"], ["-c:a", "mp2"]),
    "vp9.webm": (["-c:v", "libvpx-vp9", "-deadline", "realtime"], ["-c:a", "libopus"]),
    "av1.mkv": (["-c:v", "libaom-av1", "-cpu-used", "8"], ["-c:a", "flac"]),
}
CORPUS_DECODERS = {"h264", "hevc", "mpeg4", "mpeg2video", "vp9", "libdav1d", "aac", "pcm_s24le", "mp3", "mp2"}
CORPUS_DECODERS |= {"opus", "flac", "mjpeg", "png", "webp"}


def test_the_pod_is_confined_like_a_job(stage_image: ImagePod, scratch: Path) -> None:
    """The harness itself: the Job's UID, a read-only root, a writable /tmp and scratch volume."""
    script = (
        "id -u; id -G; touch /tmp/t /scratch/s; touch /opt/x 2>&1 || true; command -v ffmpeg; command -v mediaingest"
    )
    ran = stage_image.run(["/bin/sh", "-c", script], scratch)
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[:2] == [str(JOB_UID), str(JOB_UID)]
    assert "Read-only file system" in lines[2]
    assert lines[3:] == ["/usr/local/bin/ffmpeg", "/opt/venv/bin/mediaingest"]
    assert (scratch / "s").exists()


def test_the_stage_image_carries_no_server_packages(stage_image: ImagePod, scratch: Path) -> None:
    check = "import importlib.util as u; print(*[m for m in MODULES if u.find_spec(m)])"
    modules = ["boto3", "psycopg", "kubernetes", "kopf", "fastapi", "uvicorn", "alembic", "httpx", "PIL"]
    ran = stage_image.run(["python3", "-c", check.replace("MODULES", repr(modules))], scratch)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["httpx", "PIL"]


def test_the_image_ffmpeg_decodes_the_corpus(stage_image: ImagePod, scratch: Path) -> None:
    listed = stage_image.run(["ffmpeg", "-hide_banner", "-decoders"], scratch)
    assert listed.returncode == 0, listed.stderr
    table = listed.stdout.split(" ------\n", 1)[1]  # after the legend: "<flags> <name> <description>"
    decoders = {line.split()[1] for line in table.splitlines()}
    assert decoders >= CORPUS_DECODERS, sorted(CORPUS_DECODERS - decoders)

    encoders = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, check=True)
    for name, (video, audio) in CORPUS.items():
        if video[1] not in encoders.stdout:
            continue  # the host's ffmpeg cannot make this one
        clip = scratch / name
        ffmpeg(
            *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15:duration=1"),
            *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1"),
            *video, *audio, "-shortest", str(clip),
        )  # fmt: skip
        shutil.chown(clip, JOB_UID, JOB_UID)
        # Every frame and sample decoded to raw output (the image has no null muxer; rawvideo and PCM it has).
        video_out = ["-map", "0:v", "-c:v", "rawvideo", "-f", "rawvideo", "/dev/null"]
        audio_out = ["-map", "0:a", "-c:a", "pcm_s16le", "-f", "s16le", "/dev/null"]
        decoded = stage_image.run(
            ["ffmpeg", "-y", "-nostdin", "-v", "error", "-xerror", "-i", f"/scratch/{name}", *video_out, *audio_out],
            scratch,
        )
        assert decoded.returncode == 0 and not decoded.stderr, f"{name}: {decoded.stderr}"


def test_stage_pods_from_the_image_take_a_video_to_ready(
    stage_image: ImagePod,
    live_server_factory: LiveServerFactory,
    threaded_apiserver: ThreadedApiServer,
    small_video: Path,
    tmp_path: Path,
) -> None:
    server = live_server_factory(worker=False, executor="kubernetes")
    asset_id, headers = uploaded_video(server, small_video)
    detail = run_to_ready(
        server, threaded_apiserver, tmp_path, asset_id=asset_id, headers=headers, launcher=stage_image
    )
    assert detail["processingStatus"] == "READY"
    assert detail["metadata"]["durationSeconds"] == pytest.approx(2.0, abs=0.1)
    kinds = {proxy["type"] for proxy in detail["proxies"]}
    assert {"VIDEO", "HLS", "POSTER", "SPRITE_SHEET", "STORYBOARD", "WAVEFORM"} <= kinds
