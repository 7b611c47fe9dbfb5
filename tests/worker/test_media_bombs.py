"""Media bombs under the size limits: each ends FAILED with a clear message, in a stage process of its
own, with bounded memory there and none spent in the API process, while other assets keep processing.

Peak RSS is measured, not assumed: the API process's own high-water mark (reset through
/proc/self/clear_refs before the work starts), and what each stage process reports for itself and
its ffmpeg/ffprobe children.
"""

from __future__ import annotations

import os
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import SettingsFactory, Users
from fixtures.live_server import wait_until
from fixtures.uploads import upload
from mediaingest import resident
from mediaingest.api import create_app
from mediaingest.catalog import embedded_worker
from mediaingest.config import Settings
from mediaingest.exceptions import MediaTooLargeError, TransientProcessingError
from mediaingest.models import IngestionJob
from mediaingest.pipeline.ffmpeg import FfmpegDeadline, FfmpegTools, run_ffmpeg

pytestmark = pytest.mark.slow

MIB = 2**20


def png_bomb(path: Path, side: int = 13000) -> Path:
    """A PNG declaring side x side RGBA, all zero: about 650 KB on disk, 676 MB decoded. Written row by
    row through a streaming compressor, so making it costs this process no memory."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + side * 4)  # filter byte + RGBA
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def forged_duration_matroska(path: Path, *, real_seconds: int = 2400) -> Path:
    """40 minutes of 48 kHz silence (FLAC, ~0.5 MB) whose Matroska header claims one second."""
    honest = path.with_name("honest.mka")
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono",
         "-t", str(real_seconds), "-c:a", "flac", str(honest)],
        check=True,
    )  # fmt: skip
    data = bytearray(honest.read_bytes())
    at = data.find(b"\x44\x89\x88")  # Segment Info › Duration, an 8-byte float in milliseconds
    assert at > 0
    data[at + 3 : at + 11] = struct.pack(">d", 1000.0)
    real = time.strftime("%H:%M:%S", time.gmtime(real_seconds)).encode()
    data = data.replace(real + b".000000000", b"00:00:01.000000000")  # the track's DURATION tag
    path.write_bytes(bytes(data))
    claimed = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert float(claimed) == pytest.approx(1.0)
    return path


class PeakRss:
    """This process's resident high-water mark, reset on entry (Linux: clear_refs 5 resets VmHWM)."""

    def __enter__(self) -> PeakRss:
        resident.reset_peak()
        self.start = self._read("VmRSS")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.growth = self._read("VmHWM") - self.start

    @staticmethod
    def _read(field: str) -> int:
        kib = resident.status_kib(field)
        assert kib is not None, f"{field} not in /proc/self/status"
        return kib * 1024


@pytest.fixture
def bomb_settings(make_settings: SettingsFactory) -> Settings:
    return make_settings(worker_concurrency=2, proxy_heights=[360])


@pytest.fixture
def api(bomb_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(bomb_settings, configure_logs=False)) as client:
        yield client


def _asset(api: TestClient, headers: dict[str, str], asset_id: str) -> dict[str, Any]:
    return api.get(f"/api/assets/{asset_id}", headers=headers).json()["data"]


def _resources(api: TestClient, asset_id: str) -> list[dict[str, Any]]:
    """The peaks each stage process reported, from the jobs' logs."""
    with api.app.state.session_factory() as session:  # type: ignore[attr-defined]
        logs = session.scalars(sa.select(IngestionJob.logs).where(IngestionJob.asset_id == asset_id)).all()
    return [entry for log in logs for entry in (log or []) if entry["event"] == "job.resources"]


def test_a_png_bomb_fails_before_anything_decodes_it_without_touching_the_api_memory(
    api: TestClient, bomb_settings: Settings, users: Users, small_jpeg: Path, tmp_path: Path
) -> None:
    _, headers = users.create()
    bomb = png_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 1_000_000
    with PeakRss() as api_memory, embedded_worker(bomb_settings):
        bomb_id = upload(api, headers, bomb, mime_type="image/png")["assetId"]
        photo_id = upload(api, headers, small_jpeg, mime_type="image/jpeg")["assetId"]
        wait_until(lambda: _asset(api, headers, bomb_id)["processingStatus"] == "FAILED", timeout=60)
        wait_until(lambda: _asset(api, headers, photo_id)["processingStatus"] == "READY", timeout=60)

    error = _asset(api, headers, bomb_id)["error"]
    assert "13000x13000 (169 megapixels)" in error and "limit is 50 megapixels" in error
    # The probe and, beside it, the thumbnails: each read the header only, and refused.
    refused = _resources(api, bomb_id)
    assert len(refused) == 2
    assert all(stage["peakRssBytes"] < 200 * MIB for stage in refused)  # nothing was decoded
    assert all(stage["toolsPeakRssBytes"] < 200 * MIB for stage in refused)  # ffprobe never saw it (712 MB)
    assert api_memory.growth < 100 * MIB, f"the API process grew by {api_memory.growth / MIB:.0f} MiB"


