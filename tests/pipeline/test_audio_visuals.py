"""audio visuals: waveform and spectrogram PNGs of the configured sizes, and streamed peaks."""

from __future__ import annotations

import itertools
import json
import subprocess
from array import array
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from mediaingest.models.enums import MediaType, ProxyType
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.stages.audio_visuals import PeaksAccumulator, generate_audio_visuals
from mediaingest.pipeline.stages.probe import probe


def _pairs(data: list[int]) -> list[tuple[int, int]]:
    return list(zip(data[::2], data[1::2], strict=True))


def test_audio_file_gets_waveform_spectrogram_and_peaks(
    audio_with_cover: Path, options: PipelineOptions, tmp_path: Path
) -> None:
    # Sizes other than the defaults, to see that the configuration (not ffmpeg's default) decides;
    # a height of 500 also takes the spectrogram's draw-at-512-then-scale path (direct: ~15 s).
    sized = replace(options, waveform_width=640, waveform_height=120, spectrogram_width=300, spectrogram_height=500)
    md = probe(audio_with_cover, MediaType.AUDIO, options=options)
    progress: list[float] = []
    result = generate_audio_visuals(
        audio_with_cover, md, tmp_path, options=sized, on_progress=lambda f, _: progress.append(f)
    )
    outputs = {o.kind: o for o in result.outputs}
    assert set(outputs) == {ProxyType.WAVEFORM, ProxyType.SPECTROGRAM, ProxyType.WAVEFORM_PEAKS, ProxyType.AUDIO}
    assert {o.bucket for o in result.outputs if o.kind != ProxyType.AUDIO} == {"processed"}

    for kind, size in {ProxyType.WAVEFORM: (640, 120), ProxyType.SPECTROGRAM: (300, 500)}.items():
        with Image.open(outputs[kind].path) as image:
            image.verify()  # a complete, valid PNG
        with Image.open(outputs[kind].path) as image:
            assert (image.format, image.size) == ("PNG", size)
            assert (outputs[kind].width, outputs[kind].height) == size
            assert max(max(band) for band in image.convert("RGBA").getextrema()) > 0  # something was drawn
    with Image.open(outputs[ProxyType.WAVEFORM].path) as waveform:
        # Transparent above a 1/8-scale tone, drawn in the configured colour across the middle.
        assert waveform.mode == "P"  # two colours: a palette with a transparent entry
        shown = waveform.convert("RGBA")  # what a browser draws
        assert shown.getpixel((320, 2))[3] == 0
        assert shown.getpixel((320, 60)) == (0x3B, 0x82, 0xF6, 255)

    peaks = json.loads(outputs[ProxyType.WAVEFORM_PEAKS].path.read_text())
    assert outputs[ProxyType.WAVEFORM_PEAKS].content_type == "application/json"
    assert (peaks["sample_rate"], peaks["channels"], peaks["bits"]) == (8000, 1, 16)
    assert peaks["duration_seconds"] == pytest.approx(3.0, abs=0.1)
    assert [level["buckets"] for level in peaks["levels"]] == [256, 1024, 4096]
    for level in peaks["levels"]:
        data = level["data"]
        assert len(data) == 2 * level["buckets"]
        assert all(-32768 <= low <= high <= 32767 for low, high in _pairs(data))
        assert level["samples_per_bucket"] == pytest.approx(peaks["samples"] / level["buckets"], abs=0.001)
    # Against a plain decode through the same resampling (fine for a 3 s test file, in memory):
    # every level agrees on the extremes, and the sample count matches exactly.
    reference = _decode_like_the_stage(audio_with_cover)
    assert peaks["samples"] == len(reference)
    for level in peaks["levels"]:
        assert (min(level["data"]), max(level["data"])) == (min(reference), max(reference))
    assert max(reference) > 1000  # a real tone, not silence

    assert progress and progress[-1] == 1.0
    assert all(b > a for a, b in itertools.pairwise(progress))


