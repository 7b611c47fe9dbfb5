"""proxies: renditions, remux, tone mapping, sprite sheets and the storyboard, checked on the real files."""

from __future__ import annotations

import itertools
import re
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mediaingest.models.enums import MediaType, ProxyType
from mediaingest.pipeline.hls import parse_media_playlist
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.stages.probe import probe
from mediaingest.pipeline.stages.proxies import build_proxy_plan, generate_proxies, rendition_sizes, sprite_tile_size
from mediaingest.pipeline.stages.sprites import SpriteGrid, SpriteSheetWriter, storyboard_vtt
from mediaingest.pipeline.types import MediaMetadata, StageOutput, StageResult

ProbeFile = Callable[[Path], dict[str, Any]]
CUE = re.compile(
    r"^(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})\n(sprite_\d{3}\.jpg)#xywh=(\d+),(\d+),(\d+),(\d+)$"
)


def _by_name(result: StageResult) -> dict[str, StageOutput]:
    return {output.path.name: output for output in result.outputs}


def _video(probe_file: ProbeFile, path: Path) -> dict[str, Any]:
    return next(s for s in probe_file(path)["streams"] if s["codec_type"] == "video")


def _codecs(probe_file: ProbeFile, path: Path) -> dict[str, str]:
    return {s["codec_type"]: s["codec_name"] for s in probe_file(path)["streams"]}


def _moov_before_mdat(path: Path) -> bool:
    """+faststart: the index comes first, so a browser can start playing before the download ends."""
    with path.open("rb") as handle:
        head = handle.read(64 * 1024)
    moov, mdat = head.find(b"moov"), head.find(b"mdat")
    return moov != -1 and (mdat == -1 or moov < mdat)


def _video_packets_md5(path: Path) -> str:
    done = subprocess.run(
        ["/usr/bin/ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "md5", "-"],
        capture_output=True,
        check=True,
    )
    return done.stdout.decode().strip()


def _dark_share(path: Path) -> float:
    """Share of near-black RGB values in the first frame, seen at tile size."""
    command = ["/usr/bin/ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1"]
    command += ["-vf", "scale=160:90,format=rgb24", "-f", "rawvideo", "-"]
    pixels = subprocess.run(command, capture_output=True, check=True).stdout
    return sum(1 for value in pixels if value <= 16) / len(pixels)


def _cues(vtt: str) -> list[re.Match[str]]:
    assert vtt.startswith("WEBVTT\n\n")
    blocks = [block for block in vtt[len("WEBVTT\n\n") :].split("\n\n") if block.strip()]
    matches = [CUE.match(block.strip()) for block in blocks]
    assert all(matches), blocks
    return [m for m in matches if m is not None]


# --- pure planning ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("display", "expected"),
    [
        ((1920, 1080), [(360, 640, 360), (720, 1280, 720), (1080, 1920, 1080)]),
        ((1280, 720), [(360, 640, 360), (720, 1280, 720)]),  # never upscaled to 1080p
        ((1080, 1920), [(360, 360, 640), (720, 720, 1280), (1080, 1080, 1920)]),  # portrait, by short side
        ((320, 180), [(180, 320, 180)]),  # smaller than the lowest rung: its own size
        ((853, 480), [(360, 640, 360)]),  # widths rounded to even
        ((1440, 1080), [(360, 480, 360), (720, 960, 720), (1080, 1440, 1080)]),  # 4:3 kept
        ((321, 181), [(181, 320, 180)]),  # odd tiny source: even, and not a pixel larger
    ],
)
def test_rendition_sizes(display: tuple[int, int], expected: list[tuple[int, int, int]]) -> None:
    assert rendition_sizes(*display, (360, 720, 1080)) == expected


