"""The smart cut: frames [in, out) of a source as an MP4 with exactly out − in frames, the first and last
the source's frames at in and out − 1, the middle copied packet for packet where the source allows, audio
trimmed to the sample, and the timecode moved to the in point — cut inside an open GOP included."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest

from fixtures.timeline_media import (
    FFPROBE,
    best_lag,
    drop_frame_mov,
    h264_open_gop,
    mono_samples,
    mpeg2_program_stream,
    reference_frames,
    ssim,
    variable_rate,
)
from mediaingest.models.enums import MediaType
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.smartcut import (
    ClipRender,
    Packet,
    clip_frames,
    copyable,
    plan_cut,
    render_clip,
    shift_timecode,
)
from mediaingest.pipeline.stages.probe import probe
from mediaingest.pipeline.types import MediaMetadata

OPTIONS = PipelineOptions()
NTSC = Fraction(30000, 1001)
WIDTH, HEIGHT = 160, 90


# --- pure parts -----------------------------------------------------------------------------------------


def _open_gop_packets() -> list[Packet]:
    """10 frames a GOP at 1/10 s a frame in a 1/10 time base; I P B B order; keyframes 10 and 20 are
    open (their two leading B-frames, shown before them, are decoded after them)."""
    packets = []
    for gop in range(3):
        base = gop * 10
        leading = [] if gop == 0 else [Packet(base - 2, 0, False), Packet(base - 1, 0, False)]
        order = [Packet(base, 0, True), *leading]
        order += [Packet(base + 3, 0, False), Packet(base + 1, 0, False), Packet(base + 2, 0, False)]
        order += [Packet(base + 6, 0, False), Packet(base + 4, 0, False), Packet(base + 5, 0, False)]
        order += [Packet(base + 7, 0, False)]
        if gop == 2:
            order += [Packet(base + 8, 0, False), Packet(base + 9, 0, False)]
        packets += order
    return [Packet(p.pts, dts, p.key) for dts, p in enumerate(packets)]


def test_an_open_gop_cut_copies_whole_gops_and_encodes_the_leading_frames() -> None:
    packets = _open_gop_packets()
    plan = plan_cut(packets, Fraction(1, 10), Fraction(10), 3, 25)
    # Head 3–9 encoded; keyframe 10 copied without its leading 8 and 9; 18 and 19 lead keyframe 20: the tail.
    assert (plan.head, plan.copy_frames, plan.tail) == ((3, 10), (10, 18), (18, 25))
    assert [packets[i].pts for i in plan.copy_packets] == [10, 13, 11, 12, 16, 14, 15, 17]
    assert plan.frames == 22 and plan.encoded_frames == 14


def test_cuts_on_keyframes_encode_nothing_there_and_short_ranges_encode_all() -> None:
    packets = _open_gop_packets()
    on_keys = plan_cut(packets, Fraction(1, 10), Fraction(10), 10, 20)
    assert (on_keys.head, on_keys.copy_frames, on_keys.tail) == (None, (10, 18), (18, 20))
    inside = plan_cut(packets, Fraction(1, 10), Fraction(10), 12, 19)
    assert (inside.head, inside.copy_frames, inside.tail) == ((12, 19), None, None)


def test_timecodes_move_on_as_smpte_counts_them() -> None:
    assert shift_timecode("00:00:59;29", 1, NTSC) == "00:01:00;02"  # frames 0 and 1 of the minute are skipped
    assert shift_timecode("00:09:59;29", 1, NTSC) == "00:10:00;00"  # but not of every tenth minute
    assert shift_timecode("00:00:00;00", 17982, NTSC) == "00:10:00;00"
    assert shift_timecode("01:00:59;28", 2, NTSC) == "01:01:00;02"
    assert shift_timecode("10:00:00:00", 25 * 61 + 3, Fraction(25)) == "10:01:01:03"


def test_only_sources_that_reorder_by_two_frames_at_most_are_copied() -> None:
    def metadata(depth: int) -> MediaMetadata:
        stream = {"index": 0, "codec_type": "video", "has_b_frames": depth}
        return MediaMetadata(video_codec="h264", format_name="mov,mp4", fps=25.0, frame_rate="25/1",
                             is_variable_frame_rate=False, raw={"streams": [stream]})  # fmt: skip

    assert copyable(metadata(0)) and copyable(metadata(2))
    assert not copyable(metadata(3))  # the joined stream would declare 2 (the first segment's) and lose frames


def test_in_and_out_are_the_frames_showing_then() -> None:
    assert clip_frames(12 + 5 / 25, 20.0, Fraction(25)) == (305, 500)
    assert clip_frames(1001 / 30000 * 7, 1.0, NTSC) == (7, 29)


# --- on real media --------------------------------------------------------------------------------------


def _probe(path: Path) -> MediaMetadata:
    return probe(path, MediaType.VIDEO, options=OPTIONS)


def _streams(path: Path) -> list[dict[str, object]]:
    done = subprocess.run(
        [FFPROBE, "-v", "error", "-count_frames", "-show_entries",
         "stream=codec_type,codec_name,nb_read_frames,start_time,duration:stream_tags=timecode", "-of", "json",
         str(path)], capture_output=True, check=True, text=True,
    )  # fmt: skip
    streams: list[dict[str, object]] = json.loads(done.stdout)["streams"]
    return streams


def _check_clip(source: Path, clip: ClipRender, in_frame: int, out_frame: int, folder: Path) -> None:
    """Exactly out − in frames; the first and last are the source's frames in and out − 1 (SSIM ≥ 0.98,
    and closer to them than to their neighbours)."""
    video = next(s for s in _streams(clip.path) if s["codec_type"] == "video")
    assert int(str(video["nb_read_frames"])) == out_frame - in_frame
    references = reference_frames(source, WIDTH, HEIGHT)
    ours = reference_frames(clip.path, WIDTH, HEIGHT)
    assert len(ours) == out_frame - in_frame
    pairs = [(ours[0], in_frame), (ours[-1], out_frame - 1)]
    for offset in (0, -1, 1):
        wanted = [references[min(len(references) - 1, max(0, index + offset))] for _, index in pairs]
        scores = ssim([picture for picture, _ in pairs], wanted, WIDTH, HEIGHT, folder)
        if offset == 0:
            assert min(scores) >= 0.98, scores
            exact = scores
        else:
            assert all(s < e for s, e in zip(scores, exact, strict=True)), (offset, scores, exact)


@pytest.fixture(scope="module")
def open_gop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return h264_open_gop(tmp_path_factory.mktemp("cut") / "open-gop.mp4", seconds=8, noise=True)


def test_a_cut_inside_open_gops_is_exact_copies_the_middle_and_keeps_audio_in_sync(
    open_gop: Path, tmp_path: Path
) -> None:
    metadata = _probe(open_gop)
    assert copyable(metadata)
    # In at frame 37 (inside the first GOP), out at 187 (inside the fourth, before the open keyframe 200).
    clip = render_clip(open_gop, metadata, in_frame=37, out_frame=187, work_dir=tmp_path / "work", options=OPTIONS)
    assert clip.copied and clip.plan.copy_frames == (50, 149) and clip.plan.tail == (149, 187)
    _check_clip(open_gop, clip, 37, 187, tmp_path)
    # The copied frames are the source's packets: decoded, they are bit-identical to the source's.
    copied = reference_frames(clip.path, WIDTH, HEIGHT)[50 - 37 : 149 - 37]
    assert copied == reference_frames(open_gop, WIDTH, HEIGHT)[50:149]
    audio = next(s for s in _streams(clip.path) if s["codec_type"] == "audio")
    assert float(str(audio["duration"])) == pytest.approx(6.0, abs=0.03)
    lag = best_lag(mono_samples(clip.path), mono_samples(open_gop), start=round(37 / 25 * 48000))
    assert abs(lag) <= 48, lag  # within 1 ms at 48 kHz


def test_the_drop_frame_mov_keeps_both_tracks_and_its_timecode_moves_to_the_in_point(tmp_path: Path) -> None:
    source = drop_frame_mov(tmp_path / "df.mov", seconds=5)
    metadata = _probe(source)
    clip = render_clip(source, metadata, in_frame=2, out_frame=100, work_dir=tmp_path / "work", options=OPTIONS)
    assert clip.timecode == "01:01:00;02" and clip.copied
    streams = _streams(clip.path)
    assert [s["codec_type"] for s in streams if s["codec_type"] != "data"] == ["video", "audio", "audio"]
    tags = [s.get("tags") or {} for s in streams]
    assert any(isinstance(t, dict) and t.get("timecode") == "01:01:00;02" for t in tags), streams
    _check_clip(source, clip, 2, 100, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("maker", "suffix"), [(variable_rate, "mp4"), (mpeg2_program_stream, "mpg")], ids=["vfr", "mpeg2"]
)
def test_sources_that_cannot_be_copied_are_encoded_whole_and_still_exact(
    maker: Callable[[Path], Path], suffix: str, tmp_path: Path
) -> None:
    source = maker(tmp_path / f"source.{suffix}")
    metadata = _probe(source)
    assert not copyable(metadata)
    clip = render_clip(source, metadata, in_frame=20, out_frame=95, work_dir=tmp_path / "work", options=OPTIONS)
    assert not clip.copied and clip.plan.head == (20, 95)
    video = next(s for s in _streams(clip.path) if s["codec_type"] == "video")
    assert int(str(video["nb_read_frames"])) == 75
    if maker is mpeg2_program_stream:  # constant rate: the timeline's frames are the source's
        _check_clip(source, clip, 20, 95, tmp_path)
