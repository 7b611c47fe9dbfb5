"""Running ffmpeg: progress, cancellation, timeouts and the translation of its failures."""

from __future__ import annotations

import itertools
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mediaingest.exceptions import (
    MediaUnreadableError,
    PermanentProcessingError,
    TransientProcessingError,
)
from mediaingest.pipeline.ffmpeg import (
    FfmpegCommand,
    FfmpegInput,
    FfmpegOutput,
    FfmpegTools,
    FilterGraph,
    StageCancelledError,
    ffprobe_json,
    filter_spec,
    run_ffmpeg,
)

ProbeFile = Callable[[Path], dict[str, Any]]
FFMPEG = "/usr/bin/ffmpeg"
FFPROBE = "/usr/bin/ffprobe"


def _lavfi_command(out: Path, *, duration: float, realtime: bool = False) -> FfmpegCommand:
    source = FfmpegInput(f"testsrc=size=160x90:rate=25:duration={duration}", ["-f", "lavfi"])
    if realtime:
        source.options.insert(0, "-re")  # read at native speed, so the run lasts `duration` seconds
    return FfmpegCommand(inputs=[source], outputs=[FfmpegOutput(out, ["-c:v", "rawvideo", "-f", "nut"])])


def test_filter_spec_escapes_expressions_so_ffmpeg_reads_them(tmp_path: Path, probe_file: ProbeFile) -> None:
    spec = filter_spec("scale", w="min(320,iw/2)", h=-2)
    assert spec == "scale=w=min(320\\,iw/2):h=-2"
    graph = FilterGraph()
    graph.chain(["0:v"], [spec, filter_spec("setsar", 1)], ["out"])
    out = tmp_path / "scaled.nut"
    command = FfmpegCommand(
        inputs=[FfmpegInput("testsrc=size=1280x720:rate=5:duration=0.4", ["-f", "lavfi"])],
        filter_graph=graph,
        outputs=[FfmpegOutput(out, ["-map", "[out]", "-c:v", "rawvideo", "-f", "nut"])],
    )
    FfmpegTools(FFMPEG, FFPROBE).run(command, duration_seconds=None, on_progress=None)
    video = probe_file(out)["streams"][0]
    assert (video["width"], video["height"]) == (320, 180)


def test_paths_with_colons_are_files_not_protocols(tmp_path: Path, probe_file: ProbeFile) -> None:
    out = tmp_path / "a:b.nut"
    FfmpegTools(FFMPEG, FFPROBE).run(_lavfi_command(out, duration=0.2), duration_seconds=None, on_progress=None)
    assert probe_file(out)["streams"][0]["codec_name"] == "rawvideo"


def test_progress_fractions_increase_and_end_at_one(tmp_path: Path) -> None:
    seen: list[float] = []
    argv = _lavfi_command(tmp_path / "out.nut", duration=1.5, realtime=True).argv(FFMPEG)
    run_ffmpeg(argv, duration_seconds=1.5, on_progress=lambda f, _: seen.append(f), progress_interval=0.1)
    assert len(seen) >= 4, seen  # several reports from a 1.5 s run, not just the final one
    assert all(b > a for a, b in itertools.pairwise(seen)), seen
    assert seen[-1] == 1.0
    assert all(0 < f < 1 for f in seen[:-1])


def test_progress_is_throttled(tmp_path: Path) -> None:
    stamps: list[float] = []
    argv = _lavfi_command(tmp_path / "out.nut", duration=1.5, realtime=True).argv(FFMPEG)
    run_ffmpeg(argv, duration_seconds=1.5, on_progress=lambda *_: stamps.append(time.monotonic()))
    gaps = [b - a for a, b in itertools.pairwise(stamps[:-1])]  # the final 1.0 is not throttled
    assert all(gap >= 0.24 for gap in gaps), gaps


def test_cancel_kills_ffmpeg_promptly(tmp_path: Path) -> None:
    cancel = threading.Event()
    argv = _lavfi_command(tmp_path / "out.nut", duration=30, realtime=True).argv(FFMPEG)
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    started = time.monotonic()
    with pytest.raises(StageCancelledError):
        run_ffmpeg(argv, duration_seconds=30, on_progress=None, cancel=cancel)
    assert time.monotonic() - started < 3


def test_timeout_is_transient(tmp_path: Path) -> None:
    argv = _lavfi_command(tmp_path / "out.nut", duration=30, realtime=True).argv(FFMPEG)
    with pytest.raises(TransientProcessingError, match="timed out"):
        run_ffmpeg(argv, duration_seconds=30, on_progress=None, timeout=0.5)


def test_killed_by_a_signal_is_transient(tmp_path: Path) -> None:
    # Stands in for the OOM killer: a "ffmpeg" that SIGKILLs itself.
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\nkill -KILL $$\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(TransientProcessingError, match="SIGKILL"):
        run_ffmpeg([str(fake), "-i", "x"], duration_seconds=None, on_progress=None)


def test_unreadable_input_is_permanent_with_ffmpegs_reason(tmp_path: Path, garbage_file: Path) -> None:
    command = FfmpegCommand(inputs=[FfmpegInput(garbage_file)], outputs=[FfmpegOutput(tmp_path / "o.mp4")])
    with pytest.raises(MediaUnreadableError) as caught:
        FfmpegTools(FFMPEG, FFPROBE).run(command, duration_seconds=None, on_progress=None)
    assert "Invalid data found" in caught.value.message
    assert str(garbage_file) not in caught.value.message  # temp paths mean nothing to clients
    assert caught.value.details["stderr"]


def test_a_command_ffmpeg_rejects_is_permanent_but_not_blamed_on_the_media(tmp_path: Path) -> None:
    argv = [FFMPEG, "-f", "lavfi", "-i", "testsrc=duration=0.1", "-vf", "nosuchfilter", str(tmp_path / "o.nut")]
    with pytest.raises(PermanentProcessingError) as caught:
        run_ffmpeg(argv, duration_seconds=None, on_progress=None)
    assert not isinstance(caught.value, MediaUnreadableError)


def test_a_missing_binary_is_permanent() -> None:
    with pytest.raises(PermanentProcessingError, match="cannot start ffmpeg"):
        run_ffmpeg(["/nonexistent/ffmpeg"], duration_seconds=None, on_progress=None)


def test_ffprobe_json_describes_media_and_rejects_garbage(video_1080p: Path, garbage_file: Path) -> None:
    data = ffprobe_json(video_1080p, ffprobe=FFPROBE)
    assert {s["codec_type"] for s in data["streams"]} == {"video", "audio"}
    with pytest.raises(MediaUnreadableError, match="ffprobe cannot read the media: Invalid data"):
        ffprobe_json(garbage_file, ffprobe=FFPROBE)