def test_one_ffmpeg_command_decodes_once_and_splits(
    video_1080p: Path, options: PipelineOptions, tmp_path: Path
) -> None:
    md = probe(video_1080p, MediaType.VIDEO, options=options)
    plan = build_proxy_plan(video_1080p, md, tmp_path, options)
    assert plan.command is not None
    argv = plan.command.argv("ffmpeg")
    assert argv.count("-i") == 1 and argv.count("-filter_complex") == 1
    graph = argv[argv.index("-filter_complex") + 1]
    # 360p, 720p, the sprite and the shot branches share one decode at the timeline rate; 1080p is a copy.
    assert md.frame_rate == "25/1" and graph.startswith("[0:0]fps=25/1,split=4[")
    assert graph.count("libx264") == 0 and argv.count("libx264") == 2
    assert [r.resolution for r in plan.renditions] == ["360p", "720p", "1080p"]
    assert [r.remux for r in plan.renditions] == [False, False, True]
    assert plan.command.outputs[-1].path == "pipe:1"  # sprite tiles, streamed to SpriteSheetWriter
    assert plan.command.outputs[-1].options[:2] == ["-map", "[tiles]"]
    # The 1080p copy runs first, alone (packets only, no decode): each rung's encoder or copy feeds its
    # MP4 and its HLS playlist through one tee.
    assert plan.remux_command is not None and plan.remux_command.filter_graph is None
    (remux,) = plan.remux_command.outputs
    assert "copy" in remux.options and remux.options[-2:] == ["-f", "tee"]
    assert str(remux.path).startswith(f"[f=mp4:movflags=+faststart]{tmp_path / 'proxy_1080p.mp4'}|[f=hls:")


def test_a_heavy_web_playable_source_is_encoded_not_remuxed(
    video_1080p: Path, options: PipelineOptions, tmp_path: Path
) -> None:
    md = probe(video_1080p, MediaType.VIDEO, options=options)
    camera_master = MediaMetadata.from_dict({**md.to_dict(), "video_bitrate": 100_000_000, "fps": 30.0})
    plan = build_proxy_plan(video_1080p, camera_master, tmp_path, options)
    assert not any(r.remux for r in plan.renditions)


