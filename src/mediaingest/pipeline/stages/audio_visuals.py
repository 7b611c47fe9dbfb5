"""audio visuals: waveform PNG, spectrogram PNG and waveform peaks JSON, from one decode of the audio.

One ffmpeg process splits the decoded audio two ways: showspectrumpic, and 8 kHz mono 16-bit PCM on
stdout, which is reduced to min/max peaks chunk by chunk as it arrives. The waveform PNG is drawn from
those peaks rather than by showwavespic: showwavespic keeps every decoded frame until the end of the
input (measured: 300 MB for one hour of audio, growing with the length), and drawing the same min/max
columns from the peaks costs nothing and guarantees the PNG and the JSON agree.

showspectrumpic also holds all of its input until the end, so its branch is resampled to a rate that
bounds that memory (see spectrogram_rate_for), and trimmed at that many samples whatever the header
claims: a file whose header says 1 s but holds 2 h of audio (which once took ffmpeg to 1.4 GB) costs
no more memory than an honest one. When the decoded length shows the header lied, the spectrogram is
drawn again from a rate sized by the real length, so the picture still covers the whole file.
Neither picture output gets a frame before the end, which keeps ffmpeg 5.1 from printing -progress;
progress is counted from the PCM received instead.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import threading
from array import array
from pathlib import Path
from typing import Any

from PIL import Image, ImageColor, ImageDraw

from mediaingest.models.enums import ProxyType
from mediaingest.pipeline.ffmpeg import (
    FfmpegCommand,
    FfmpegInput,
    FfmpegOutput,
    FilterGraph,
    ProgressThrottle,
    filter_spec,
    require_output,
)
from mediaingest.pipeline.filters import AudioTrack, audio_stream_specifier, audio_tracks
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.types import MediaMetadata, ProgressCallback, StageOutput, StageResult

WAVEFORM_NAME = "waveform.png"
SPECTROGRAM_NAME = "spectrogram.png"
PEAKS_NAME = "peaks.json"
# showspectrumpic keeps all input as 32-bit floats until EOF: cap it at 32 Mi samples (128 MiB).
_SPECTROGRAM_MAX_SAMPLES = 32 * 1024 * 1024
_SPECTROGRAM_MAX_RATE = 48000
_SPECTROGRAM_MIN_RATE = 1000
Loudness = dict[str, float | None]  # read_loudness: integratedLufs, loudnessRangeLu, truePeakDbtp


def generate_audio_visuals(
    source: Path,
    metadata: MediaMetadata,
    out_dir: Path,
    *,
    options: PipelineOptions,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> StageResult:
    if not metadata.has_audio:
        # The Kubernetes operator runs a static plan: this must be a quick, successful no-op.
        return StageResult(message="no audio stream")
    out_dir.mkdir(parents=True, exist_ok=True)
    expected = int((metadata.duration_seconds or 0) * options.peaks_sample_rate)
    peaks = PeaksAccumulator(expected_samples=expected, finest_level=max(*options.peaks_levels, options.waveform_width))
    throttle = ProgressThrottle(on_progress, "audio visuals", options.progress_interval_seconds)

    def consume(chunk: bytes) -> None:
        peaks.feed(chunk)
        if expected:
            throttle.update(peaks.total / expected)

    tracks = audio_tracks(metadata)
    _remove_track_scratch(out_dir)
    spectrogram_rate = spectrogram_rate_for(metadata.duration_seconds, metadata.sample_rate)
    command = build_audio_visuals_command(
        source, metadata, out_dir, options, spectrogram_rate=spectrogram_rate, tracks=tracks
    )
    options.tools.run(
        command,
        duration_seconds=metadata.duration_seconds,
        on_progress=None,
        cancel=cancel,
        timeout=options.ffmpeg_deadline(metadata.duration_seconds),
        stdout_sink=consume,
        label="audio visuals",
    )
    peaks.finish()
    decoded_seconds = peaks.total / options.peaks_sample_rate
    spectrogram_rate = _redraw_if_trimmed(
        source, metadata, out_dir, options, cancel, rate=spectrogram_rate, decoded_seconds=decoded_seconds
    )

    track_peaks = {tracks[0].number: peaks}
    for track in tracks[1:]:
        track_peaks[track.number] = _peaks_from_file(peaks_pcm_path(out_dir, track), expected, options)
    loudness = {track.number: read_loudness(loudness_log(out_dir, track)) for track in tracks}
    waveform = draw_waveform(peaks, options.waveform_width, options.waveform_height, options.waveform_color)
    waveform.save(out_dir / WAVEFORM_NAME, "PNG", optimize=True)
    throttle.finish()
    outputs = [
        _png_output(
            ProxyType.WAVEFORM,
            out_dir / WAVEFORM_NAME,
            options.waveform_width,
            options.waveform_height,
            {"sample_rate": options.peaks_sample_rate, "channels": 1},
        ),
        _png_output(
            ProxyType.SPECTROGRAM,
            out_dir / SPECTROGRAM_NAME,
            options.spectrogram_width,
            options.spectrogram_height,
            {"sample_rate": spectrogram_rate, "channels": 1, "scale": "log"},
        ),
        *_track_outputs(out_dir, tracks, track_peaks, options),
    ]
    first = loudness[tracks[0].number]
    return StageResult(
        outputs=outputs,
        measurements=_loudness_measurements(metadata, first, loudness),
        message=f"waveform, spectrogram, peaks and loudness ({_loudness_summary(first)}) of {len(tracks)} track(s)",
    )


def _track_outputs(
    out_dir: Path, tracks: list[AudioTrack], track_peaks: dict[int, PeaksAccumulator], options: PipelineOptions
) -> list[StageOutput]:
    """Each track's peaks JSON (written here) and AAC proxy."""
    outputs: list[StageOutput] = []
    for track in tracks:
        outputs.append(_peaks_output(out_dir / peaks_name(track), track, track_peaks[track.number], options))
        outputs.append(_audio_proxy_output(audio_proxy_path(out_dir, track), track))
    return outputs


