"""metadata.measurements on the wire: what each stage stored, read through its registered model."""

from __future__ import annotations

from mediaingest.assets.schemas import MetadataOut
from mediaingest.models import AssetMetadata


def test_stored_measurements_are_sent_as_their_models_say_and_old_ones_never_break_a_read() -> None:
    record = AssetMetadata(
        asset_id="a1",
        width=640,
        has_hdr=False,
        has_audio=True,
        has_video=True,
        transcript_text="hello there",
        measurements={
            "proxies": {"shots": [1.5, 3.0], "dropped_field": 1},  # a field an earlier model had
            "transcript": {"transcript_language": "en", "transcript_segments": [{"start": 0.5}], "width": 1},
            "audio_visuals": {"loudness": "not an object"},  # unreadable now: left out, not a 500
            "unloaded_stage": {"anything": True},  # its module is not loaded: kept in the row, not sent
        },
    )
    out = MetadataOut.model_validate(record).model_dump(mode="json", by_alias=True)
    assert out["measurements"] == {"proxies": {"shots": [1.5, 3.0]}, "transcript": {"transcriptLanguage": "en"}}
    # The names on the wire before their stages declared them are read from the JSON; a column is never hidden.
    assert (out["shots"], out["transcriptLanguage"], out["width"]) == ([1.5, 3.0], "en", 640)
    assert "transcriptText" not in out and "transcriptSegments" not in str(out)
