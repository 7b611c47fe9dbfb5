"""Frames on demand are the source's frames: on H.264 with B-frames and open GOPs, a 29.97 drop-frame MOV,
a variable-rate phone clip and MPEG-2 in a program stream, each frame asked for is the one the source shows
then (ffmpeg's ssim filter ≥ 0.98, and closer to it than to either neighbour)."""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import pytest

from fixtures.timeline_media import (
    drop_frame_mov,
    h264_open_gop,
    mpeg2_program_stream,
    presentation_times,
    reference_frames,
    rgb,
    source_frame_at,
    ssim,
    variable_rate,
)
from mediaingest.exceptions import ProcessingError
from mediaingest.models.enums import MediaType
from mediaingest.pipeline.frames import (
    SCRUB_RUNG,
    FrameSource,
    build_frames_command,
    decode_frames,
    fitted_size,
    frame_at,
    group_frames,
    seek_exact,
    timeline_frames,
)
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.stages.probe import probe
from mediaingest.pipeline.stages.proxies import picture_duration
from mediaingest.pipeline.types import MediaMetadata

OPTIONS = PipelineOptions()
WIDTH, HEIGHT = 160, 90
MAKERS = {
    "h264_open_gop": (h264_open_gop, "mp4"),
    "drop_frame_mov": (drop_frame_mov, "mov"),
    "variable_rate": (variable_rate, "mp4"),
    "mpeg2": (mpeg2_program_stream, "mpg"),
}


# --- pure parts -----------------------------------------------------------------------------------------


def test_the_frame_at_a_time_is_the_one_that_began_by_then() -> None:
    ntsc = Fraction(30000, 1001)
    assert [frame_at(t, Fraction(25)) for t in (0, 0.039, 0.04, 0.0399999999, 1.0, 9.99)] == [0, 0, 1, 1, 25, 249]
    assert frame_at(1001 / 30000 * 7, ntsc) == 7  # a frame's own start, rounded through a float
    assert timeline_frames(6.006, ntsc) == 180


def test_close_frames_share_one_decode_and_far_ones_seek() -> None:
    assert group_frames([90, 3, 4, 30, 29, 4], Fraction(25)) == [[3, 4, 29, 30], [90]]
    command = build_frames_command(
        Path("/media/a.mp4"), SCRUB_RUNG, [300, 10, 12], Fraction(25), width=WIDTH, height=HEIGHT
    )
    argv = command.argv("ffmpeg")
    # Two inputs: frames 10–12 from a frame before them, 300 on its own; each ends after its last frame.
    assert [item.options for item in command.inputs] == [
        ["-ss", "0.360000", "-t", "0.200000"],
        ["-ss", "11.960000", "-t", "0.120000"],
    ]
    graph = argv[argv.index("-filter_complex") + 1]
    assert r"[0:v:0]fps=25/1:start_time=0,select=eq(n\,1)+eq(n\,3),scale=160:90" in graph
    assert r"[1:v:0]fps=25/1:start_time=0,select=eq(n\,1),scale=160:90" in graph
    assert "concat=n=2[out]" in graph and "fps=25/1:start_time=0" in graph
    assert argv[-11:] == [
        "-map", "[out]", "-frames:v", "3", "-fps_mode", "passthrough", "-c:v", "rawvideo", "-f", "rawvideo", "pipe:1"
    ]  # fmt: skip


def test_containers_whose_seeks_guess_timestamps_are_decoded_from_their_start() -> None:
    assert seek_exact("mov,mp4,m4a,3gp,3g2,mj2") and seek_exact("matroska,webm")
    assert not seek_exact("mpeg") and not seek_exact("mpegts") and not seek_exact(None)
    transport = FrameSource(stream="0", seek_exact=False)
    command = build_frames_command(Path("/m.ts"), transport, [10, 200], Fraction(25), width=WIDTH, height=HEIGHT)
    assert [item.options for item in command.inputs] == [["-t", "8.080000"]]


def test_a_variable_rate_source_is_entered_a_second_early() -> None:
    phone = FrameSource(stream="0", seek_exact=True, variable_rate=True)
    command = build_frames_command(Path("/p.mp4"), phone, [100], Fraction(30), width=WIDTH, height=HEIGHT)
    assert command.inputs[0].options[:2] == ["-ss", "2.333333"]  # frame 70, 30 frames before


def test_sizes_keep_the_displayed_aspect() -> None:
    assert fitted_size(1920, 1080, width=640) == (640, 360)
    assert fitted_size(1080, 1920, height=90) == (51, 90)
    assert fitted_size(720, 576, width=1) == (1, 2)