def test_sprite_writer_lays_out_streamed_tiles_and_the_vtt_points_at_them(tmp_path: Path) -> None:
    grid = SpriteGrid(interval_seconds=2.0, tile_width=16, tile_height=8, columns=2, rows=2)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255)]
    stream = b"".join(Image.new("RGB", (16, 8), colour).tobytes() for colour in colours)
    writer = SpriteSheetWriter(tmp_path, grid, jpeg_quality=95)
    for start in range(0, len(stream), 100):  # chunks that split tiles anywhere
        writer.feed(stream[start : start + 100])
    sheets = writer.finish()
    # Four tiles fill the first 2×2 sheet; the last two need only one row of the second.
    assert [(s.path.name, s.tiles, s.width, s.height) for s in sheets] == [
        ("sprite_000.jpg", 4, 32, 16),
        ("sprite_001.jpg", 2, 32, 8),
    ]
    cues = _cues(storyboard_vtt(writer.placements, grid, duration=11.5))
    assert [(c[1], c[2]) for c in cues][:2] == [("00:00:00.000", "00:00:02.000"), ("00:00:02.000", "00:00:04.000")]
    assert cues[-1][2] == "00:00:11.500"  # the last cue runs to the end
    for cue, colour in zip(cues, colours, strict=True):
        with Image.open(tmp_path / cue[3]) as sheet:
            x, y, w, h = (int(v) for v in cue.groups()[3:])
            pixel = sheet.convert("RGB").getpixel((x + w // 2, y + h // 2))
            assert all(abs(a - b) < 40 for a, b in zip(pixel, colour, strict=True)), (cue[0], pixel, colour)


def test_a_short_video_gets_one_small_sheet(tmp_path: Path) -> None:
    grid = SpriteGrid(interval_seconds=2.0, tile_width=16, tile_height=8, columns=10, rows=10)
    writer = SpriteSheetWriter(tmp_path, grid)
    writer.feed(b"\x80" * grid.tile_bytes * 3)
    [sheet] = writer.finish()
    assert (sheet.columns, sheet.rows, sheet.width, sheet.height) == (3, 1, 48, 8)


# --- real encodes -------------------------------------------------------------------------------


@pytest.mark.slow
def test_1080p_source_gets_three_rungs_and_a_remuxed_1080p(
    video_1080p: Path, options: PipelineOptions, tmp_path: Path, probe_file: ProbeFile
) -> None:
    md = probe(video_1080p, MediaType.VIDEO, options=options)
    seen: list[float] = []
    fast_progress = replace(options, progress_interval_seconds=0.05)
    result = generate_proxies(video_1080p, md, tmp_path, options=fast_progress, on_progress=lambda f, _: seen.append(f))
    outputs = _by_name(result)

    for name, size in {
        "proxy_360p.mp4": (640, 360),
        "proxy_720p.mp4": (1280, 720),
        "proxy_1080p.mp4": (1920, 1080),
    }.items():
        output = outputs[name]
        assert (output.kind, output.bucket, output.format, output.content_type) == (
            ProxyType.VIDEO, "proxies", "mp4", "video/mp4"
        )  # fmt: skip
        video = _video(probe_file, output.path)
        assert (video["width"], video["height"]) == size == (output.width, output.height)
        assert video["pix_fmt"] == "yuv420p"
        assert _codecs(probe_file, output.path) == {"video": "h264", "audio": "aac"}
        assert _moov_before_mdat(output.path), name
        assert float(probe_file(output.path)["format"]["duration"]) == pytest.approx(3.0, abs=0.15)

    assert outputs["proxy_1080p.mp4"].details["remuxed"] is True
    assert outputs["proxy_1080p.mp4"].quality == "copy"
    # A remux copies the compressed video untouched: the packets are bit-identical to the source's.
    assert _video_packets_md5(outputs["proxy_1080p.mp4"].path) == _video_packets_md5(video_1080p)
    assert _video_packets_md5(outputs["proxy_720p.mp4"].path) != _video_packets_md5(video_1080p)
    assert outputs["proxy_720p.mp4"].details["remuxed"] is False

    # Sprites from the same pass: one tile every 2 s of a 3 s video → 2 tiles (the fps filter rounds).
    sheet = outputs["sprite_000.jpg"]
    assert (sheet.kind, sheet.bucket, sheet.details["tiles"]) == (ProxyType.SPRITE_SHEET, "processed", 2)
    with Image.open(sheet.path) as image:
        assert image.format == "JPEG"
        assert image.size == (sheet.width, sheet.height) == (2 * 160, 90)
    cues = _cues(outputs["storyboard.vtt"].path.read_text())
    assert len(cues) == 2 == outputs["storyboard.vtt"].details["cues"]
    assert cues[-1][2] == "00:00:03.000"

    assert len(seen) >= 2 and seen[-1] == 1.0
    assert all(b > a for a, b in itertools.pairwise(seen))


@pytest.mark.slow
def test_portrait_phone_clip_gets_portrait_proxies(
    phone_clip: Path, options: PipelineOptions, tmp_path: Path, probe_file: ProbeFile
) -> None:
    md = probe(phone_clip, MediaType.VIDEO, options=options)
    ladder = replace(options, proxy_heights=(240, 360, 720))
    outputs = _by_name(generate_proxies(phone_clip, md, tmp_path, options=ladder))
    assert sorted(n for n in outputs if n.endswith(".mp4")) == ["proxy_240p.mp4", "proxy_360p.mp4"]  # no 720p
    for name, size in {"proxy_240p.mp4": (240, 426), "proxy_360p.mp4": (360, 640)}.items():
        video = _video(probe_file, outputs[name].path)
        assert (video["width"], video["height"]) == size
        assert not video.get("side_data_list")  # turned upright, so no display matrix is left to apply
        assert outputs[name].details["remuxed"] is False  # rotated sources are always encoded
    # The storyboard is upright too: tiles at the display aspect, not a landscape box with bars.
    assert (outputs["sprite_000.jpg"].details["tile_width"], outputs["sprite_000.jpg"].details["tile_height"]) == (
        90,
        160,
    )
    assert "#xywh=0,0,90,160" in outputs["storyboard.vtt"].path.read_text()


@pytest.mark.parametrize(
    ("display", "tile"),
    [((1920, 1080), (160, 90)), ((1080, 1920), (90, 160)), ((1440, 1080), (120, 90)), ((1000, 1000), (90, 90))],
)
def test_storyboard_tiles_follow_the_display_aspect(display: tuple[int, int], tile: tuple[int, int]) -> None:
    assert sprite_tile_size(160, 90, *display) == tile


@pytest.mark.slow
def test_hdr_source_is_tone_mapped_to_sdr(
    hdr_pq_clip: Path, options: PipelineOptions, tmp_path: Path, probe_file: ProbeFile
) -> None:
    md = probe(hdr_pq_clip, MediaType.VIDEO, options=options)
    outputs = _by_name(generate_proxies(hdr_pq_clip, md, tmp_path, options=options))
    video = _video(probe_file, outputs["proxy_360p.mp4"].path)
    assert (video["codec_name"], video["pix_fmt"], video["width"], video["height"]) == ("h264", "yuv420p", 640, 360)
    assert (video["color_transfer"], video["color_primaries"]) == ("bt709", "bt709")
    # The fixture holds ordinary picture values tagged PQ: read as PQ and tone-mapped, its dark
    # areas sink to black (measured at tile size: 46 % of values ≤ 16 against 36-37 % in a plain
    # decode; 44.6 % in the sprite, whose small JPEG softens edges), so an untouched copy or a tile
    # that skipped the tone mapping fails here. The margin sits halfway between the two.
    plain = _dark_share(hdr_pq_clip)
    assert _dark_share(outputs["proxy_360p.mp4"].path) > plain + 0.05
    assert _dark_share(outputs["sprite_000.jpg"].path) > plain + 0.05


@pytest.mark.slow
def test_non_web_playable_source_is_encoded_and_never_upscaled(
    mpeg2_clip: Path, options: PipelineOptions, tmp_path: Path, probe_file: ProbeFile
) -> None:
    md = probe(mpeg2_clip, MediaType.VIDEO, options=options)
    assert md.video_codec == "mpeg2video"
    result = generate_proxies(mpeg2_clip, md, tmp_path, options=options)
    videos = [o for o in result.outputs if o.kind == ProxyType.VIDEO]
    assert [(o.resolution, o.width, o.height) for o in videos] == [("360p", 640, 360)]  # no 720p or 1080p
    assert videos[0].details["remuxed"] is False
    assert _codecs(probe_file, videos[0].path) == {"video": "h264", "audio": "aac"}


def test_small_silent_source_gets_one_rung_at_its_own_size_encoded_for_scrubbing(
    small_silent_video: Path, options: PipelineOptions, tmp_path: Path, probe_file: ProbeFile
) -> None:
    md = probe(small_silent_video, MediaType.VIDEO, options=options)
    outputs = _by_name(generate_proxies(small_silent_video, md, tmp_path, options=options))
    videos = [o for o in outputs.values() if o.kind == ProxyType.VIDEO]
    # Web-playable, but its only rung is the lowest one, which is always encoded for scrubbing.
    assert [(o.path.name, o.width, o.height, o.details["remuxed"]) for o in videos] == [
        ("proxy_180p.mp4", 320, 180, False)
    ]
    assert _codecs(probe_file, videos[0].path) == {"video": "h264"}
    assert _moov_before_mdat(videos[0].path)


@pytest.mark.slow
def test_vp9_renditions_when_configured(
    small_silent_video: Path, options: PipelineOptions, tmp_path: Path, probe_file: ProbeFile
) -> None:
    md = probe(small_silent_video, MediaType.VIDEO, options=options)
    with_vp9 = replace(options, proxy_vp9=True, vp9_cpu_used=8)
    outputs = _by_name(generate_proxies(small_silent_video, md, tmp_path, options=with_vp9))
    webm = outputs["proxy_180p.webm"]
    assert (webm.kind, webm.content_type, webm.details["remuxed"]) == (ProxyType.VIDEO_VP9, "video/webm", False)
    video = _video(probe_file, webm.path)
    assert (video["codec_name"], video["width"], video["height"]) == ("vp9", 320, 180)
    assert "webm" in probe_file(webm.path)["format"]["format_name"]
    assert outputs["proxy_180p.mp4"].details["codec"] == "h264"  # beside the H.264 rung


def test_long_video_gets_several_sprite_sheets(long_tiny_video: Path, options: PipelineOptions, tmp_path: Path) -> None:
    md = probe(long_tiny_video, MediaType.VIDEO, options=options)
    grid = replace(options, sprite_interval_seconds=1.0, sprite_columns=3, sprite_rows=2)
    result = generate_proxies(long_tiny_video, md, tmp_path, options=grid)
    sheets = [o for o in result.outputs if o.kind == ProxyType.SPRITE_SHEET]
    # 13 s at one tile a second → 13 tiles → sheets of 6, 6 and 1.
    assert [(o.path.name, o.details["tiles"]) for o in sheets] == [
        ("sprite_000.jpg", 6),
        ("sprite_001.jpg", 6),
        ("sprite_002.jpg", 1),
    ]
    assert sorted(p.name for p in tmp_path.glob("sprite_*.jpg")) == [o.path.name for o in sheets]
    for sheet, rows in zip(sheets, (2, 2, 1), strict=True):
        with Image.open(sheet.path) as image:
            assert image.size == (sheet.width, sheet.height) == (3 * 160, rows * 90)
    cues = _cues((tmp_path / "storyboard.vtt").read_text())
    assert len(cues) == 13
    assert (cues[6][3], cues[6][4], cues[6][5]) == ("sprite_001.jpg", "0", "0")
    assert (cues[10][3], cues[10][4], cues[10][5]) == ("sprite_001.jpg", "160", "90")
    assert (cues[12][1], cues[12][2], cues[12][3]) == ("00:00:12.000", "00:00:13.000", "sprite_002.jpg")


def test_re_running_replaces_outputs_without_leftovers(
    long_tiny_video: Path, options: PipelineOptions, tmp_path: Path
) -> None:
    md = probe(long_tiny_video, MediaType.VIDEO, options=options)
    (tmp_path / "sprite_007.jpg").write_bytes(b"stale sheet from a longer, earlier attempt")
    first = generate_proxies(long_tiny_video, md, tmp_path, options=options)
    second = generate_proxies(long_tiny_video, md, tmp_path, options=options)
    assert [o.path.name for o in first.outputs] == [o.path.name for o in second.outputs]
    # Exactly the reported files remain: no stale sheet from the earlier attempt, and in the HLS folder
    # the master and, per rung, the playlist with the init segment and segments it lists.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [o.path.name for o in second.outputs if "/" not in o.key_name] + ["hls"]
    )
    hls = tmp_path / "hls"
    expected = {"master.m3u8"}
    (master,) = [o for o in second.outputs if o.kind == ProxyType.HLS]
    for rung in master.details["rungs"]:
        playlist = parse_media_playlist((hls / rung / "index.m3u8").read_text())
        assert playlist.ended and playlist.init
        expected |= {f"{rung}/index.m3u8", f"{rung}/{playlist.init}", *(f"{rung}/{s}" for s, _ in playlist.segments)}
    assert {p.relative_to(hls).as_posix() for p in hls.rglob("*") if p.is_file()} == expected
