"""Which stages an asset goes through. Pure, so the worker and the operator agree on the plan."""

from __future__ import annotations

from mediaingest.config import Settings
from mediaingest.models.enums import MediaType, Stage
from mediaingest.pipeline.registry import StageSpec, spec_for, stages
from mediaingest.pipeline.types import MediaMetadata


def stages_for(
    media_type: MediaType, metadata: MediaMetadata | None = None, settings: Settings | None = None
) -> list[Stage]:
    """The registered stages for `media_type`, probe first.

    Without metadata (before probe has run, or for the operator's static plan) a video keeps its audio
    visuals stage; generate_audio_visuals then finishes at once with "no audio stream" if there is none.
    With settings, a stage they turn off (TRANSCRIBE=off) is left out: it gets no job, process or pod.
    """
    return [
        spec.stage
        for spec in stages()
        if _applies(spec, media_type, metadata) and not (settings is not None and spec.turned_off(settings))
    ]


def first_stages(media_type: MediaType, settings: Settings) -> list[Stage]:
    """The stages an upload starts with: the one that describes the source, and beside it those that read
    nothing it records (`StageSpec.needs_no_metadata`); the rest follow once it has."""
    first, *rest = stages_for(media_type, settings=settings)
    return [first, *(stage for stage in rest if not spec_for(stage).reads_metadata(media_type))]


def _applies(spec: StageSpec, media_type: MediaType, metadata: MediaMetadata | None) -> bool:
    lacks_audio = metadata is not None and not metadata.has_audio
    return media_type in spec.media and not (spec.needs_audio and lacks_audio)