# --- on real media --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, MediaMetadata]]:
    folder = tmp_path_factory.mktemp("timeline")
    made = {}
    for name, (maker, extension) in MAKERS.items():
        path = maker(folder / f"{name}.{extension}")
        made[name] = (path, probe(path, MediaType.VIDEO, options=OPTIONS))
    return made


def _check_exact(
    path: Path, metadata: MediaMetadata, frames: list[int], pictures: list[bytes], folder: Path
) -> list[float]:
    """SSIM of each picture against the source frame showing at its timeline frame, and each beats both
    neighbours of that source frame: the right frame, not merely a similar one."""
    assert metadata.frame_rate is not None
    rate = Fraction(metadata.frame_rate)
    times = presentation_times(path)
    references = reference_frames(path, WIDTH, HEIGHT)
    assert len(references) == len(times)
    wanted = [source_frame_at(times, frame, rate) for frame in frames]
    scores = ssim(pictures, [references[i] for i in wanted], WIDTH, HEIGHT, folder)
    before = ssim(pictures, [references[max(0, i - 1)] for i in wanted], WIDTH, HEIGHT, folder)
    after = ssim(pictures, [references[min(len(references) - 1, i + 1)] for i in wanted], WIDTH, HEIGHT, folder)
    for frame, index, score, previous, following in zip(frames, wanted, scores, before, after, strict=True):
        assert score >= 0.98, (frame, index, score)
        if index > 0:
            assert score > previous, (frame, index, score, previous)
        if index < len(references) - 1:
            assert score > following, (frame, index, score, following)
    return scores


@pytest.mark.parametrize("name", list(MAKERS))
def test_frames_asked_together_are_the_sources_frames(
    name: str, sources: dict[str, tuple[Path, MediaMetadata]], tmp_path: Path
) -> None:
    path, metadata = sources[name]
    assert metadata.frame_rate is not None
    rate = Fraction(metadata.frame_rate)
    seconds = picture_duration(metadata)
    assert seconds is not None
    total = timeline_frames(seconds, rate)
    chooser = random.Random(f"frames-{name}")
    # The first and last frames, a run of neighbours (one decode) and scattered ones (one seek each).
    frames = sorted({0, total - 1, 40, 41, 42, *chooser.sample(range(total), 12)})
    pictures = decode_frames(
        path, FrameSource.of(metadata), frames, rate, width=WIDTH, height=HEIGHT, tools=OPTIONS.tools, timeout=60
    )
    _check_exact(path, metadata, frames, [rgb(p) for p in pictures], tmp_path)


def test_the_drop_frame_mov_is_counted_at_29_97(sources: dict[str, tuple[Path, MediaMetadata]]) -> None:
    _, metadata = sources["drop_frame_mov"]
    assert metadata.frame_rate == "30000/1001" and metadata.timecode == "01:00:59;28"
    _, phone = sources["variable_rate"]
    assert phone.is_variable_frame_rate is True and phone.frame_rate == "30/1"
    _, mpeg2 = sources["mpeg2"]
    assert not seek_exact(mpeg2.format_name)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MAKERS))
def test_fifty_random_frames_one_by_one_match_the_source(
    name: str, sources: dict[str, tuple[Path, MediaMetadata]], tmp_path: Path
) -> None:
    path, metadata = sources[name]
    assert metadata.frame_rate is not None
    rate = Fraction(metadata.frame_rate)
    seconds = picture_duration(metadata)
    assert seconds is not None
    chooser = random.Random(f"one-by-one-{name}")
    times = [chooser.uniform(0, seconds) for _ in range(50)]
    frames = [min(frame_at(t, rate), timeline_frames(seconds, rate) - 1) for t in times]
    pictures = [
        rgb(decode_frames(path, FrameSource.of(metadata), [frame], rate, width=WIDTH, height=HEIGHT,
                          tools=OPTIONS.tools, timeout=60)[0])
        for frame in frames
    ]  # fmt: skip
    _check_exact(path, metadata, frames, pictures, tmp_path)


def test_a_frame_past_the_end_is_an_error_not_a_short_answer(
    sources: dict[str, tuple[Path, MediaMetadata]],
) -> None:
    path, metadata = sources["h264_open_gop"]
    with pytest.raises(ProcessingError, match="decoded 0 of the 1 frames"):
        decode_frames(path, FrameSource.of(metadata), [5000], Fraction(25), width=WIDTH, height=HEIGHT,
                      tools=OPTIONS.tools, timeout=60)  # fmt: skip