def test_a_forged_duration_takes_bounded_memory_and_still_draws_the_whole_file(
    api: TestClient, bomb_settings: Settings, users: Users, tmp_path: Path
) -> None:
    """The header says 1 s; the file holds 40 min. The spectrogram branch is trimmed at its sample budget
    whatever the header says, then drawn again at the rate the decoded length affords."""
    _, headers = users.create()
    forged = forged_duration_matroska(tmp_path / "forged.mka")
    with PeakRss() as api_memory, embedded_worker(bomb_settings):
        asset_id = upload(api, headers, forged, mime_type="audio/webm")["assetId"]
        wait_until(lambda: _asset(api, headers, asset_id)["processingStatus"] in ("READY", "FAILED"), timeout=120)
    asset = _asset(api, headers, asset_id)
    assert asset["processingStatus"] == "READY", asset["error"]
    spectrogram = next(p for p in asset["proxies"] if p["type"] == "SPECTROGRAM")
    assert spectrogram["details"]["sample_rate"] < 48000  # sized by the real 40 min, not the claimed 1 s
    peaks = next(p for p in asset["proxies"] if p["type"] == "WAVEFORM_PEAKS")
    assert peaks["details"]["samples"] == 2400 * 8000  # every decoded second made it into the peaks
    visuals = [entry for entry in _resources(api, asset_id)]
    assert visuals and max(entry["toolsPeakRssBytes"] for entry in visuals) < 300 * MIB  # unbounded: 513 MB
    assert api_memory.growth < 100 * MIB, f"the API process grew by {api_memory.growth / MIB:.0f} MiB"


def test_ffmpeg_over_its_memory_limit_is_a_clear_permanent_error(small_video: Path, tmp_path: Path) -> None:
    tools = FfmpegTools(memory_limit_bytes=300 * MIB)  # starts, decodes; x264 at 2160p wants more
    argv = ["ffmpeg", "-y", "-i", f"file:{small_video}", "-vf", "scale=3840:2160", "-c:v", "libx264",
            f"file:{tmp_path / 'out.mp4'}"]  # fmt: skip
    with pytest.raises(MediaTooLargeError, match="needs more memory than the stage limit of 300 MiB"):
        run_ffmpeg(argv, duration_seconds=2, on_progress=None, memory_limit_bytes=tools.memory_limit_bytes)
    with pytest.raises(MediaTooLargeError, match="ffprobe needs more memory"):
        FfmpegTools(memory_limit_bytes=8 * MIB).probe(small_video)


def test_the_deadline_grows_with_what_is_decoded_and_a_stall_ends() -> None:
    realtime = ["ffmpeg", "-re", "-f", "lavfi", "-i", "sine=duration=3", "-f", "null", "-"]
    # The header claims nothing; one second plus one per decoded second: a realtime run keeps up.
    run_ffmpeg(realtime, duration_seconds=None, on_progress=None,
               timeout=FfmpegDeadline(base_seconds=1.5, per_media_second=1.0))  # fmt: skip
    with pytest.raises(TransientProcessingError, match="timed out"):
        run_ffmpeg(realtime, duration_seconds=None, on_progress=None, timeout=FfmpegDeadline(base_seconds=1.0))


def test_every_stage_runs_outside_the_api_process(
    api: TestClient, bomb_settings: Settings, users: Users, small_video: Path
) -> None:
    _, headers = users.create()
    with embedded_worker(bomb_settings):
        asset_id = upload(api, headers, small_video, mime_type="video/mp4")["assetId"]
        wait_until(lambda: _asset(api, headers, asset_id)["processingStatus"] == "READY", timeout=60)
    reports = _resources(api, asset_id)
    assert len(reports) == 5  # probe, proxies, thumbnails, audio visuals, transcript
    pids = {entry["pid"] for entry in reports}
    # Each attempt in a stage process, never the API's; a warm one runs attempt after attempt.
    assert os.getpid() not in pids and 1 <= len(pids) < 5