def _remove_track_scratch(out_dir: Path) -> None:
    """An earlier attempt's per-track files, whose track count may differ."""
    for stale in [*out_dir.glob("peaks_track*"), *out_dir.glob("loudness_track*")]:
        stale.unlink()


def _redraw_if_trimmed(
    source: Path,
    metadata: MediaMetadata,
    out_dir: Path,
    options: PipelineOptions,
    cancel: threading.Event | None,
    *,
    rate: int,
    decoded_seconds: float,
) -> int:
    """The rate the spectrogram is drawn at. When the header understated the length, the trimmed spectrogram
    shows only the start: it is drawn again at the rate the real length affords (a second decode, paid
    only by such files)."""
    if decoded_seconds * rate <= _SPECTROGRAM_MAX_SAMPLES:
        return rate
    rate = spectrogram_rate_for(decoded_seconds, metadata.sample_rate)
    options.tools.run(
        build_spectrogram_command(source, metadata, out_dir, options, spectrogram_rate=rate),
        duration_seconds=decoded_seconds,
        on_progress=None,
        cancel=cancel,
        timeout=options.ffmpeg_deadline(decoded_seconds),
        label="spectrogram",
    )
    return rate


def _loudness_measurements(
    metadata: MediaMetadata, first: Loudness | None, loudness: dict[int, Loudness | None]
) -> dict[str, Any]:
    """The first track's loudness, and every listed track with its own."""
    measurements: dict[str, Any] = {"loudness": first}
    listed = [{**track, "loudness": loudness.get(track.get("index", -1))} for track in metadata.audio_tracks or []]
    if listed:
        measurements["audio_tracks"] = listed
    return measurements


def _loudness_summary(loudness: Loudness | None) -> str:
    return f"{loudness['integratedLufs']} LUFS" if loudness and loudness.get("integratedLufs") is not None else "silent"


def _peaks_from_file(path: Path, expected_samples: int, options: PipelineOptions) -> PeaksAccumulator:
    peaks = PeaksAccumulator(
        expected_samples=expected_samples, finest_level=max(*options.peaks_levels, options.waveform_width)
    )
    with path.open("rb") as pcm:
        while chunk := pcm.read(1 << 20):
            peaks.feed(chunk)
    peaks.finish()
    path.unlink()  # scratch only: the peaks JSON is what is kept
    return peaks


def _peaks_output(path: Path, track: AudioTrack, peaks: PeaksAccumulator, options: PipelineOptions) -> StageOutput:
    document = peaks.to_document(options.peaks_levels, sample_rate=options.peaks_sample_rate)
    path.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")
    return StageOutput(
        kind=ProxyType.WAVEFORM_PEAKS,
        path=path,
        bucket="processed",
        format="json",
        content_type="application/json",
        details={
            "levels": [level["buckets"] for level in document["levels"]],
            "samples": peaks.total,
            "track": track.number,
        },
    )


