"""A plain PCM WAV is described from its header exactly as ffprobe describes it; any other WAV by ffprobe."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from mediaingest.models.enums import MediaType
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.stages.probe import metadata_from_ffprobe, probe
from mediaingest.pipeline.wav_header import wav_description


def _wav(path: Path, *, codec: str, channels: int = 2, rate: int = 48000, seconds: float = 1.2345,
         extra: tuple[str, ...] = ()) -> Path:  # fmt: skip
    sine = f"sine=frequency=440:sample_rate={rate}:duration={seconds}"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", sine, "-ac", str(channels), "-c:a", codec,
                    *extra, str(path)], check=True)  # fmt: skip
    return path


def _same_as_ffprobe(path: Path, options: PipelineOptions) -> None:
    from_header = wav_description(path)
    assert from_header is not None
    probed = options.tools.probe(path)
    # Every field the header path writes is ffprobe's, value for value...
    (stream,) = probed["streams"]
    assert {key: stream.get(key) for key in from_header["streams"][0]} == from_header["streams"][0]
    assert {key: probed["format"].get(key) for key in from_header["format"]} == from_header["format"]
    # ...and the metadata made from either is the same.
    assert metadata_from_ffprobe(from_header).to_dict() | {"raw": None} == metadata_from_ffprobe(probed).to_dict() | {
        "raw": None
    }


@pytest.mark.parametrize(
    ("codec", "channels", "rate", "seconds"),
    [
        ("pcm_s16le", 2, 48000, 10.0),
        ("pcm_s16le", 1, 44100, 1.2345),
        ("pcm_u8", 1, 8000, 0.5),
        ("pcm_s16le", 2, 44100, 3.333),
        ("pcm_s16le", 1, 22050, 7.77777),
    ],
)
def test_a_plain_pcm_wav_is_described_from_its_header_as_ffprobe_does(
    tmp_path: Path, options: PipelineOptions, codec: str, channels: int, rate: int, seconds: float
) -> None:
    path = _wav(tmp_path / "plain.wav", codec=codec, channels=channels, rate=rate, seconds=seconds)
    _same_as_ffprobe(path, options)
    md = probe(path, MediaType.AUDIO, options=options)
    assert md.audio_codec == codec and md.channels == channels and md.sample_rate == rate
    assert md.duration_seconds == pytest.approx(seconds, abs=1 / rate)


def test_info_and_broadcast_wave_tags_do_not_send_it_to_ffprobe(tmp_path: Path, options: PipelineOptions) -> None:
    """A field recorder's WAV (bext, LIST INFO): ffmpeg makes tags of those, none the metadata reads."""
    path = _wav(tmp_path / "recorder.wav", codec="pcm_s16le",
                extra=("-write_bext", "1", "-metadata", "originator=Zoom", "-metadata", "title=Take 4"))  # fmt: skip
    _same_as_ffprobe(path, options)


def test_a_pad_byte_missing_after_an_odd_last_chunk_is_tolerated(tmp_path: Path, options: PipelineOptions) -> None:
    path = _wav(tmp_path / "odd.wav", codec="pcm_u8", channels=1, rate=8000, seconds=0.125 + 1 / 8000)
    path.write_bytes(path.read_bytes()[:-1])  # ffmpeg pads the odd data chunk; some writers do not
    _same_as_ffprobe(path, options)


@pytest.mark.parametrize(
    ("codec", "channels"),
    [("pcm_s24le", 2), ("pcm_f32le", 2), ("pcm_s16le", 6)],  # ffmpeg writes these as WAVEFORMATEXTENSIBLE
)
def test_an_extensible_wav_is_left_to_ffprobe(
    tmp_path: Path, options: PipelineOptions, codec: str, channels: int
) -> None:
    """Its channel mask names a layout ("stereo", "5.1") that only ffprobe's tables spell."""
    path = _wav(tmp_path / "extensible.wav", codec=codec, channels=channels)
    assert wav_description(path) is None
    assert probe(path, MediaType.AUDIO, options=options).channels == channels


def _append_chunk(path: Path, kind: bytes, body: bytes) -> None:
    data = bytearray(path.read_bytes())
    data += struct.pack("<4sI", kind, len(body)) + body + (b"\0" if len(body) % 2 else b"")
    data[4:8] = struct.pack("<I", len(data) - 8)
    path.write_bytes(bytes(data))


def test_an_id3_chunk_or_a_cut_data_chunk_is_left_to_ffprobe(tmp_path: Path, options: PipelineOptions) -> None:
    """An ID3 tag may carry cover art (a picture stream); a data chunk longer than the file is a cut or
    streaming upload, whose length ffmpeg measures from the file."""
    tagged = _wav(tmp_path / "tagged.wav", codec="pcm_s16le")
    _append_chunk(tagged, b"id3 ", b"ID3\x04\x00\x00\x00\x00\x00\x00")
    assert wav_description(tagged) is None
    cut = _wav(tmp_path / "cut.wav", codec="pcm_s16le")
    cut.write_bytes(cut.read_bytes()[:-1000])
    assert wav_description(cut) is None
    md = probe(cut, MediaType.AUDIO, options=options)
    assert md.duration_seconds is not None and md.duration_seconds < 1.2345


def test_what_is_not_a_wav_is_not_described(tmp_path: Path) -> None:
    for name, content in [("empty.wav", b""), ("short.wav", b"RIFF\x04\0\0\0WAVE"), ("aiff.wav", b"FORM" + b"\0" * 40)]:
        path = tmp_path / name
        path.write_bytes(content)
        assert wav_description(path) is None
