"""Ingestion speed: mediaingest (confirm → READY) against ffmpeg's floor and the naive ladder.

For each source, three ways of making the same derived files, run back to back in the same run:

- mediaingest: the service as `make run` starts it (SQLite, local storage, embedded worker with its
  default concurrency and polling), with TRANSCRIBE=off: the floor makes no transcript, and the transcript
  stage has its own part and target (bench/transcript.py: CPU per media second, first playable on/off).
  The source is uploaded first (not timed); the clock starts when the confirm request is sent and stops
  when the asset reads READY. The first thumbnail (POSTER,
  THUMBNAIL for images, WAVEFORM for audio) and first playable proxy (VIDEO) are the moments their
  rows appear. The database is polled every 50 ms with plain read-only SELECTs on its own sqlite3
  connection (the app's engine would take BEGIN IMMEDIATE, i.e. the write lock, on every poll).
- floor: ONE bare ffmpeg process that decodes once and writes every output: the proxies plan's own
  filter chains and output options (`build_proxy_plan`), its sprite branch laid out by ffmpeg's tile
  filter, a poster branch with `build_poster_command`'s size and encoder options, and the audio
  visuals command's spectrogram and PCM branches (PCM to a file: mediaingest draws waveform and peaks
  from it). No probe, no copies, no database: what ffmpeg alone needs.
- naive: one ffmpeg process per output, as a straightforward implementation runs them in turn: the
  poster (its fast-seek command as the stage builds it), each rung from its own decode (every rung
  encoded, remux or not, with the ladder's encoder settings), sprites, waveform (showwavespic) and
  spectrogram. It makes no peaks JSON, which only flatters it.

Everything is derived from the same PipelineOptions the service uses, so sizes and encoder settings
match. Stills: mediaingest makes thumbnails with Pillow; floor and naive with ffmpeg (mjpeg, libwebp; its
JPEG decoder turns the picture by the EXIF orientation, as mediaingest does); a HEIF still, which ffmpeg 5.1
cannot read, is decoded by libheif (pillow-heif, mediaingest's decoder) in this process and piped raw into
the same ffmpeg.
"""

from __future__ import annotations

import dataclasses
import os
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from bench.client import ApiClient
from bench.service import ServiceProcess
from bench.sources import CACHE, Source
from mediaingest.config import Settings
from mediaingest.models.enums import MediaType
from mediaingest.pipeline.ffmpeg import FfmpegCommand, FfmpegInput, FfmpegOutput, FilterGraph, filter_spec
from mediaingest.pipeline.filters import audio_stream_specifier, base_video_filters, video_stream_specifier
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.stages.audio_visuals import build_audio_visuals_command, spectrogram_rate_for
from mediaingest.pipeline.stages.probe import probe
from mediaingest.pipeline.stages.proxies import build_proxy_plan
from mediaingest.pipeline.stages.thumbnails import POSTER_NAME, build_poster_command
from mediaingest.pipeline.types import MediaMetadata

APPROACHES = ("mediaingest", "floor", "naive")
_POLL_SECONDS = 0.05
_FIRST_THUMBNAIL = {"video": ("POSTER",), "image": ("THUMBNAIL",), "audio": ("WAVEFORM",)}
_MEDIA_TYPES = {"video": MediaType.VIDEO, "audio": MediaType.AUDIO, "image": MediaType.IMAGE}
_LABEL = re.compile(r"^\[([^\]]+)\]")


@dataclass
class Timeline:
    """One run of one approach, in seconds from its start."""

    wall: float
    first_thumbnail: float | None
    first_playable: float | None
    detail: dict[str, Any] = field(default_factory=dict)
    cpu: float | None = None  # CPU seconds of the approach's processes (ffmpeg; the service and its children)
    other_load: float | None = None  # cores busy with everything else meanwhile (others' tests, the bench)


# --- CPU accounting: wall time on a shared machine is noisy, CPU seconds much less so ------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    """CPU seconds the whole machine has spent not idle since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def _stat_fields(pid: int | str) -> list[str]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()


