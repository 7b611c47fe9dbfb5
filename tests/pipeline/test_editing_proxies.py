"""Proxies an editing timeline can trust: one constant standard rate in every rung, equal frame counts,
the source's start timecode, a lowest rung built for scrubbing, shots, and a poster that is not black."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from mediaingest.exceptions import PermanentProcessingError
from mediaingest.models.enums import MediaType
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.stages.probe import probe
from mediaingest.pipeline.stages.proxies import Rendition, check_renditions, generate_proxies
from mediaingest.pipeline.stages.thumbnails import generate_thumbnails, mean_luma, poster_positions
from mediaingest.pipeline.timing import analyse_timestamps, nearest_standard_rate
from mediaingest.pipeline.types import StageOutput

from .conftest import FFPROBE, _ffmpeg


def _packets(path: Path) -> list[dict[str, str]]:
    done = subprocess.run(
        [
            FFPROBE,
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,flags",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        check=True,
    )
    return list(json.loads(done.stdout)["packets"])


def _stream(path: Path, selector: str = "v:0") -> dict[str, object]:
    done = subprocess.run(
        [FFPROBE, "-v", "error", "-select_streams", selector, "-count_packets", "-show_streams", "-of", "json", path],
        capture_output=True,
        check=True,
    )
    return dict(json.loads(done.stdout)["streams"][0])


def _timecode_of(path: Path) -> str | None:
    done = subprocess.run(
        [FFPROBE, "-v", "error", "-show_entries", "stream_tags=timecode", "-of", "json", path],
        capture_output=True,
        check=True,
    )
    tags = [stream.get("tags", {}).get("timecode") for stream in json.loads(done.stdout)["streams"]]
    return next((tag for tag in tags if tag), None)


def _videos(outputs: list[StageOutput]) -> list[StageOutput]:
    return [o for o in outputs if o.format == "mp4"]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("editing-media")


@pytest.fixture(scope="module")
def vfr_clip(media: Path) -> Path:
    """A phone-like 720p H.264/AAC MP4 at nominally 30 fps with frames dropped and their gaps kept."""
    path = media / "vfr.mp4"
    _ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=4"),
        *("-f", "lavfi", "-i", "sine=frequency=440:duration=4"),
        *("-vf", r"select='not(between(n\,30\,44))*not(eq(mod(n\,7)\,3))'", "-fps_mode", "passthrough"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", path),
    )
    return path


@pytest.fixture(scope="module")
def drop_frame_mov(media: Path) -> Path:
    """29.97 fps H.264/AAC in a MOV with a drop-frame start timecode (a QuickTime tmcd track)."""
    path = media / "ntsc.mov"
    _ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30000/1001:duration=3"),
        *("-f", "lavfi", "-i", "sine=frequency=440:duration=3"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"),
        *("-timecode", "01:00:00;00", "-shortest", path),
    )
    return path


def _clip(media: Path, rate: str, name: str) -> Path:
    path = media / name
    _ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size=640x360:rate={rate}:duration=2"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", path),
    )
    return path


def _assert_every_rung_is_conformed(outputs: list[StageOutput], rate: Fraction, seconds: float) -> None:
    counts = {}
    for output in _videos(outputs):
        stream = _stream(output.path)
        assert Fraction(str(stream["r_frame_rate"])) == rate, output.path.name
        assert Fraction(str(stream["avg_frame_rate"])) == rate, output.path.name
        counts[output.path.name] = int(str(stream["nb_read_packets"]))
    expected = seconds * rate
    assert all(abs(count - expected) <= 1 for count in counts.values()), (counts, float(expected))
    assert len(set(counts.values())) == 1, counts  # rungs of one asset agree frame for frame


def test_variable_rate_source_is_detected_and_every_rung_encoded_at_the_timeline_rate(
    vfr_clip: Path, options: PipelineOptions, tmp_path: Path
) -> None:
    md = probe(vfr_clip, MediaType.VIDEO, options=options)
    assert md.is_variable_frame_rate is True
    assert md.frame_rate == "30/1"  # the phone's nominal rate, not the average of what survived
    assert md.frame_count is not None and md.frame_count < 120
    result = generate_proxies(vfr_clip, md, tmp_path, options=options)
    # Web-playable in every other respect, but a variable-rate source is never remuxed.
    assert [o.details["remuxed"] for o in _videos(result.outputs)] == [False, False]
    _assert_every_rung_is_conformed(result.outputs, Fraction(30), 4.0)


@pytest.mark.parametrize(
    ("rate", "expected"), [("24000/1001", "24000/1001"), ("48", "48/1"), ("10", "24000/1001"), ("120", "60/1")]
)
def test_constant_rates_are_conformed_to_the_nearest_standard_rate(
    media: Path, options: PipelineOptions, tmp_path: Path, rate: str, expected: str
) -> None:
    source = _clip(media, rate, f"rate-{rate.replace('/', '_')}.mp4")
    md = probe(source, MediaType.VIDEO, options=options)
    assert (md.frame_rate, md.is_variable_frame_rate) == (expected, False)
    assert md.frame_count == round(2 * Fraction(rate))
    result = generate_proxies(source, md, tmp_path, options=options)
    # The 360p source's only rung is the scrubbing rung, encoded at the timeline rate.
    _assert_every_rung_is_conformed(result.outputs, Fraction(expected), 2.0)


def test_drop_frame_timecode_is_read_and_written_into_every_proxy(
    drop_frame_mov: Path, options: PipelineOptions, tmp_path: Path
) -> None:
    md = probe(drop_frame_mov, MediaType.VIDEO, options=options)
    assert (md.timecode, md.frame_rate, md.is_variable_frame_rate) == ("01:00:00;00", "30000/1001", False)
    result = generate_proxies(drop_frame_mov, md, tmp_path, options=options)
    videos = _videos(result.outputs)
    # 720p is a copy (constant 29.97 is a standard rate), 360p an encode: both carry the timecode.
    assert [(o.resolution, o.details["remuxed"]) for o in videos] == [("360p", False), ("720p", True)]
    assert {o.path.name: _timecode_of(o.path) for o in videos} == {
        "proxy_360p.mp4": "01:00:00;00",
        "proxy_720p.mp4": "01:00:00;00",
    }
    _assert_every_rung_is_conformed(result.outputs, Fraction(30000, 1001), 3.003)


def test_lowest_rung_has_a_closed_gop_every_second_and_no_b_frames(
    drop_frame_mov: Path, options: PipelineOptions, tmp_path: Path
) -> None:
    md = probe(drop_frame_mov, MediaType.VIDEO, options=options)
    # "medium" uses B-frames unless told not to; ultrafast never does.
    result = generate_proxies(drop_frame_mov, md, tmp_path, options=replace(options, x264_preset="medium"))
    scrub = next(o for o in _videos(result.outputs) if o.resolution == "360p")
    assert _stream(scrub.path)["has_b_frames"] == 0
    packets = _packets(scrub.path)
    keyframes = [float(p["pts_time"]) for p in packets if "K" in p["flags"]]
    assert keyframes[0] == 0.0
    ends = [*keyframes[1:], float(packets[-1]["pts_time"])]
    assert max(end - start for start, end in zip(keyframes, ends, strict=True)) <= 1.01
    # Without B-frames, decode order is presentation order.
    times = [float(p["pts_time"]) for p in packets]
    assert times == sorted(times)
    upper = next(o for o in _videos(result.outputs) if o.resolution == "720p")
    assert upper.details["remuxed"] is True  # the other rungs keep their 2 s GOPs (or the source's)


def test_a_rung_that_disagrees_with_the_source_is_a_stage_error(
    drop_frame_mov: Path, options: PipelineOptions, tmp_path: Path
) -> None:
    md = probe(drop_frame_mov, MediaType.VIDEO, options=options)
    short = tmp_path / "proxy_360p.mp4"
    _ffmpeg("-i", drop_frame_mov, "-t", "2", "-vf", "scale=640:360", "-c:v", "libx264", "-preset", "ultrafast", short)
    rung = Rendition(360, 640, 360, "h264", False, True, short)
    with pytest.raises(PermanentProcessingError, match=r"disagree in length: proxy_360p.mp4 lasts 2\.0\d\d s"):
        check_renditions([rung], md, options)


def test_timestamp_analysis() -> None:
    # Matroska rounds 29.97 fps to the millisecond: 33 and 34 ms intervals are one constant rate.
    mkv = [round(n * 1001 / 30000, 3) for n in range(300)]
    timing = analyse_timestamps(mkv)
    assert timing is not None and not timing.variable
    assert (timing.source_rate, timing.timeline_rate, timing.frames) == (Fraction(30000, 1001),) * 2 + (300,)
    # B-frames arrive out of presentation order; the reorder window puts them back.
    reordered = [0.0, 0.12, 0.04, 0.08, 0.24, 0.16, 0.2, 0.28]
    timing = analyse_timestamps(reordered)
    assert timing is not None and (timing.variable, timing.timeline_rate) == (False, Fraction(25))
    # A gap of one dropped frame makes the clip variable.
    assert (timing := analyse_timestamps([0.0, 0.04, 0.12, 0.16])) is not None and timing.variable
    assert analyse_timestamps([0.0]) is None
    assert [nearest_standard_rate(r) for r in (23.98, 29.97, 59.94, 15, 240)] == [
        Fraction(24000, 1001), Fraction(30000, 1001), Fraction(60000, 1001), Fraction(24000, 1001), Fraction(60)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def black_open(media: Path) -> Path:
    """Three seconds of black, then a cut to a test pattern, then a cut to colour bars."""
    path = media / "black-open.mp4"
    _ffmpeg(
        *("-f", "lavfi", "-i", "color=black:size=640x360:rate=25:duration=3"),
        *("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=2"),
        *("-f", "lavfi", "-i", "smptebars=size=640x360:rate=25:duration=1"),
        *("-filter_complex", "[0][1][2]concat=n=3[v]", "-map", "[v]"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", path),
    )
    return path


def test_shots_are_found_in_the_proxies_pass_and_the_poster_is_never_the_black_open(
    black_open: Path, options: PipelineOptions, tmp_path: Path
) -> None:
    md = probe(black_open, MediaType.VIDEO, options=options)
    result = generate_proxies(black_open, md, tmp_path / "proxies", options=options)
    assert result.measurements["shots"] == [3.0, 5.0]
    assert not (tmp_path / "proxies" / "shots.log").exists()

    # Side by side with the proxies (shots not known yet): 10 % in is black, so it looks further on.
    early = generate_thumbnails(black_open, md, MediaType.VIDEO, tmp_path / "early", options=options)
    poster = early.outputs[0]
    assert poster.details["positionSeconds"] >= 3.0 and mean_luma(poster.path) > 0.3
    # With the shots known (a later run, or an operator that ran the proxies first): the first shot after
    # the first second whose picture is not black.
    md.measurements["proxies"] = result.measurements
    assert poster_positions(md, options)[0] == pytest.approx(3.02)
    later = generate_thumbnails(black_open, md, MediaType.VIDEO, tmp_path / "later", options=options)
    assert later.outputs[0].details["positionSeconds"] == pytest.approx(3.02)
    assert mean_luma(later.outputs[0].path) > 0.3
    assert sorted(p.name for p in (tmp_path / "later").iterdir()) == ["poster.jpg"]  # no candidates left over


def test_an_all_black_video_still_gets_its_brightest_poster(
    media: Path, options: PipelineOptions, tmp_path: Path
) -> None:
    dark = media / "dark.mp4"
    _ffmpeg("-f", "lavfi", "-i", "color=0x050505:size=320x180:rate=25:duration=2", "-c:v", "libx264", dark)
    md = probe(dark, MediaType.VIDEO, options=options)
    result = generate_thumbnails(dark, md, MediaType.VIDEO, tmp_path, options=options)
    assert [o.path.name for o in result.outputs] == ["poster.jpg"]
    assert mean_luma(result.outputs[0].path) < 0.1
