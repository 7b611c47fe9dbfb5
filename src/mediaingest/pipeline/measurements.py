"""What the built-in stages after the probe measure, one Measurements model each (named by their StageSpec).

The API documents and returns these under `metadata.measurements.<stage>`; the fields that were on the wire
before they were declared here (loudness, audioTracks, shots, transcriptLanguage) are also read from them.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from mediaingest.pipeline.types import Measurements


class ProxyMeasurements(Measurements):
    shots: list[float] | None = Field(None, description="Seconds at which the picture cuts to a new shot.")


class AudioMeasurements(Measurements):
    columns = frozenset({"audio_tracks"})

    loudness: dict[str, Any] | None = Field(
        None, description="EBU R128 of the first audio track: integratedLufs, loudnessRangeLu, truePeakDbtp."
    )
    # The probe's list of tracks, each with its loudness added: it refines the probe's column.
    audio_tracks: list[dict[str, Any]] | None = Field(None, exclude=True)


class TranscriptMeasurements(Measurements):
    columns = frozenset({"transcript_text"})

    transcript_language: str | None = Field(
        None, description='The spoken language ("en") once transcribed; null without speech.'
    )
    # Each segment's text with its words' starts, where a search hit is said: kept, never sent (the
    # TRANSCRIPT output holds all of it).
    transcript_segments: list[dict[str, Any]] | None = Field(None, exclude=True)
    # The words as said, in a column: the full-text index reads it (migration 9c4e1f2a7b58).
    transcript_text: str | None = Field(None, exclude=True)
