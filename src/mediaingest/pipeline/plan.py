"""Which stages an asset goes through. Pure, so the worker and the operator agree on the plan."""

from __future__ import annotations

from mediaingest.models.enums import MediaType, Stage
from mediaingest.pipeline.types import MediaMetadata

_PLANS: dict[MediaType, tuple[Stage, ...]] = {
    MediaType.VIDEO: (Stage.PROBE, Stage.PROXIES, Stage.THUMBNAILS, Stage.AUDIO_VISUALS),
    MediaType.AUDIO: (Stage.PROBE, Stage.AUDIO_VISUALS),
    MediaType.IMAGE: (Stage.PROBE, Stage.THUMBNAILS),
}


def stages_for(media_type: MediaType, metadata: MediaMetadata | None = None) -> list[Stage]:
    """The stages for `media_type`, probe first.

    Without metadata (before probe has run, or for the operator's static plan) a video keeps its audio
    visuals stage; generate_audio_visuals then finishes at once with "no audio stream" if there is none.
    """
    stages = list(_PLANS[media_type])
    if media_type == MediaType.VIDEO and metadata is not None and not metadata.has_audio:
        stages.remove(Stage.AUDIO_VISUALS)
    return stages
