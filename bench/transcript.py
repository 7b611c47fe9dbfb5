"""The transcript stage: CPU seconds per media second, and what it does to READY and first playable.

1. The stage function in this process, on espeak-ng speech (Debian's, generated once and cached): the
   default model loaded once first (its load timed on its own, as a worker pays it once per process),
   then the whole stage — decode, VAD, model, captions — with its CPU counted from this process and its
   ffmpeg children. Baselines in the same run, on the same audio: the audio visuals stage (its sibling on
   every asset with sound) and ffmpeg's decode to the model's 16 kHz samples alone (the floor).
2. The service (`mediaingest serve --embedded-worker`, as `make run` starts it) on a speech video, with
   TRANSCRIBE on and off, alternated: confirm → first playable and confirm → READY.

Target (issue #28): ≤ 0.15 CPU-s per media second with the default model on 2 cores; first playable
unchanged.
"""

from __future__ import annotations

import hashlib
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.client import ApiClient
from bench.pipeline import run_mediaingest
from bench.service import ServiceProcess
from bench.sources import SOURCES, Source
from mediaingest.models.enums import MediaType
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.stages.audio_visuals import generate_audio_visuals
from mediaingest.pipeline.stages.probe import probe
from mediaingest.pipeline.stages.transcript import build_decode_command, generate_transcript, load_model
from mediaingest.pipeline.types import MediaMetadata

TARGET_CPU_PER_MEDIA_SECOND = 0.15
_SENTENCES = (
    "Welcome back to the weekly production meeting.",
    "The first cut of the interview is ready for review.",
    "We moved the opening shot to the end of the second scene.",
    "Please check the sound levels before the export tonight.",
    "The client asked for shorter captions on the mobile version.",
    "Our next deadline is on Friday at noon.",
    "The drone footage from the harbour looks great.",
    "Let us keep the music low under the voice over.",
)


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def speech_sources(seconds: float) -> tuple[Source, Source]:
    """Sentences spoken by espeak-ng with short pauses, to `seconds`: a WAV, and the same under a 720p picture."""
    key = hashlib.sha256(f"{_SENTENCES}{seconds}v1".encode()).hexdigest()[:10]
    wav, mp4 = SOURCES / f"speech_{seconds:g}s_{key}.wav", SOURCES / f"speech_720p_{seconds:g}s_{key}.mp4"
    if not (wav.exists() and mp4.exists()):
        SOURCES.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="bench-speech-") as scratch:
            parts: list[bytes] = []
            total, index = 0.0, 0
            while total < seconds:
                part = Path(scratch) / f"{index}.wav"
                subprocess.run(
                    ["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(part), _SENTENCES[index % 8]], check=True
                )
                pcm = Path(scratch) / f"{index}.pcm"
                subprocess.run(
                    ["ffmpeg", "-v", "error", "-y", "-i", str(part), "-af", "apad=pad_dur=0.6", "-ac", "1",
                     "-ar", "16000", "-f", "s16le", str(pcm)], check=True,
                )  # fmt: skip
                parts.append(pcm.read_bytes())
                total += len(parts[-1]) / 32000
                index += 1
            with wave.open(str(wav), "wb") as writer:
                writer.setnchannels(1)
                writer.setsampwidth(2)
                writer.setframerate(16000)
                writer.writeframes(b"".join(parts)[: int(seconds * 16000) * 2])
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=30:duration={seconds}",
             "-i", str(wav), "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
             "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-movflags", "+faststart", "-shortest", str(mp4)],
            check=True,
        )  # fmt: skip
    return (
        Source(wav.stem, "audio", wav, "audio/wav", seconds, f"{seconds:g} s of espeak-ng speech (WAV)"),
        Source(mp4.stem, "video", mp4, "video/mp4", seconds, f"{seconds:g} s 720p30 H.264 + AAC speech"),
    )


def _timed(work: Callable[[], Any]) -> tuple[float, float, Any]:
    cpu, wall = _cpu(), time.monotonic()
    result = work()
    return _cpu() - cpu, time.monotonic() - wall, result


def _one_rep(
    path: Path, metadata: MediaMetadata, options: PipelineOptions, out: Path
) -> tuple[dict[str, tuple[float, float]], str]:
    """(CPU-s, wall s) of the transcript stage, the audio visuals stage and the decode alone."""
    cpu, wall, result = _timed(lambda: generate_transcript(path, metadata, out / "t", options=options))
    measured = {"transcript": (cpu, wall)}
    cpu, wall, _ = _timed(lambda: generate_audio_visuals(path, metadata, out / "a", options=options))
    measured["audio_visuals"] = (cpu, wall)
    argv = build_decode_command(path, metadata).argv("ffmpeg")
    cpu, wall, _ = _timed(lambda: subprocess.run([*argv[:-1], "-f", "null", "-"], check=True, capture_output=True))
    measured["decode"] = (cpu, wall)
    return measured, result.message


