"""The plan per media type, and the one entry point the worker and the Kubernetes Jobs call."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediaingest.config import Settings
from mediaingest.exceptions import MediaUnreadableError
from mediaingest.models.enums import MediaType, ProxyType, Stage
from mediaingest.pipeline import run_stage_function, stages_for
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.types import MediaMetadata


def test_plans_start_with_probe() -> None:
    assert stages_for(MediaType.VIDEO) == [
        Stage("probe"),
        Stage("proxies"),
        Stage("thumbnails"),
        Stage("audio_visuals"),
        Stage("transcript"),
    ]
    assert stages_for(MediaType.AUDIO) == [Stage("probe"), Stage("audio_visuals"), Stage("transcript")]
    assert stages_for(MediaType.IMAGE) == [Stage("probe"), Stage("thumbnails")]


def test_a_silent_video_skips_audio_visuals_once_probed() -> None:
    silent = MediaMetadata(has_video=True, has_audio=False)
    assert stages_for(MediaType.VIDEO, silent) == [Stage("probe"), Stage("proxies"), Stage("thumbnails")]
    assert Stage("audio_visuals") in stages_for(MediaType.VIDEO, MediaMetadata(has_video=True, has_audio=True))


def test_transcribe_off_leaves_the_transcript_stage_out_of_the_plan() -> None:
    off = Settings(TRANSCRIBE=False)  # type: ignore[call-arg]
    assert stages_for(MediaType.AUDIO, settings=off) == [Stage("probe"), Stage("audio_visuals")]
    assert Stage("transcript") not in stages_for(MediaType.VIDEO, MediaMetadata(has_audio=True), off)
    # Unset, each stage image decides (the stage itself says "off" where transcription is not installed).
    assert Stage("transcript") in stages_for(MediaType.AUDIO, settings=Settings(TRANSCRIBE=None))  # type: ignore[call-arg]


def test_options_from_settings() -> None:
    settings = Settings(FFMPEG_PATH="/opt/ff/ffmpeg", PROXY_HEIGHTS=[720, 360], SPRITE_COLUMNS=5, WAVEFORM_WIDTH=900)  # type: ignore[call-arg]
    options = PipelineOptions.from_settings(settings)
    assert options.tools.ffmpeg == "/opt/ff/ffmpeg"
    assert options.proxy_heights == (360, 720)
    assert (options.sprite_columns, options.waveform_width) == (5, 900)


def test_probe_stage_returns_metadata(video_1080p: Path, options: PipelineOptions, tmp_path: Path) -> None:
    result = run_stage_function(Stage("probe"), video_1080p, MediaType.VIDEO, None, tmp_path, options=options)
    assert result.outputs == []
    assert result.metadata is not None and result.metadata.has_audio
    assert "1920x1080" in result.message


def test_stages_probe_for_themselves_when_given_no_metadata(
    small_silent_video: Path, options: PipelineOptions, tmp_path: Path
) -> None:
    # The static Kubernetes plan runs audio visuals for every video: a silent one is a quick no-op.
    result = run_stage_function(
        Stage("audio_visuals"), small_silent_video, MediaType.VIDEO, None, tmp_path, options=options
    )
    assert (result.outputs, result.message) == ([], "no audio stream")
    thumbs = run_stage_function(
        Stage("thumbnails"), small_silent_video, MediaType.VIDEO, None, tmp_path, options=options
    )
    assert [o.kind for o in thumbs.outputs] == [ProxyType.POSTER]


def test_a_stage_outside_the_plan_is_a_no_op(png_with_alpha: Path, options: PipelineOptions, tmp_path: Path) -> None:
    result = run_stage_function(Stage("proxies"), png_with_alpha, MediaType.IMAGE, None, tmp_path, options=options)
    assert result.outputs == [] and "does not apply" in result.message


def test_a_corrupt_upload_fails_permanently_at_probe(
    truncated_video: Path, options: PipelineOptions, tmp_path: Path
) -> None:
    with pytest.raises(MediaUnreadableError):
        run_stage_function(Stage("probe"), truncated_video, MediaType.VIDEO, None, tmp_path, options=options)
