"""probe: metadata of real files, and permanent failures for unreadable ones."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from mediaingest.exceptions import MediaUnreadableError
from mediaingest.models.enums import MediaType
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.stages.probe import jpeg_stream, metadata_from_ffprobe, png_stream, probe
from mediaingest.pipeline.types import MediaMetadata


def test_landscape_video_with_stereo_audio(video_1080p: Path, options: PipelineOptions) -> None:
    md = probe(video_1080p, MediaType.VIDEO, options=options)
    assert md.duration_seconds == pytest.approx(3.0, abs=0.1)
    assert "mp4" in (md.format_name or "")
    assert (md.video_codec, md.video_profile, md.pixel_format, md.bit_depth) == ("h264", "High", "yuv420p", 8)
    assert (md.width, md.height, md.display_width, md.display_height) == (1920, 1080, 1920, 1080)
    assert md.display_aspect_ratio == "16:9"
    assert md.rotation == 0
    assert md.fps == 25.0
    assert (md.frame_rate, md.is_variable_frame_rate, md.frame_count, md.timecode) == ("25/1", False, 75, None)
    assert md.audio_tracks == [
        {"index": 0, "streamIndex": 1, "codec": "aac", "channels": 2, "channelLayout": "stereo",
         "sampleRate": 48000, "language": None, "title": None}
    ]  # fmt: skip
    assert md.bitrate and md.video_bitrate and md.audio_bitrate
    assert (md.audio_codec, md.channels, md.channel_layout, md.sample_rate) == ("aac", 2, "stereo", 48000)
    assert md.has_video and md.has_audio
    assert not md.has_hdr and md.hdr_format is None and not md.has_alpha
    assert md.raw is not None and md.raw["format"]["format_name"] == md.format_name
    json.dumps(md.to_dict())  # stored as JSON as it is


def test_rotated_phone_clip_is_portrait_for_display(phone_clip: Path, options: PipelineOptions) -> None:
    md = probe(phone_clip, MediaType.VIDEO, options=options)
    assert (md.width, md.height) == (640, 360)  # as stored
    assert md.rotation == 90
    assert (md.display_width, md.display_height) == (360, 640)
    assert md.display_aspect_ratio == "9:16"
    assert (md.channels, md.channel_layout) == (1, "mono")


def test_audio_file_with_cover_art_is_not_a_video(audio_with_cover: Path, options: PipelineOptions) -> None:
    md = probe(audio_with_cover, MediaType.AUDIO, options=options)
    assert md.has_audio and not md.has_video
    assert (md.audio_codec, md.channels, md.sample_rate) == ("mp3", 2, 44100)
    assert md.audio_bitrate == pytest.approx(128_000, rel=0.05)
    assert md.duration_seconds == pytest.approx(3.0, abs=0.1)
    assert md.video_codec is None and md.width is None


def test_hdr10_clip_reports_pq_and_its_mastering_metadata(hdr_pq_clip: Path, options: PipelineOptions) -> None:
    md = probe(hdr_pq_clip, MediaType.VIDEO, options=options)
    assert md.has_hdr and md.hdr_format == "PQ"
    assert (md.pixel_format, md.bit_depth) == ("yuv420p10le", 10)
    assert (md.color_primaries, md.color_transfer, md.color_space) == ("bt2020", "smpte2084", "bt2020nc")
    assert md.color_range == "tv"
    assert md.mastering_display is not None
    assert md.mastering_display["max_luminance"] == pytest.approx(1000.0)
    assert md.mastering_display["min_luminance"] == pytest.approx(0.0001)
    assert md.mastering_display["red_x"] == pytest.approx(0.68)
    assert md.mastering_display["white_point_y"] == pytest.approx(0.329)
    assert md.content_light_level == {"MaxCLL": 1000, "MaxFALL": 400}
    json.dumps(md.to_dict())


def test_hlg_clip_is_hdr_without_mastering_data(hdr_hlg_clip: Path, options: PipelineOptions) -> None:
    md = probe(hdr_hlg_clip, MediaType.VIDEO, options=options)
    assert md.has_hdr and md.hdr_format == "HLG"
    assert (md.video_profile, md.bit_depth) == ("High 10", 10)
    assert md.mastering_display is None and md.content_light_level is None


def test_jpeg_exif_and_iptc(jpeg_with_exif_iptc: Path, options: PipelineOptions) -> None:
    md = probe(jpeg_with_exif_iptc, MediaType.IMAGE, options=options)
    assert md.image_format == "JPEG"
    assert (md.width, md.height) == (400, 200)
    assert md.rotation == 90  # orientation 6
    assert (md.display_width, md.display_height, md.display_aspect_ratio) == (200, 400, "1:2")
    assert (md.color_depth, md.has_alpha) == (8, False)
    assert md.exif is not None
    assert md.exif["Orientation"] == 6
    assert (md.exif["Make"], md.exif["Model"]) == ("TestCam", "Model 7")
    assert md.exif["DateTimeOriginal"] == "2024:05:01 12:30:00"  # from the Exif sub-IFD
    assert "ExifOffset" not in md.exif  # a pointer, not data
    assert md.iptc is not None
    assert md.iptc["ObjectName"] == "Sunset over the bay"
    assert md.iptc["Keywords"] == ["beach", "sunset"]
    assert md.iptc["By-line"] == ["Zoë Example"]
    assert md.iptc["CopyrightNotice"] == "(c) 2024 Example"
    assert md.iptc["RecordVersion"] == 4
    assert not md.has_video and md.duration_seconds is None
    json.dumps(md.to_dict())


def test_png_alpha_and_depth(png_with_alpha: Path, png_16bit: Path, options: PipelineOptions) -> None:
    rgba = probe(png_with_alpha, MediaType.IMAGE, options=options)
    assert (rgba.image_format, rgba.has_alpha, rgba.color_depth) == ("PNG", True, 8)
    assert (rgba.display_width, rgba.display_height, rgba.rotation) == (300, 200, 0)
    assert rgba.exif is None and rgba.iptc is None
    deep = probe(png_16bit, MediaType.IMAGE, options=options)
    assert (deep.color_depth, deep.has_alpha) == (16, False)


@pytest.mark.parametrize(
    ("mode", "subsampling", "described"),
    [("RGB", 0, True), ("RGB", 1, True), ("RGB", 2, True), ("L", 2, False), ("CMYK", 0, False)],
)
def test_a_plain_jpeg_is_described_from_its_header_as_ffprobe_does(
    tmp_path: Path, options: PipelineOptions, mode: str, subsampling: int, described: bool
) -> None:
    """A YCbCr JPEG needs no ffprobe: its header says what ffprobe would (4:4:4, 4:2:2, 4:2:0); other
    kinds are left to ffprobe."""
    path = tmp_path / "photo.jpg"
    Image.new(mode, (64, 48)).save(path, "JPEG", quality=90, subsampling=subsampling)
    from_header = jpeg_stream(path)
    assert (from_header is not None) == described
    if from_header is None:
        return
    (stream,) = options.tools.probe(path)["streams"]
    assert {key: stream.get(key) for key in from_header} == from_header
    md = probe(path, MediaType.IMAGE, options=options)
    assert (md.pixel_format, md.color_range, md.color_space, md.color_depth) == (
        stream["pix_fmt"], stream["color_range"], stream["color_space"], 8
    )  # fmt: skip
    assert (md.format_name, md.raw) == ("jpeg", None)


@pytest.mark.parametrize(
    ("pix_fmt", "described"),
    [("rgb24", True), ("rgba", True), ("gray", True), ("ya8", True), ("pal8", True), ("rgb48be", True),
     ("rgba64be", True), ("gray16be", True), ("ya16be", False), ("monob", False)],
)  # fmt: skip
def test_a_png_is_described_from_its_header_as_ffprobe_does(
    tmp_path: Path, options: PipelineOptions, pix_fmt: str, described: bool
) -> None:
    """ffprobe decodes a PNG whole to describe it; the header says the same for the usual depths and colour
    types (16-bit grey with alpha and 1-bit pictures are left to ffprobe)."""
    path = tmp_path / "picture.png"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48", "-frames:v", "1",
                    "-pix_fmt", pix_fmt, str(path)], check=True)  # fmt: skip
    from_header = png_stream(path)
    assert (from_header is not None) == described
    (stream,) = options.tools.probe(path)["streams"]
    assert stream["pix_fmt"] == pix_fmt
    if from_header is not None:
        assert {key: stream.get(key) for key in from_header} == from_header
        md = probe(path, MediaType.IMAGE, options=options)
        assert (md.pixel_format, md.color_range, md.color_space, md.format_name) == (pix_fmt, "pc", None, "png")


@pytest.mark.parametrize(
    ("mode", "save_options", "pix_fmt"),
    [
        ("RGB", {"icc_profile": ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()}, "rgb24"),
        ("RGB", {"transparency": (0, 0, 0)}, "rgba"),  # ffmpeg gives a tRNS colour key an alpha channel
        ("L", {"transparency": 0}, "ya8"),
    ],
)
def test_a_png_whose_chunks_change_its_description_is_described_by_ffprobe(
    tmp_path: Path, options: PipelineOptions, mode: str, save_options: dict[str, object], pix_fmt: str
) -> None:
    path = tmp_path / "chunks.png"
    Image.new(mode, (64, 48)).save(path, "PNG", **save_options)
    assert png_stream(path) is None
    md = probe(path, MediaType.IMAGE, options=options)
    assert md.raw is not None and md.pixel_format == pix_fmt  # ffprobe ran


@pytest.mark.parametrize("exif_after_pixels", [False, True])
def test_a_pngs_exif_is_read_before_or_after_its_pixels(
    tmp_path: Path, options: PipelineOptions, exif_after_pixels: bool
) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turned 90° clockwise to show
    path = tmp_path / "turned.png"
    Image.new("RGB", (64, 48), "olive").save(path, "PNG", exif=exif)
    if exif_after_pixels:
        _move_chunk_after_pixels(path, b"eXIf")
    md = probe(path, MediaType.IMAGE, options=options)
    assert (md.rotation, md.display_width, md.display_height) == (90, 48, 64)


def _move_chunk_after_pixels(path: Path, kind: bytes) -> None:
    """Rewrites the PNG with the chunk `kind` just before IEND, where some writers put an eXIf."""
    data = path.read_bytes()
    chunks, offset = [], 8
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        chunks.append(data[offset : offset + 12 + length])
        offset += 12 + length
    moved = [chunk for chunk in chunks if chunk[4:8] == kind]
    kept = [chunk for chunk in chunks if chunk[4:8] != kind]
    assert moved and kept[-1][4:8] == b"IEND"
    path.write_bytes(data[:8] + b"".join(kept[:-1] + moved + kept[-1:]))


@pytest.mark.parametrize(
    ("fixture", "media_type", "reason"),
    [
        ("truncated_video", MediaType.VIDEO, "moov atom not found|Invalid data"),
        ("garbage_file", MediaType.VIDEO, "Invalid data"),
        ("audio_with_cover", MediaType.VIDEO, "no video stream"),
        ("small_silent_video", MediaType.AUDIO, "no audio stream"),
        ("garbage_file", MediaType.IMAGE, "unrecognised image format"),
    ],
)
def test_unreadable_media_is_a_permanent_failure_with_a_reason(
    request: pytest.FixtureRequest, fixture: str, media_type: MediaType, reason: str, options: PipelineOptions
) -> None:
    path: Path = request.getfixturevalue(fixture)
    with pytest.raises(MediaUnreadableError, match=reason) as caught:
        probe(path, media_type, options=options)
    assert str(path) not in caught.value.message


def test_anamorphic_frame_rate_and_rotation_mapping() -> None:
    """The pure ffprobe → metadata mapping: sample aspect ratio, NTSC rates, rotation sense, HLG."""
    data = {
        "format": {"format_name": "mpegts", "duration": "12.5", "bit_rate": "9000000"},
        "streams": [
            {"index": 0, "codec_type": "video", "codec_name": "mpeg2video", "disposition": {"attached_pic": 1},
             "width": 64, "height": 64},
            {"index": 1, "codec_type": "video", "codec_name": "h264", "width": 720, "height": 480,
             "sample_aspect_ratio": "8:9", "avg_frame_rate": "0/0", "r_frame_rate": "30000/1001",
             "pix_fmt": "yuv422p10le", "color_transfer": "arib-std-b67",
             "side_data_list": [{"side_data_type": "Display Matrix", "rotation": 180}]},
            {"index": 2, "codec_type": "audio", "codec_name": "ac3", "channels": 6,
             "channel_layout": "5.1(side)", "sample_rate": "48000", "tags": {"BPS": "384000"}},
            {"index": 3, "codec_type": "audio", "codec_name": "pcm_s24le", "channels": 1,
             "channel_layout": "mono", "sample_rate": "48000", "tags": {"language": "eng", "title": "Lav 1"}},
            {"index": 4, "codec_type": "data", "codec_tag_string": "tmcd", "tags": {"timecode": "10:00:00;02"}},
        ],
    }  # fmt: skip
    md = metadata_from_ffprobe(data)
    assert md.video_codec == "h264"  # the cover-art stream is skipped
    assert (md.display_width, md.display_height, md.display_aspect_ratio) == (640, 480, "4:3")
    assert md.fps == 29.97
    assert md.rotation == 180
    assert md.bit_depth == 10
    assert md.hdr_format == "HLG" and md.has_hdr
    assert (md.channels, md.audio_bitrate, md.sample_rate) == (6, 384000, 48000)
    assert md.duration_seconds == 12.5
    assert md.timecode == "10:00:00;02"  # from the tmcd track, drop-frame kept
    assert [
        (t["index"], t["streamIndex"], t["channelLayout"], t["language"], t["title"]) for t in md.audio_tracks or []
    ] == [
        (0, 2, "5.1(side)", None, None),
        (1, 3, "mono", "eng", "Lav 1"),
    ]


def test_metadata_round_trips_through_a_dict() -> None:
    md = MediaMetadata(duration_seconds=2.0, has_video=True, exif={"Orientation": 6})
    assert MediaMetadata.from_dict({**md.to_dict(), "id": 7, "asset_id": "x"}) == md


@pytest.mark.parametrize(
    "shape",
    [{"format": None}, {"streams": None}, {"streams": [{"codec_type": "audio", "tags": None}]},
     {"streams": [{"codec_type": "audio", "index": 1.5}]}],
)  # fmt: skip
def test_ffprobe_json_of_an_unexpected_shape_makes_the_media_unreadable(shape: dict[str, object]) -> None:
    """Never a stage crash (retried as if temporary): a permanent, plain failure naming what was odd."""
    with pytest.raises(MediaUnreadableError, match="ffprobe's description of the file cannot be read"):
        metadata_from_ffprobe(shape)