def _audio_proxy_output(path: Path, track: AudioTrack) -> StageOutput:
    require_output(path)
    return StageOutput(
        kind=ProxyType.AUDIO,
        path=path,
        bucket="proxies",
        format="m4a",
        content_type="audio/mp4",
        quality="aac",
        details={"track": track.number, "channels": track.channels, "channelLayout": track.channel_layout},
    )


def read_loudness(log: Path) -> Loudness | None:
    """EBU R128 from ebur128's per-frame metadata log: its last values are the whole track's.

    Only the file's tail is read (the log grows by about 8 MB an hour). True peak is the highest
    channel's, in dBTP; silence has none. None when the track had no audio frames at all.
    """
    if not log.is_file():
        return None
    with log.open("rb") as handle:
        handle.seek(max(0, log.stat().st_size - 8192))
        tail = handle.read().decode(errors="replace").splitlines()
    log.unlink()
    values = _r128_values(tail)
    if "I" not in values:
        return None
    return {
        "integratedLufs": round(values["I"], 2),
        "loudnessRangeLu": round(values["LRA"], 2) if "LRA" in values else None,
        "truePeakDbtp": _true_peak_dbtp(values),
    }


def _true_peak_dbtp(values: dict[str, float]) -> float | None:
    """The highest channel's true peak in dBTP; None for silence."""
    peak = max((value for key, value in values.items() if key.startswith("true_peaks_ch")), default=0.0)
    return round(20 * math.log10(peak), 2) if peak > 0 else None


def _r128_values(lines: list[str]) -> dict[str, float]:
    """The `lavfi.r128.<name>=<number>` lines as {name: number}, the last of each name."""
    values: dict[str, float] = {}
    for line in lines:
        key, _, value = line.partition("=")
        if key.startswith("lavfi.r128."):
            with contextlib.suppress(ValueError):
                values[key.removeprefix("lavfi.r128.")] = float(value)
    return values


def build_audio_visuals_command(
    source: Path,
    metadata: MediaMetadata,
    out_dir: Path,
    options: PipelineOptions,
    *,
    spectrogram_rate: int,
    tracks: list[AudioTrack] | None = None,
) -> FfmpegCommand:
    """The one command: the first track's spectrogram and 8 kHz mono PCM on stdout for its peaks; every
    track's loudness (EBU R128), its own AAC proxy at its own layout, and (past the first) its peaks PCM."""
    tracks = audio_tracks(metadata) if tracks is None else tracks
    graph = FilterGraph()
    outputs: list[FfmpegOutput] = []
    for track in tracks:
        first = track.number == tracks[0].number
        branches = (["spectrum_in"] if first else []) + [f"pcm{track.number}_in", f"loud{track.number}_in"]
        graph.chain([track.specifier], [filter_spec("asplit", len(branches))], branches)
        graph.chain([f"pcm{track.number}_in"], _peaks_pcm_filters(options), [f"pcm{track.number}"])
        graph.chain(
            [f"loud{track.number}_in"],
            [
                filter_spec("ebur128", peak="true", metadata=1),
                filter_spec("ametadata", mode="print", file=str(loudness_log(out_dir, track))),
                "anullsink",
            ],
            [],
        )
        pcm_target: Path | str = "pipe:1" if first else peaks_pcm_path(out_dir, track)
        # Written in 32 KB blocks, not packet by packet: a 30 s voice note's PCM came in a thousand reads,
        # each a wake-up and a feed in Python (0.07 CPU-s); 2 s of peaks per block is still fine progress.
        pcm = ["-map", f"[pcm{track.number}]", "-c:a", "pcm_s16le", "-flush_packets", "0", "-f", "s16le"]
        outputs.append(FfmpegOutput(pcm_target, pcm))
        outputs.append(FfmpegOutput(audio_proxy_path(out_dir, track), _aac_args(track, metadata, options)))
    graph.chain(["spectrum_in"], _spectrogram_filters(options, spectrogram_rate), ["spectrogram"])
    outputs.insert(0, FfmpegOutput(out_dir / SPECTROGRAM_NAME, ["-map", "[spectrogram]", *_PICTURE]))
    return FfmpegCommand(inputs=[FfmpegInput(source)], filter_graph=graph, outputs=outputs)


def loudness_log(out_dir: Path, track: AudioTrack) -> Path:
    return out_dir / f"loudness_track{track.number}.log"


def peaks_pcm_path(out_dir: Path, track: AudioTrack) -> Path:
    return out_dir / f"peaks_track{track.number}.pcm"


def audio_proxy_path(out_dir: Path, track: AudioTrack) -> Path:
    return out_dir / f"audio_track{track.number}.m4a"


def peaks_name(track: AudioTrack) -> str:
    return PEAKS_NAME if track.number == 0 else f"peaks_track{track.number}.json"