def test_video_audio_track_is_used(video_1080p: Path, options: PipelineOptions, tmp_path: Path) -> None:
    md = probe(video_1080p, MediaType.VIDEO, options=options)
    result = generate_audio_visuals(video_1080p, md, tmp_path, options=options)
    waveform = next(o for o in result.outputs if o.kind == ProxyType.WAVEFORM)
    with Image.open(waveform.path) as image:
        assert image.size == (options.waveform_width, options.waveform_height) == (1800, 240)
    spectrogram = next(o for o in result.outputs if o.kind == ProxyType.SPECTROGRAM)
    with Image.open(spectrogram.path) as image:
        assert image.size == (1024, 512)  # legend=0: no axes added around the requested size


def test_video_without_audio_is_a_quick_no_op(
    small_silent_video: Path, options: PipelineOptions, tmp_path: Path
) -> None:
    md = probe(small_silent_video, MediaType.VIDEO, options=options)
    result = generate_audio_visuals(small_silent_video, md, tmp_path, options=options)
    assert (result.outputs, result.message) == ([], "no audio stream")
    assert not list(tmp_path.iterdir())


def _decode_like_the_stage(path: Path) -> array[int]:
    chain = "aresample=8000,aformat=sample_fmts=s16:channel_layouts=mono"
    done = subprocess.run(
        ["/usr/bin/ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a:0", "-af", chain, "-f", "s16le", "-"],
        capture_output=True,
        check=True,
    )
    return array("h", done.stdout)


def _pcm(samples: list[int]) -> bytes:
    return array("h", samples).tobytes()


def test_peaks_are_exact_across_odd_chunk_boundaries() -> None:
    samples = [((i * 37) % 2001) - 1000 for i in range(8000)]
    samples[1234], samples[6000] = 32767, -32768
    accumulator = PeaksAccumulator(expected_samples=len(samples), finest_level=8)
    data = _pcm(samples)
    for start in range(0, len(data), 777):  # odd sizes split samples between chunks
        accumulator.feed(data[start : start + 777])
    accumulator.finish()
    assert accumulator.total == 8000
    level = accumulator.level(4)
    pairs = list(_pairs(level["data"]))
    for index, (low, high) in enumerate(pairs):
        chunk = samples[index * 2000 : (index + 1) * 2000]
        assert (low, high) == (min(chunk), max(chunk))
    assert pairs[0][1] == 32767 and pairs[3][0] == -32768


def test_peaks_memory_stays_bounded_when_the_duration_was_wrong() -> None:
    # Told 100 samples, fed 200 000: blocks merge instead of growing without end.
    accumulator = PeaksAccumulator(expected_samples=100, finest_level=16)
    chunk = _pcm([100, -100] * 5000)
    for _ in range(20):
        accumulator.feed(chunk)
    accumulator.finish()
    assert accumulator.total == 200_000
    assert len(accumulator.mins) <= 2 * 16 * 4
    level = accumulator.level(16)
    assert level["buckets"] == 16
    assert set(_pairs(level["data"])) == {(-100, 100)}


def test_peaks_of_very_short_audio_have_fewer_buckets() -> None:
    accumulator = PeaksAccumulator(expected_samples=3, finest_level=4096)
    accumulator.feed(_pcm([5, -7, 9]))
    accumulator.finish()
    document = accumulator.to_document((256, 4096), sample_rate=8000)
    assert [level["buckets"] for level in document["levels"]] == [3, 3]
    assert document["levels"][0]["data"] == [5, 5, -7, -7, 9, 9]


def test_a_short_clips_spectrogram_is_drawn_to_its_right_edge(options: PipelineOptions, tmp_path: Path) -> None:
    """AAC's padding makes a 4 s clip 4.02 s long: its last second was padded with silence and drawn black."""
    clip = tmp_path / "tone.m4a"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=f=440:d=4", "-c:a", "aac", str(clip)], check=True
    )
    md = probe(clip, MediaType.AUDIO, options=options)
    result = generate_audio_visuals(clip, md, tmp_path / "out", options=options)
    spectrogram = next(o for o in result.outputs if o.kind == ProxyType.SPECTROGRAM)
    with Image.open(spectrogram.path) as image:
        gray = image.convert("L")
        width, height = gray.size
        dark = [x for x in range(width) if max(gray.getpixel((x, y)) for y in range(0, height, 4)) == 0]
    assert len(dark) <= width // 100, f"{len(dark)} of {width} columns drawn black"