def stage_cost(source: Source, reps: int, log: Callable[[str], None]) -> dict[str, Any]:
    options = PipelineOptions()
    metadata = probe(source.path, MediaType.AUDIO, options=options)
    seconds = metadata.duration_seconds or source.media_seconds
    load_cpu, load_wall, _ = _timed(lambda: load_model(options.transcribe_model, threads=0))
    rows: dict[str, list[tuple[float, float]]] = {"transcript": [], "audio_visuals": [], "decode": []}
    message = ""
    for rep in range(reps):
        with tempfile.TemporaryDirectory(prefix="bench-transcript-") as scratch:
            measured, message = _one_rep(source.path, metadata, options, Path(scratch))
        for name, value in measured.items():
            rows[name].append(value)
        log(
            f"  {source.name} rep {rep + 1}/{reps}: transcript {rows['transcript'][-1][0]:.2f} CPU-s "
            f"{rows['transcript'][-1][1]:.2f} s wall; audio visuals {rows['audio_visuals'][-1][0]:.2f} CPU-s; "
            f"decode {rows['decode'][-1][0]:.2f} CPU-s"
        )
    median = {name: statistics.median(cpu for cpu, _ in values) for name, values in rows.items()}
    wall = statistics.median(w for _, w in rows["transcript"])
    per_second = median["transcript"] / seconds
    return {
        "source": source.name,
        "media_seconds": round(seconds, 2),
        "result": message,
        "model_load_cpu_s": round(load_cpu, 2),
        "model_load_wall_s": round(load_wall, 2),
        "cpu_s": round(median["transcript"], 2),
        "wall_s": round(wall, 2),
        "cpu_per_media_second": round(per_second, 4),
        "realtime": round(seconds / wall, 1),
        "audio_visuals_cpu_s": round(median["audio_visuals"], 2),
        "decode_cpu_s": round(median["decode"], 2),
        "transcript_over_audio_visuals": round(median["transcript"] / median["audio_visuals"], 2),
        "transcript_over_decode": round(median["transcript"] / max(median["decode"], 1e-3), 1),
        "met": per_second <= TARGET_CPU_PER_MEDIA_SECOND,
    }


def service_effect(source: Source, reps: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Confirm → first playable and → READY with TRANSCRIBE on and off, alternated in one run."""
    timelines: dict[str, list[Any]] = {"on": [], "off": []}
    for rep in range(reps):
        for variant in ("on", "off") if rep % 2 == 0 else ("off", "on"):
            with ServiceProcess(f"transcript-{variant}", embedded_worker=True, env={"TRANSCRIBE": variant}) as service:
                [token] = service.create_tokens(1)
                service.start()
                with httpx.Client(timeout=httpx.Timeout(600, connect=10)) as http:
                    timeline = run_mediaingest(
                        source,
                        ApiClient(service.url, token, http=http),
                        service,
                        timeout=120 + 20 * source.media_seconds,
                    )
            timelines[variant].append(timeline)
            log(
                f"  {source.name} rep {rep + 1}/{reps} TRANSCRIBE={variant:<3}: first playable "
                f"{timeline.first_playable:.2f} s, READY {timeline.wall:.2f} s, {timeline.cpu:.1f} CPU-s"
            )

    def median(variant: str, field: str) -> float:
        return round(statistics.median(getattr(t, field) for t in timelines[variant]), 2)

    row: dict[str, Any] = {"source": source.name, "media_seconds": source.media_seconds, "reps": reps}
    for variant in ("on", "off"):
        row[variant] = {field: median(variant, field) for field in ("first_playable", "wall", "cpu")}
    row["first_playable_on_over_off"] = round(row["on"]["first_playable"] / row["off"]["first_playable"], 3)
    row["ready_on_over_off"] = round(row["on"]["wall"] / row["off"]["wall"], 3)
    return row


def run(quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (make system-deps installs it)")
    wav, mp4 = speech_sources(30 if quick else 120)
    log("transcript stage (CPU per media second; audio visuals and the decode alone on the same audio):")
    cost = stage_cost(wav, 1 if quick else 3, log)
    log("transcript and the service (TRANSCRIBE on / off, alternated):")
    effect = service_effect(mp4, 2, log)
    return {"stage": cost, "service": effect, "target_cpu_per_media_second": TARGET_CPU_PER_MEDIA_SECOND}