def _process_cpu(pid: int) -> float:
    """utime + stime + cutime + cstime of the process and of every live descendant: each counts its own
    time and that of the children it has reaped. The service's stage processes are children of its
    multiprocessing forkserver, which reaps them, so the tree, not the service alone, holds their time."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_stat_fields(entry.name)[1])
            except (OSError, ValueError, IndexError):
                continue  # exited while we looked
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0
    for member in tree:
        try:
            total += sum(int(v) for v in _stat_fields(member)[11:15])
        except (OSError, ValueError):
            continue
    return total / _CLOCK_TICKS


def _rusage_cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU seconds of one approach (the service's process tree, or the bench's ffmpeg children, plus this
    process with `with_self`: where the floor decodes what ffmpeg cannot) and the load everything else put
    on the machine over the same interval."""

    def __init__(self, pid: int | None = None, *, with_self: bool = False) -> None:
        self.pid = pid
        self.with_self = with_self
        self._start = (0.0, 0.0, 0.0)

    def _ours(self) -> float:
        if self.pid is not None:
            return _process_cpu(self.pid)
        own = _rusage_cpu(resource.RUSAGE_SELF) if self.with_self else 0.0
        return own + _rusage_cpu(resource.RUSAGE_CHILDREN)

    def start(self) -> None:
        self._start = (time.monotonic(), _machine_busy(), self._ours())

    def stop(self, timeline: Timeline) -> Timeline:
        started, busy, ours = self._start
        elapsed = max(time.monotonic() - started, 1e-6)
        cpu = self._ours() - ours
        timeline.cpu = round(cpu, 2)
        timeline.other_load = round(max(0.0, _machine_busy() - busy - cpu) / elapsed, 2)
        return timeline


# --- ffmpeg commands: floor and naive ------------------------------------------------------------


def ffmpeg_argv(command: FfmpegCommand) -> list[str]:
    argv = command.argv("ffmpeg")
    return [argv[0], "-hide_banner", "-nostdin", "-loglevel", "error", *argv[1:]]


def _rechain(chain: str, new_input: str) -> str:
    """A chain of the pipeline's graph fed from another pad (e.g. straight from the decoder)."""
    return _LABEL.sub(lambda _: f"[{new_input}]", chain, count=1)


