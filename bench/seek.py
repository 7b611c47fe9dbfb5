"""Scrubbing: how long landing on a random frame of the lowest rung takes, for the scrubbing rung (a
closed GOP every second, no B-frames) against the same rung encoded as before (2 s GOPs, B-frames).

Both rungs come from the production command builder, differing only in `scrub`. Each of 100 random
frames (same seed for both) is reached the way a player seeks: ffmpeg with an input seek decoding up to
that frame. The frames that must be decoded to show it are counted from the keyframe index too, which
does not move with the machine's load.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from bench.sources import Source
from mediaingest.models.enums import MediaType
from mediaingest.pipeline.ffmpeg import FfmpegCommand, FfmpegInput, FilterGraph, filter_spec
from mediaingest.pipeline.filters import base_video_filters, video_stream_specifier
from mediaingest.pipeline.hls import HLS_DIR
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.stages.probe import probe
from mediaingest.pipeline.stages.proxies import Rendition, build_proxy_plan, rendition_output

SEEKS = 100


def run(sources: list[Source], log: Callable[[str], None]) -> list[dict[str, Any]]:
    options = PipelineOptions()
    results = []
    for source in (s for s in sources if s.kind == "video"):
        with tempfile.TemporaryDirectory(prefix="bench-seek-") as scratch:
            out = Path(scratch)
            metadata = probe(source.path, MediaType.VIDEO, options=options)
            plan = build_proxy_plan(source.path, metadata, out, options)
            lowest = next(r for r in plan.renditions if r.scrub and r.codec == "h264")
            rate = Fraction(metadata.frame_rate or "30")
            frames = int((metadata.duration_seconds or 0) * rate) - 1
            targets = random.Random(14).sample(range(frames), min(SEEKS, frames))
            measured = {}
            for variant, scrub in (("before", False), ("scrub", True)):
                rung = replace(lowest, scrub=scrub, path=out / f"{variant}.mp4")
                _encode(source.path, metadata, rung, options)
                measured[variant] = _seek(rung.path, targets, rate)
            row = {
                "source": source.name,
                "rung": lowest.resolution,
                "seeks": len(targets),
                **{f"{variant}_{key}": value for variant, m in measured.items() for key, value in m.items()},
            }
            row["seek_ratio"] = round(row["before_median_ms"] / row["scrub_median_ms"], 2)
            results.append(row)
            log(
                f"  {source.name}: {lowest.resolution} seek median {row['before_median_ms']} → "
                f"{row['scrub_median_ms']} ms, frames decoded mean {row['before_decoded_mean']} → "
                f"{row['scrub_decoded_mean']} (max {row['before_decoded_max']} → {row['scrub_decoded_max']})"
            )
    return results


def _encode(source: Path, metadata: Any, rung: Rendition, options: PipelineOptions) -> None:
    graph = FilterGraph()
    filters = [*base_video_filters(metadata), filter_spec("fps", metadata.frame_rate)]
    filters += [filter_spec("scale", rung.width, rung.height, flags="bicubic"), filter_spec("setsar", 1)]
    graph.chain([video_stream_specifier(metadata)], [*filters, filter_spec("format", "yuv420p")], [f"h264_{rung.rung}"])
    # The rung's MP4 is what is measured; the HLS copy its encoder also feeds goes beside it, by variant.
    hls_root = rung.path.with_suffix("")
    (hls_root / HLS_DIR / rung.resolution).mkdir(parents=True)  # ffmpeg's hls muxer makes no folders
    command = FfmpegCommand([FfmpegInput(source)], [rendition_output(rung, metadata, options, hls_root)], graph)
    subprocess.run(["ffmpeg", "-v", "error", *command.argv("ffmpeg")[1:]], check=True)


def _seek(path: Path, targets: list[int], rate: Fraction) -> dict[str, Any]:
    keyframes = _keyframe_indexes(path)
    decoded = [target - max(k for k in keyframes if k <= target) + 1 for target in targets]
    times = []
    for target in targets:
        position = f"{float(target / rate):.6f}"
        started = time.perf_counter()
        subprocess.run(
            ["ffmpeg", "-v", "error", "-ss", position, "-i", str(path), "-frames:v", "1", "-f", "null", "-"],
            check=True,
        )
        times.append((time.perf_counter() - started) * 1000)
    return {
        "median_ms": round(statistics.median(times), 1),
        "decoded_mean": round(statistics.mean(decoded), 1),
        "decoded_max": max(decoded),
        "bytes": path.stat().st_size,
    }


def _keyframe_indexes(path: Path) -> list[int]:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts,flags", "-of", "json",
         str(path)],
        capture_output=True,
        check=True,
    )  # fmt: skip
    packets = sorted(json.loads(done.stdout)["packets"], key=lambda p: int(p["pts"]))
    return [index for index, packet in enumerate(packets) if "K" in packet["flags"]]
