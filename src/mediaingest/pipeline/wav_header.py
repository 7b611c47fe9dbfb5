"""A plain PCM WAV described from its header, as ffprobe would describe it, without starting ffprobe.

Starting ffprobe costs about 0.08 CPU-s (it links every libav library), a seventh of ffmpeg's whole work on
a 10 s WAV; a RIFF header is a few dozen bytes. Only the plainest files are described here: PCM or IEEE
float in a WAVEFORMATEX (no channel mask), one data chunk wholly inside the file, and no chunk that gives
ffmpeg more to say (an ID3 tag can carry cover art, a `ds64` makes it RF64). Anything else returns None,
and ffprobe describes it. `tests/pipeline/test_wav_header.py` holds the two descriptions equal.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

_PCM, _IEEE_FLOAT = 1, 3
# (format tag, bits per sample) → ffmpeg's codec and the sample format its decoder gives.
_CODECS = {
    (_PCM, 8): ("pcm_u8", "u8"),
    (_PCM, 16): ("pcm_s16le", "s16"),
    (_PCM, 24): ("pcm_s24le", "s32"),
    (_PCM, 32): ("pcm_s32le", "s32"),
    (_IEEE_FLOAT, 32): ("pcm_f32le", "flt"),
    (_IEEE_FLOAT, 64): ("pcm_f64le", "dbl"),
}
# Chunks that change nothing in ffprobe's streams or duration: INFO and broadcast-wave tags, padding.
_QUIET_CHUNKS = frozenset({b"fact", b"LIST", b"bext", b"JUNK", b"junk", b"PAD ", b"FLLR"})
_MAX_CHUNKS = 64  # a header of more chunks than this is unusual: ffprobe reads it


def wav_description(source: Path) -> dict[str, Any] | None:
    """ffprobe's `-show_format -show_streams` JSON for a plain PCM WAV, as far as the metadata reads it; None
    for any other file."""
    size = source.stat().st_size
    with source.open("rb") as wav:
        head = wav.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        chunks = _chunks(wav, size)
    if chunks is None:
        return None
    fmt, (data_offset, data_size) = chunks
    if len(fmt) != 16 and not (len(fmt) == 18 and fmt[16:18] == b"\0\0"):
        return None  # WAVEFORMATEXTENSIBLE (a channel mask ffprobe names), or a codec's extra data
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
    codec = _CODECS.get((tag, bits))
    if codec is None or not channels or not rate or block_align != channels * bits // 8:
        return None
    if data_offset + data_size > size:
        return None  # cut short, or a streaming writer's placeholder size: ffmpeg measures the file
    samples = data_size // block_align
    microseconds = (samples * 2_000_000 + rate) // (2 * rate)  # rounded as ffmpeg rescales
    if not microseconds:
        return None
    codec_name, sample_fmt = codec
    stream: dict[str, Any] = {
        "index": 0,
        "codec_name": codec_name,
        "codec_type": "audio",
        "codec_tag_string": f"[{tag}][0][0][0]",
        "sample_fmt": sample_fmt,
        "sample_rate": str(rate),
        "channels": channels,
        "bits_per_sample": bits,
        "time_base": f"1/{rate}",
        "duration_ts": samples,
        "duration": f"{samples / rate:.6f}",
        "bit_rate": str(rate * channels * bits),
    }
    if tag == _PCM and bits > 16:
        stream["bits_per_raw_sample"] = str(bits)
    return {
        "streams": [stream],
        "format": {
            "nb_streams": 1,
            "format_name": "wav",
            "duration": f"{microseconds / 1e6:.6f}",
            "size": str(size),
            "bit_rate": str(size * 8 * 1_000_000 // microseconds),
        },
    }


def _chunks(wav: Any, size: int) -> tuple[bytes, tuple[int, int]] | None:
    """The `fmt ` chunk's bytes and the one `data` chunk's offset and size, walking every chunk header;
    None when a chunk ffprobe might read otherwise is present."""
    fmt: bytes | None = None
    data: tuple[int, int] | None = None
    offset = 12
    for _ in range(_MAX_CHUNKS):
        if offset + 8 > size:
            # The end (a last odd-length chunk may lack its pad byte; trailing bytes are ignored, as by ffmpeg).
            return (fmt, data) if fmt is not None and data is not None else None
        wav.seek(offset)
        kind, length = struct.unpack("<4sI", wav.read(8))
        if kind == b"fmt " and fmt is None and length <= 64:
            fmt = wav.read(length)
        elif kind == b"data" and data is None:
            data = (offset + 8, length)
        elif kind not in _QUIET_CHUNKS:
            return None
        offset += 8 + length + (length & 1)  # chunks are padded to an even length
    return None