def _sprite_layout(options: PipelineOptions, duration: float) -> str:
    """COLSxROWS for ffmpeg's tile filter: one full-size sheet, or the rows a short video fills."""
    tiles = max(1, int(duration // options.sprite_interval_seconds) + 1)
    columns = min(options.sprite_columns, tiles)
    rows = min(options.sprite_rows, -(-tiles // columns))
    return f"{columns}x{rows}"


def _sprite_output(out: Path) -> FfmpegOutput:
    # -q:v 5 is mjpeg's nearest to Pillow's quality 75 that the stage uses for sheets.
    return FfmpegOutput(out / "sprite_%03d.jpg", ["-map", "[sheets]", "-c:v", "mjpeg", "-q:v", "5", "-f", "image2"])


def _audio_chains(source: Path, metadata: MediaMetadata, out: Path, options: PipelineOptions):  # type: ignore[no-untyped-def]
    """The audio visuals command's chains and outputs, its PCM (piped to Python there) into a file."""
    rate = spectrogram_rate_for(metadata.duration_seconds, metadata.sample_rate)
    command = build_audio_visuals_command(source, metadata, out, options, spectrogram_rate=rate)
    assert command.filter_graph is not None
    outputs = [
        FfmpegOutput(out / "peaks.pcm", o.options) if o.path == "pipe:1" else FfmpegOutput(o.path, o.options)
        for o in command.outputs
    ]
    return list(command.filter_graph.chains), outputs


def floor_command(source: Source, metadata: MediaMetadata, out: Path, options: PipelineOptions) -> FfmpegCommand:
    """The floor's one ffmpeg process; for a still ffmpeg cannot decode, it reads floor_stdin(…) on its stdin."""
    if source.kind == "image":
        sizes = options.image_thumbnail_sizes
        return _image_command(source.path, metadata, out, options, sizes=sizes, formats=("jpg", "webp"))
    if source.kind == "audio":
        chains, outputs = _audio_chains(source.path, metadata, out, options)
        return FfmpegCommand([FfmpegInput(source.path)], outputs, FilterGraph(chains))

    plan = build_proxy_plan(source.path, metadata, out, options)
    assert plan.command is not None and plan.command.filter_graph is not None
    # Chain 0 is the decoder → base filters → split; each other chain starts at its branch's pad.
    branch_chains = plan.command.filter_graph.chains[1:]
    branches = [_LABEL.match(chain).group(1) for chain in branch_chains]  # type: ignore[union-attr]
    base = base_video_filters(metadata)
    chains = [
        f"[{video_stream_specifier(metadata)}]{','.join([*base, filter_spec('split', len(branches) + 1)])}"
        + "".join(f"[{b}]" for b in [*branches, "poster_in"]),
        *branch_chains,
    ]
    outputs = [o for o in plan.command.outputs if o.path != "pipe:1"]
    if plan.remux_command is not None:  # the same input: the floor copies in its one process
        outputs += plan.remux_command.outputs
    if plan.sprites is not None:
        layout = _sprite_layout(options, metadata.duration_seconds or 0)
        chains.append(f"[tiles]{filter_spec('tile', layout)}[sheets]")
        outputs.append(_sprite_output(out))
    position = (metadata.duration_seconds or 0) * options.poster_position
    poster, width, height = build_poster_command(source.path, metadata, out, options, position=position)
    # Decoding runs through the whole file anyway: the poster branch keeps the frame at the position.
    trim = [filter_spec("trim", start=f"{position:.3f}"), filter_spec("scale", width, height), filter_spec("setsar", 1)]
    chains.append(f"[poster_in]{','.join(trim)}[poster]")
    outputs += poster.outputs
    if metadata.has_audio:
        audio_chains, audio_outputs = _audio_chains(source.path, metadata, out, options)
        chains += audio_chains
        outputs += audio_outputs
    return FfmpegCommand([FfmpegInput(source.path)], outputs, FilterGraph(chains))


def _ffmpeg_decodes(metadata: MediaMetadata) -> bool:
    return metadata.image_format != "HEIF"  # ffmpeg 5.1 has no HEIF demuxer


def floor_stdin(source: Source, metadata: MediaMetadata) -> bytes | None:
    """The RGB pixels the floor's ffmpeg reads for a still it cannot decode (HEIF), else None.

    libheif applies the HEIF's own rotation while decoding, as it does for mediaingest."""
    if source.kind != "image" or _ffmpeg_decodes(metadata):
        return None
    with Image.open(source.path) as image:
        return image.convert("RGB").tobytes()


def _image_command(
    path: Path,
    metadata: MediaMetadata,
    out: Path,
    options: PipelineOptions,
    *,
    sizes: tuple[int, ...],
    formats: tuple[str, ...],
) -> FfmpegCommand:
    """Decode once, one scaled branch per size, one encoder per format (Pillow's q85/q80 equivalents)."""
    graph = FilterGraph()
    sizes = tuple(sorted(set(sizes), reverse=True))
    labels = [f"size{size}" for size in sizes]
    source = FfmpegInput(path)
    if not _ffmpeg_decodes(metadata):
        source = FfmpegInput(
            "pipe:0", ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{metadata.width}x{metadata.height}"]
        )
    graph.chain(["0:0"], [filter_spec("split", len(sizes)) if len(sizes) > 1 else "null"], labels)
    outputs = []
    for size, label in zip(sizes, labels, strict=True):
        pads = [f"{label}_{fmt}" for fmt in formats]
        filters = [filter_spec("scale", size, size, force_original_aspect_ratio="decrease", flags="lanczos")]
        if len(formats) > 1:
            filters.append(filter_spec("split", len(formats)))
        graph.chain([label], filters, pads)
        for fmt, pad in zip(formats, pads, strict=True):
            codec = ["-c:v", "mjpeg", "-q:v", "3"] if fmt == "jpg" else ["-c:v", "libwebp", "-quality", "80"]
            path_out = out / f"thumb_{size}.{fmt}"
            outputs.append(FfmpegOutput(path_out, ["-map", f"[{pad}]", "-frames:v", "1", *codec, "-update", "1"]))
    return FfmpegCommand([source], outputs, graph)


def naive_commands(
    source: Source, metadata: MediaMetadata, out: Path, options: PipelineOptions
) -> list[tuple[str, str, FfmpegCommand]]:
    """(name, what it makes, command) in the order a straightforward implementation runs them."""
    if source.kind == "image":
        return [
            (
                f"thumb_{size}.{fmt}",
                "thumbnail",
                _image_command(source.path, metadata, out, options, sizes=(size,), formats=(fmt,)),
            )
            for size in sorted(set(options.image_thumbnail_sizes), reverse=True)
            for fmt in ("jpg", "webp")
        ]
    commands: list[tuple[str, str, FfmpegCommand]] = []
    if source.kind == "video":
        position = (metadata.duration_seconds or 0) * options.poster_position
        poster, _, _ = build_poster_command(source.path, metadata, out, options, position=position)
        commands.append(("poster", "thumbnail", poster))
        # Every rung from its own decode, always encoded: a straightforward ladder does not remux.
        encode_all = dataclasses.replace(metadata, format_name="naive")
        full = build_proxy_plan(source.path, encode_all, out, options)
        for rendition in full.renditions:
            single = dataclasses.replace(options, proxy_heights=(rendition.rung,), sprite_interval_seconds=0)
            plan = build_proxy_plan(source.path, encode_all, out, single)
            assert plan.command is not None
            commands.append((f"proxy_{rendition.rung}p", "playable", plan.command))
        assert full.command is not None and full.command.filter_graph is not None
        sprite_chain = next(c for c in full.command.filter_graph.chains if c.startswith("[sprite_src_in]"))
        layout = _sprite_layout(options, metadata.duration_seconds or 0)
        graph = FilterGraph([_rechain(sprite_chain, video_stream_specifier(metadata))])
        graph.chains.append(f"[tiles]{filter_spec('tile', layout)}[sheets]")
        commands.append(("sprites", "sprites", FfmpegCommand([FfmpegInput(source.path)], [_sprite_output(out)], graph)))
    if metadata.has_audio:
        audio = audio_stream_specifier(metadata)
        picture = ["-frames:v", "1", "-c:v", "png", "-f", "image2", "-update", "1"]
        wave = [
            filter_spec("aformat", channel_layouts="mono"),
            filter_spec(
                "showwavespic", s=f"{options.waveform_width}x{options.waveform_height}", colors=options.waveform_color
            ),
        ]
        commands.append(
            (
                "waveform",
                "thumbnail" if source.kind == "audio" else "audio",
                FfmpegCommand(
                    [FfmpegInput(source.path)],
                    [FfmpegOutput(out / "waveform.png", ["-map", "[waveform]", *picture])],
                    FilterGraph([f"[{audio}]{','.join(wave)}[waveform]"]),
                ),
            )
        )
        chains, outputs = _audio_chains(source.path, metadata, out, options)
        spectrum = next(c for c in chains if c.startswith("[spectrum_in]"))
        spectrogram = next(o for o in outputs if "[spectrogram]" in o.options)
        commands.append(
            (
                "spectrogram",
                "audio",
                FfmpegCommand([FfmpegInput(source.path)], [spectrogram], FilterGraph([_rechain(spectrum, audio)])),
            )
        )
    return commands


def run_checked(argv: list[str], stdin: bytes | None = None) -> None:
    pipe = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False, **pipe)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({done.returncode}): {done.stderr.decode(errors='replace')[-800:]}")


def check_outputs(command: FfmpegCommand) -> None:
    for output in command.outputs:
        path = output.path
        if isinstance(path, Path) and "%" not in path.name and (not path.is_file() or path.stat().st_size == 0):
            raise RuntimeError(f"ffmpeg wrote no {output.path.name}")


def _watch_file(path: Path, started: float, stop: threading.Event, seen: list[float]) -> None:
    while not stop.is_set():
        if path.is_file() and path.stat().st_size > 0:
            seen.append(time.monotonic() - started)
            return
        stop.wait(0.02)


def run_floor(source: Source, metadata: MediaMetadata, out: Path, options: PipelineOptions) -> Timeline:
    command = floor_command(source, metadata, out, options)
    meter = CpuMeter(with_self=source.kind == "image" and not _ffmpeg_decodes(metadata))
    first = {"video": out / POSTER_NAME, "audio": out / "spectrogram.png"}.get(source.kind)
    if source.kind == "image":
        first = out / f"thumb_{max(options.image_thumbnail_sizes)}.jpg"
    stop, seen = threading.Event(), []  # type: ignore[var-annotated]
    meter.start()
    started = time.monotonic()
    watcher = threading.Thread(target=_watch_file, args=(first, started, stop, seen), daemon=True)
    watcher.start()
    try:
        run_checked(ffmpeg_argv(command), floor_stdin(source, metadata))
    finally:
        wall = time.monotonic() - started
        stop.set()
        watcher.join()
    check_outputs(command)
    first_thumbnail = seen[0] if seen else wall
    return meter.stop(Timeline(wall, min(first_thumbnail, wall), wall if source.kind == "video" else None))


def run_naive(source: Source, metadata: MediaMetadata, out: Path, options: PipelineOptions) -> Timeline:
    meter = CpuMeter()
    meter.start()
    started = time.monotonic()
    first: dict[str, float] = {}
    steps = {}
    for name, role, command in naive_commands(source, metadata, out, options):
        step_started = time.monotonic()
        run_checked(ffmpeg_argv(command), floor_stdin(source, metadata))
        check_outputs(command)
        steps[name] = round(time.monotonic() - step_started, 3)
        first.setdefault(role, time.monotonic() - started)
    timeline = Timeline(
        time.monotonic() - started, first.get("thumbnail"), first.get("playable"), detail={"processes": steps}
    )
    return meter.stop(timeline)


# --- mediaingest ---------------------------------------------------------------------------------


def _db_time(value: str | None, origin: float) -> float | None:
    if value is None:
        return None
    return round(datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp() - origin, 3)


def _jobs(db: sqlite3.Connection, asset_id: str, origin: float) -> list[dict[str, Any]]:
    rows = db.execute(
        # A job's finish and attempts are its task's (models.job): read through it.
        "SELECT j.type, j.created_at, j.started_at, t.finished_at, t.attempts FROM ingestion_jobs j "
        "JOIN tasks t ON t.id = j.task_id WHERE j.asset_id = ? ORDER BY j.started_at",
        (asset_id,),
    ).fetchall()
    return [
        {
            "type": job_type,
            "enqueued": _db_time(created, origin),
            "started": _db_time(started, origin),
            "finished": _db_time(finished, origin),
            "attempts": attempts,
        }
        for job_type, created, started, finished, attempts in rows
    ]


def _idle_gaps(jobs: list[dict[str, Any]], end: float) -> float:
    """Seconds between confirm and READY during which no job of the asset was running."""
    busy: list[tuple[float, float]] = sorted(
        (job["started"], job["finished"] or end) for job in jobs if job["started"] is not None
    )
    idle, cursor = 0.0, 0.0
    for start, finish in busy:
        idle += max(0.0, start - cursor)
        cursor = max(cursor, finish)
    return round(idle + max(0.0, end - cursor), 3)


def run_mediaingest(source: Source, api: ApiClient, service: ServiceProcess, *, timeout: float) -> Timeline:
    ticket = api.request_upload(source.path, source.mime_type)
    body, _ = api.put(ticket, source.path)
    asset_id = ticket["assetId"]
    thumbnail_types = _FIRST_THUMBNAIL[source.kind]
    db = sqlite3.connect(f"file:{service.database_path}?mode=ro", uri=True, isolation_level=None, timeout=30)
    meter = CpuMeter(service.pid)
    try:
        meter.start()
        started, origin = time.monotonic(), time.time()
        api.confirm(body)
        confirmed = time.monotonic() - started
        first_thumbnail = first_playable = None
        rungs_complete: dict[str, float] = {}
        hls_root = service.data_dir / "storage" / "proxies"
        status = "PENDING"
        while status not in ("READY", "FAILED"):
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{source.name}: not READY after {timeout:.0f} s")
            time.sleep(_POLL_SECONDS)
            now = time.monotonic() - started
            status, playable = db.execute(
                "SELECT processing_status, playable_seconds FROM media_assets WHERE id = ?", (asset_id,)
            ).fetchone()
            types = {row[0] for row in db.execute("SELECT type FROM asset_proxies WHERE asset_id = ?", (asset_id,))}
            if first_thumbnail is None and types & set(thumbnail_types):
                first_thumbnail = now
            # Playable: the first HLS segment of any rung is published (or, before HLS, an MP4 rung).
            if first_playable is None and ((playable or 0) > 0 or "VIDEO" in types):
                first_playable = now
            for playlist in hls_root.glob(f"assets/*/{asset_id}/proxies/hls/*/index.m3u8"):
                rung = playlist.parent.name
                if rung not in rungs_complete and "#EXT-X-ENDLIST" in playlist.read_text(errors="replace"):
                    rungs_complete[rung] = round(now, 3)  # its playlist is closed: every segment is out
        wall = time.monotonic() - started
        timeline = meter.stop(Timeline(wall, first_thumbnail, first_playable if source.kind == "video" else None))
        if status == "FAILED":
            (error,) = db.execute("SELECT error FROM media_assets WHERE id = ?", (asset_id,)).fetchone()
            raise RuntimeError(f"{source.name}: ingestion FAILED: {error}")
        jobs = _jobs(db, asset_id, origin)
    finally:
        db.close()
    api.delete(asset_id)  # the next case starts from an empty store
    timeline.detail = {
        "confirm_request": round(confirmed, 3),
        "jobs": jobs,
        "idle": _idle_gaps(jobs, wall),
        "rungs_complete": dict(sorted(rungs_complete.items(), key=lambda item: int(item[0].rstrip("p")))),
    }
    return timeline


# --- the run -------------------------------------------------------------------------------------


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def summarize(source: Source, runs: dict[str, list[Timeline]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"source": source.name, "kind": source.kind, "description": source.description}
    summary["media_seconds"] = source.media_seconds
    summary["size_bytes"] = source.path.stat().st_size
    for approach, timelines in runs.items():
        wall = _median([t.wall for t in timelines])
        summary[approach] = {
            "wall": wall,
            "realtime": _ratio(source.media_seconds, wall),
            "cpu": _median([t.cpu for t in timelines]),
            "other_load": _median([t.other_load for t in timelines]),
            "first_thumbnail": _median([t.first_thumbnail for t in timelines]),
            "first_playable": _median([t.first_playable for t in timelines]),
            "runs": [dataclasses.asdict(t) for t in timelines],
        }
    mi, floor, naive = (summary[a]["wall"] for a in APPROACHES)
    summary["mediaingest_over_floor"] = _ratio(mi, floor)
    summary["naive_over_mediaingest"] = _ratio(naive, mi)
    mi_cpu, floor_cpu, naive_cpu = (summary[a]["cpu"] for a in APPROACHES)
    summary["cpu_mediaingest_over_floor"] = _ratio(mi_cpu, floor_cpu)
    summary["cpu_naive_over_mediaingest"] = _ratio(naive_cpu, mi_cpu)
    # Per repetition too: side-by-side ratios are what a noisy shared machine can still tell apart.
    pairs = zip(*(runs[a] for a in APPROACHES), strict=True)
    summary["ratios_per_rep"] = [
        {"mediaingest_over_floor": _ratio(m.wall, f.wall), "naive_over_mediaingest": _ratio(n.wall, m.wall)}
        for m, f, n in pairs
    ]
    return summary


def run(sources: list[Source], *, reps: Callable[[Source], int], log: Callable[[str], None]) -> dict[str, Any]:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    options = PipelineOptions.from_settings(settings)
    work = CACHE / "work"
    results: dict[str, Any] = {"sources": [], "service": {}}
    with ServiceProcess("pipeline", embedded_worker=True, env={"TRANSCRIBE": "off"}) as service:
        [token] = service.create_tokens(1)
        service.start()
        results["service"] = {
            "command": "TRANSCRIBE=off mediaingest serve --embedded-worker",
            "worker_concurrency": settings.worker_concurrency,
            "worker_poll_interval_seconds": settings.worker_poll_interval_seconds,
            "proxy_heights": list(options.proxy_heights),
            "x264": f"{options.x264_preset}/crf{options.x264_crf}",
        }
        with httpx.Client(timeout=httpx.Timeout(600, connect=10)) as http:
            api = ApiClient(service.url, token, http=http)
            if sources:
                # Untimed: the first asset after start waits for the worker's forkserver to import the
                # pipeline (seconds on a busy machine), which a running service has long done.
                warm = min(sources, key=lambda s: s.path.stat().st_size)
                run_mediaingest(warm, api, service, timeout=120 + 20 * warm.media_seconds)
                log(f"  (warm-up: one untimed {warm.name} first)")
            for source in sources:
                metadata = probe(source.path, _MEDIA_TYPES[source.kind], options=options)
                runs: dict[str, list[Timeline]] = {a: [] for a in APPROACHES}
                count = reps(source)
                for rep in range(count):
                    # Rotate the order, so a burst of load from others does not always hit the same one.
                    order = APPROACHES[rep % 3 :] + APPROACHES[: rep % 3]
                    for approach in order:
                        out = work / source.name / approach
                        shutil.rmtree(out, ignore_errors=True)
                        out.mkdir(parents=True)
                        if approach == "mediaingest":
                            timeout = 120 + 20 * source.media_seconds
                            timeline = run_mediaingest(source, api, service, timeout=timeout)
                        elif approach == "floor":
                            timeline = run_floor(source, metadata, out, options)
                        else:
                            timeline = run_naive(source, metadata, out, options)
                        runs[approach].append(timeline)
                        log(
                            f"  {source.name} rep {rep + 1}/{count} {approach:<11} {timeline.wall:7.2f} s wall "
                            f"{timeline.cpu:7.2f} s CPU, others' load {timeline.other_load:.2f} cores"
                        )
                        shutil.rmtree(out, ignore_errors=True)
                results["sources"].append(summarize(source, runs))
    shutil.rmtree(work, ignore_errors=True)
    return results