def _peaks_pcm_filters(options: PipelineOptions) -> list[str]:
    return [
        filter_spec("aresample", options.peaks_sample_rate),
        filter_spec("aformat", sample_fmts="s16", channel_layouts="mono"),
    ]


def _aac_args(track: AudioTrack, metadata: MediaMetadata, options: PipelineOptions) -> list[str]:
    """The track as it is (its channels, its layout), for a timeline that mixes tracks itself."""
    per_channel = max(32, options.audio_bitrate_kbps // 2)
    bitrate = min(512, per_channel * (track.channels or 2))
    args = ["-map", track.specifier, "-map_metadata", "-1", "-c:a", "aac", "-b:a", f"{bitrate}k"]
    if (_sample_rate(track, metadata) or 48000) > 48000:
        args += ["-ar", "48000"]
    return [*args, "-movflags", "+faststart", "-f", "mp4"]


def _sample_rate(track: AudioTrack, metadata: MediaMetadata) -> int | None:
    """The track's rate as the probe listed it; the first stream's when it listed no tracks."""
    return next(
        (t.get("sampleRate") for t in metadata.audio_tracks or [] if t.get("index") == track.number),
        metadata.sample_rate,
    )


def build_spectrogram_command(
    source: Path, metadata: MediaMetadata, out_dir: Path, options: PipelineOptions, *, spectrogram_rate: int
) -> FfmpegCommand:
    """The spectrogram alone, for a second pass at a rate sized by the real length."""
    graph = FilterGraph()
    graph.chain([audio_stream_specifier(metadata)], _spectrogram_filters(options, spectrogram_rate), ["spectrogram"])
    return FfmpegCommand(
        inputs=[FfmpegInput(source)],
        filter_graph=graph,
        outputs=[FfmpegOutput(out_dir / SPECTROGRAM_NAME, ["-map", "[spectrogram]", *_PICTURE])],
    )


_PICTURE = ["-frames:v", "1", "-c:v", "png", "-f", "image2", "-update", "1"]


def _spectrogram_filters(options: PipelineOptions, rate: int) -> list[str]:
    # showspectrumpic's FFT size follows the height, and sizes that are not powers of two can be
    # very slow (measured: 1024×500 took 15 s for 3 s of audio, 1024×512 0.1 s). Draw at the next
    # power of two and scale to the configured height.
    fft_height = 1 << max(0, options.spectrogram_height - 1).bit_length()
    resize: list[str] = []
    if fft_height != options.spectrogram_height:
        resize = [filter_spec("scale", options.spectrogram_width, options.spectrogram_height)]
    return [
        filter_spec("aresample", rate),
        filter_spec("aformat", channel_layouts="mono"),
        # The memory bound that holds whatever the header claims: never more samples than that.
        filter_spec("atrim", end_sample=_SPECTROGRAM_MAX_SAMPLES),
        # One-second frames: the filter queues every frame until the end, and the overhead of
        # ~1000-sample frames doubled that memory (measured for an hour: 367 MB → 187 MB). The last
        # one is left short (p=0): padded with silence it drew up to a second of black at the right,
        # a fifth of the picture for a 4 s clip.
        filter_spec("asetnsamples", n=rate, p=0),
        # legend=0: otherwise axes and labels are added around the requested size.
        filter_spec("showspectrumpic", s=f"{options.spectrogram_width}x{fft_height}", legend=0, scale="log"),
        *resize,
    ]


def spectrogram_rate_for(duration_seconds: float | None, sample_rate: int | None) -> int:
    """The source's rate while the whole input fits the memory cap; lower for long inputs.

    The price: an hour is drawn at ~9 kHz, so frequencies above ~4.5 kHz are left out of its picture.
    """
    source_rate = sample_rate or 44100
    if not duration_seconds:
        return min(source_rate, 22050)
    affordable = int(_SPECTROGRAM_MAX_SAMPLES / duration_seconds)
    return max(_SPECTROGRAM_MIN_RATE, min(source_rate, _SPECTROGRAM_MAX_RATE, affordable))


def _png_output(kind: ProxyType, path: Path, width: int, height: int, details: dict[str, Any]) -> StageOutput:
    require_output(path)
    return StageOutput(
        kind=kind,
        path=path,
        bucket="processed",
        format="png",
        content_type="image/png",
        resolution=f"{width}x{height}",
        width=width,
        height=height,
        details=details,
    )


def draw_waveform(peaks: PeaksAccumulator, width: int, height: int, color: str) -> Image.Image:
    """One vertical min→max line per column on a transparent background, as showwavespic draws it.

    Two colours, so a palette picture: a sixth of an RGBA PNG's bytes, drawn and compressed in a tenth of
    the time (measured: 1 KB and 8 ms against 6 KB and 70 ms at 1800x240); browsers show the same pixels."""
    red, green, blue, alpha = ImageColor.getcolor(color, "RGBA")  # type: ignore[misc]
    image = Image.new("P", (width, height), 0)
    image.putpalette([0, 0, 0, red, green, blue])
    image.info["transparency"] = bytes([0, alpha])  # index 0 clear, index 1 the colour's own alpha
    draw = ImageDraw.Draw(image)
    level = peaks.level(width)
    buckets, data = level["buckets"], level["data"]
    middle = (height - 1) / 2
    for column in range(width if buckets else 0):
        bucket = column * buckets // width  # stretches when there are fewer buckets than columns
        low, high = data[2 * bucket], data[2 * bucket + 1]
        top, bottom = round(middle - high / 32768 * middle), round(middle - low / 32768 * middle)
        draw.line([(column, top), (column, bottom)], fill=1)
    return image


class PeaksAccumulator:
    """Min/max of 16-bit mono PCM per block, fed in chunks; memory stays bounded whatever the length.

    Blocks are kept at about four times the finest level's resolution. The block size comes from the
    expected length, and doubles (merging neighbours) whenever the real audio turns out longer, so a
    wrong duration costs precision at most, never memory.
    """

    def __init__(self, *, expected_samples: int, finest_level: int) -> None:
        self.target_blocks = max(1, finest_level * 4)
        self.block = max(1, math.ceil(expected_samples / self.target_blocks)) if expected_samples else 256
        self.mins = array("h")
        self.maxs = array("h")
        self.total = 0
        self._pending = array("h")
        self._carry = b""

    def feed(self, chunk: bytes) -> None:
        samples = self._samples(chunk)
        self.total += len(samples)
        if self._pending:
            samples = self._pending + samples
        start = 0
        while (count := (len(samples) - start) // self.block) > 0:
            # Up to the next halving at most, so blocks merge exactly as if fed one by one.
            count = min(count, 2 * self.target_blocks - len(self.mins))
            end = start + count * self.block
            # The blocks as tuples, and their min and max, in C: a short file's blocks are a few samples
            # each, and a Python loop per block cost more than ffmpeg's whole decode of a 10 s WAV.
            blocks = list(zip(*[iter(samples[start:end])] * self.block, strict=True))
            self.mins.extend(map(min, blocks))
            self.maxs.extend(map(max, blocks))
            start = end
            if len(self.mins) >= 2 * self.target_blocks:
                self._halve()
        self._pending = samples[start:]

    def _samples(self, chunk: bytes) -> array[int]:
        """The chunk's whole samples; an odd last byte is kept for the next chunk."""
        data = self._carry + chunk
        usable = len(data) - len(data) % 2
        self._carry = data[usable:]
        samples = array("h")
        samples.frombytes(data[:usable])
        if sys.byteorder == "big":
            samples.byteswap()  # s16le on the wire
        return samples

    def finish(self) -> None:
        if self._pending:
            self.mins.append(min(self._pending))
            self.maxs.append(max(self._pending))
            self._pending = array("h")

    def _halve(self) -> None:
        self.mins = array("h", (min(self.mins[i], self.mins[i + 1]) for i in range(0, len(self.mins), 2)))
        self.maxs = array("h", (max(self.maxs[i], self.maxs[i + 1]) for i in range(0, len(self.maxs), 2)))
        self.block *= 2

    def level(self, buckets: int) -> dict[str, Any]:
        """`buckets` min/max pairs (fewer if the audio has fewer blocks), interleaved as audiowaveform does."""
        blocks = len(self.mins)
        count = min(buckets, blocks)
        data: list[int] = []
        for index in range(count):
            first, last = index * blocks // count, (index + 1) * blocks // count
            data += [min(self.mins[first:last]), max(self.maxs[first:last])]
        return {
            "buckets": count,
            "samples_per_bucket": round(self.total / count, 3) if count else 0,
            "data": data,
        }

    def to_document(self, levels: tuple[int, ...], *, sample_rate: int) -> dict[str, Any]:
        return {
            "version": 1,
            "channels": 1,
            "sample_rate": sample_rate,
            "bits": 16,
            "samples": self.total,
            "duration_seconds": round(self.total / sample_rate, 3),
            "levels": [self.level(n) for n in sorted(set(levels))],
        }
