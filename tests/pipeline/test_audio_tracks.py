"""Every audio track reaches the proxies at its own layout, with its own peaks and EBU R128 loudness,
measured in the one audio pass."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from mediaingest.models.enums import MediaType, ProxyType
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.stages.audio_visuals import generate_audio_visuals
from mediaingest.pipeline.stages.probe import probe

from .conftest import FFMPEG, FFPROBE, _ffmpeg

LAYOUTS = ("stereo", "mono", "5.1", "mono")


@pytest.fixture(scope="module")
def four_track_mov(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MOV with picture and four audio tracks of different layouts, levels and languages."""
    path = tmp_path_factory.mktemp("tracks") / "dual-system.mov"
    inputs: list[str] = ["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=3"]
    maps = ["-map", "0:v"]
    for number, layout in enumerate(LAYOUTS):
        tone = f"sine=frequency={440 * (number + 1)}:sample_rate=48000:duration=3,volume={-6 * number}dB"
        inputs += ["-f", "lavfi", "-i", f"{tone},aformat=channel_layouts={layout}"]
        maps += ["-map", f"{number + 1}:a"]
    _ffmpeg(
        *inputs,
        *maps,
        *("-c:v", "libx264", "-preset", "ultrafast", "-c:a", "pcm_s16le"),
        # QuickTime names a track by its handler name.
        *("-metadata:s:a:1", "language=eng", "-metadata:s:a:1", "handler_name=Lav 1"),
        path,
    )
    return path


def _reference_loudness(path: Path, stream: str) -> float:
    """ffmpeg's own ebur128 summary of one stream: the figure the stage must agree with."""
    done = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostats", "-i", str(path), "-map", stream, "-af", "ebur128", "-f", "null", "-"],
        capture_output=True,
        check=True,
        text=True,
    )
    return float(re.findall(r"I:\s+(-?[\d.]+) LUFS", done.stderr)[-1])


def _audio_stream(path: Path) -> dict[str, object]:
    done = subprocess.run(
        [FFPROBE, "-v", "error", "-select_streams", "a", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        check=True,
    )
    streams = json.loads(done.stdout)["streams"]
    assert len(streams) == 1
    return dict(streams[0])


def test_every_track_is_listed_kept_at_its_layout_with_peaks_and_loudness(
    four_track_mov: Path, options: PipelineOptions, tmp_path: Path
) -> None:
    md = probe(four_track_mov, MediaType.VIDEO, options=options)
    assert [(t["index"], t["channelLayout"], t["language"], t["title"]) for t in md.audio_tracks or []] == [
        (0, "stereo", None, None),
        (1, "mono", "eng", "Lav 1"),
        (2, "5.1", None, None),
        (3, "mono", None, None),
    ]
    result = generate_audio_visuals(four_track_mov, md, tmp_path, options=options)

    proxies = sorted((o for o in result.outputs if o.kind == ProxyType.AUDIO), key=lambda o: o.details["track"])
    assert [(o.path.name, o.content_type, o.bucket) for o in proxies] == [
        (f"audio_track{n}.m4a", "audio/mp4", "proxies") for n in range(4)
    ]
    for output, layout in zip(proxies, LAYOUTS, strict=True):
        stream = _audio_stream(output.path)
        assert (stream["codec_name"], stream["channel_layout"]) == ("aac", layout), output.path.name
        assert float(str(stream["duration"])) == pytest.approx(3.0, abs=0.05)

    peaks = sorted((o for o in result.outputs if o.kind == ProxyType.WAVEFORM_PEAKS), key=lambda o: o.details["track"])
    assert [o.path.name for o in peaks] == ["peaks.json", "peaks_track1.json", "peaks_track2.json", "peaks_track3.json"]
    highs = [max(json.loads(o.path.read_text())["levels"][0]["data"]) for o in peaks]
    assert highs[0] > highs[1] > highs[3]  # each track's own level: 0, -6 and -18 dB
    assert not list(tmp_path.glob("*.pcm")) and not list(tmp_path.glob("*.log"))  # scratch removed

    tracks = result.measurements["audio_tracks"]
    assert [t["index"] for t in tracks] == [0, 1, 2, 3]
    for number, track in enumerate(tracks):
        loudness = track["loudness"]
        assert set(loudness) == {"integratedLufs", "loudnessRangeLu", "truePeakDbtp"}
        expected = _reference_loudness(four_track_mov, f"0:a:{number}")
        assert loudness["integratedLufs"] == pytest.approx(expected, abs=0.5), number
        assert loudness["truePeakDbtp"] < 0
    assert result.measurements["loudness"] == tracks[0]["loudness"]
    # Quieter tracks measure quieter: each is its own measurement, not the first track's.
    assert [t["loudness"]["integratedLufs"] for t in tracks] == sorted(
        (t["loudness"]["integratedLufs"] for t in tracks), reverse=True
    )


def test_a_tone_at_a_known_level_measures_it(tmp_path: Path, options: PipelineOptions) -> None:
    # A full-scale 1 kHz sine is -3.01 LUFS per channel; stereo sums two channels: about 0 LUFS.
    # At -23 dB that is the broadcast target, -23 LUFS, with a true peak of -23 dBTP.
    tone = tmp_path / "tone.wav"
    _ffmpeg(
        *("-f", "lavfi", "-i", "sine=frequency=997:sample_rate=48000:duration=4,volume=8"),
        *("-af", "volume=-23dB,pan=stereo|c0=c0|c1=c0", "-c:a", "pcm_s24le", tone),
    )
    md = probe(tone, MediaType.AUDIO, options=options)
    result = generate_audio_visuals(tone, md, tmp_path / "out", options=options)
    loudness = result.measurements["loudness"]
    assert loudness["integratedLufs"] == pytest.approx(-23.0, abs=0.5)
    assert loudness["integratedLufs"] == pytest.approx(_reference_loudness(tone, "0:a:0"), abs=0.5)
    assert loudness["truePeakDbtp"] == pytest.approx(-23.0, abs=0.5)
    assert loudness["loudnessRangeLu"] == pytest.approx(0.0, abs=0.5)
