"""thumbnails: video posters and still-image thumbnails, opened and measured."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from mediaingest.exceptions import MediaUnreadableError
from mediaingest.models.enums import MediaType, ProxyType
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.stages.probe import probe
from mediaingest.pipeline.stages.thumbnails import build_poster_command, generate_thumbnails
from mediaingest.pipeline.types import MediaMetadata, StageOutput


def _by_name(outputs: list[StageOutput]) -> dict[str, StageOutput]:
    return {output.path.name: output for output in outputs}


def test_video_poster_at_a_tenth_of_the_duration(video_1080p: Path, options: PipelineOptions, tmp_path: Path) -> None:
    md = probe(video_1080p, MediaType.VIDEO, options=options)
    progress: list[float] = []
    result = generate_thumbnails(
        video_1080p, md, MediaType.VIDEO, tmp_path, options=options, on_progress=lambda f, _: progress.append(f)
    )
    [poster] = result.outputs
    assert (poster.kind, poster.bucket, poster.path.name) == (ProxyType.POSTER, "processed", "poster.jpg")
    assert poster.details["positionSeconds"] == pytest.approx(0.3, abs=0.01)
    with Image.open(poster.path) as image:
        assert image.format == "JPEG"
        assert image.size == (poster.width, poster.height) == (1280, 720)  # fitted into 1280
    assert progress == [1.0]


def test_poster_seeks_before_the_input(video_1080p: Path, options: PipelineOptions, tmp_path: Path) -> None:
    md = probe(video_1080p, MediaType.VIDEO, options=options)
    command, _, _ = build_poster_command(video_1080p, md, tmp_path, options, position=12.5)
    argv = command.argv("ffmpeg")
    assert argv.index("-ss") < argv.index("-i")  # a fast keyframe seek, not a decode up to 12.5 s
    assert argv[argv.index("-ss") + 1] == "12.500"


def test_portrait_poster_is_upright(phone_clip: Path, options: PipelineOptions, tmp_path: Path) -> None:
    md = probe(phone_clip, MediaType.VIDEO, options=options)
    [poster] = generate_thumbnails(phone_clip, md, MediaType.VIDEO, tmp_path, options=options).outputs
    with Image.open(poster.path) as image:
        assert image.size == (360, 640)


def test_poster_falls_back_to_the_first_frame_when_the_duration_lies(
    small_silent_video: Path, options: PipelineOptions, tmp_path: Path
) -> None:
    md = probe(small_silent_video, MediaType.VIDEO, options=options)
    lying = MediaMetadata.from_dict({**md.to_dict(), "duration_seconds": 600.0})  # seek lands at 60 s
    [poster] = generate_thumbnails(small_silent_video, lying, MediaType.VIDEO, tmp_path, options=options).outputs
    assert poster.details["positionSeconds"] == 0.0
    with Image.open(poster.path) as image:
        assert image.size == (320, 180)


def test_jpeg_thumbnails_follow_exif_orientation(
    jpeg_with_exif_iptc: Path, options: PipelineOptions, tmp_path: Path
) -> None:
    md = probe(jpeg_with_exif_iptc, MediaType.IMAGE, options=options)
    outputs = _by_name(generate_thumbnails(jpeg_with_exif_iptc, md, MediaType.IMAGE, tmp_path, options=options).outputs)
    assert sorted(outputs) == ["thumb_1280.jpg", "thumb_1280.webp", "thumb_320.jpg", "thumb_320.webp"]
    assert {o.kind for o in outputs.values()} == {ProxyType.THUMBNAIL}
    # Stored 400×200 with orientation 6: shown 200×400, never upscaled to 1280.
    assert (outputs["thumb_1280.jpg"].width, outputs["thumb_1280.jpg"].height) == (200, 400)
    with Image.open(outputs["thumb_320.jpg"].path) as image:
        assert image.size == (160, 320)
        # The red marker in the stored top-left corner is shown top-right after a clockwise turn.
        red, green, _ = image.convert("RGB").getpixel((150, 10))
        assert red > 200 and green < 60
        assert image.convert("RGB").getpixel((10, 10))[0] < 160
        assert not image.getexif()  # no EXIF (GPS, serial numbers) leaks into what is served
    with Image.open(outputs["thumb_320.webp"].path) as image:
        assert (image.format, image.size) == ("WEBP", (160, 320))


def test_png_alpha_survives_in_webp_and_is_flattened_in_jpeg(
    png_with_alpha: Path, options: PipelineOptions, tmp_path: Path
) -> None:
    md = probe(png_with_alpha, MediaType.IMAGE, options=options)
    outputs = _by_name(generate_thumbnails(png_with_alpha, md, MediaType.IMAGE, tmp_path, options=options).outputs)
    webp = outputs["thumb_320.webp"]
    assert webp.details["alpha"] is True
    with Image.open(webp.path) as image:
        assert image.mode == "RGBA" and image.size == (300, 200)
        assert image.getpixel((250, 100))[3] < 10  # the transparent half stays transparent
        assert image.getpixel((50, 100))[3] > 245
    with Image.open(outputs["thumb_320.jpg"].path) as image:
        assert image.mode == "RGB"
        assert min(image.getpixel((250, 100))) > 240  # over white, not black


def test_truncated_image_is_unreadable(truncated_jpeg: Path, options: PipelineOptions, tmp_path: Path) -> None:
    with pytest.raises(MediaUnreadableError, match="truncated"):
        generate_thumbnails(truncated_jpeg, MediaMetadata(), MediaType.IMAGE, tmp_path, options=options)


def test_audio_has_no_thumbnails(audio_with_cover: Path, options: PipelineOptions, tmp_path: Path) -> None:
    md = probe(audio_with_cover, MediaType.AUDIO, options=options)
    result = generate_thumbnails(audio_with_cover, md, MediaType.AUDIO, tmp_path, options=options)
    assert result.outputs == [] and not list(tmp_path.iterdir())
