"""Batch throughput: many small assets at once, through the service and through ffmpeg's floor.

The batch (batch_sources.py: stills, phone clips, voice notes) goes kind by kind, each kind twice:

- mediaingest: `mediaingest serve --embedded-worker` on the embedded default, as `make run` starts it
  (pipeline.py's ServiceProcess). 8 clients, each with its own user and connection, take files from one
  queue and run the real protocol (upload-url → PUT → confirm) as fast as they can; the clock runs from
  the first upload-url request to the last asset READY (or FAILED, reported). Confirm → READY is per
  asset, from just before its confirm request to the first poll (every 0.25 s, read-only SQLite) that
  sees it done, so it includes the wait in the queue behind the rest of the batch. CPU: the service's
  process tree (API, worker, stage processes, every ffmpeg), which also receives and hashes the uploaded
  bytes (the local backend stores them itself).
- floor: pipeline.py's floor (one ffmpeg per asset writing the same outputs; libheif piping HEIF pixels
  into it) over the same files, as many at once as the service's worker runs stages (WORKER_CONCURRENCY).
  CPU: those processes and this one (the HEIF decode). The probe that builds its commands is not timed.

The service runs with TRANSCRIBE=off: the floor is ffmpeg making the media outputs, and a transcript is
Whisper's work, which no ffmpeg command does; bench/transcript.py measures that stage on its own.
One warm-up asset first (the service's stage processes and caches start), not counted.
"""

from __future__ import annotations

import queue
import shutil
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.batch_sources import counts, ensure_batch_sources
from bench.client import ApiClient, BenchHttpError
from bench.pipeline import (
    CpuMeter,
    Timeline,
    check_outputs,
    ffmpeg_argv,
    floor_command,
    floor_stdin,
    run_checked,
)
from bench.service import ServiceProcess
from bench.sources import CACHE, Source, ensure_upload_file
from bench.upload_load import percentile
from mediaingest.config import Settings
from mediaingest.models.enums import MediaType
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.stages.probe import probe
from mediaingest.pipeline.types import MediaMetadata

CLIENTS = 8
KINDS = ("image", "video", "audio")
_MEDIA_TYPES = {"video": MediaType.VIDEO, "audio": MediaType.AUDIO, "image": MediaType.IMAGE}
_POLL_SECONDS = 0.25
_DONE = ("READY", "FAILED")


@dataclass
class _Sent:
    source: Source
    asset_id: str
    confirmed_at: float  # time.monotonic() just before the confirm request
    finished_at: float | None = None
    status: str = "PENDING"


def _client(url: str, token: str, files: queue.Queue[Source], sent: list[_Sent], errors: list[str]) -> None:
    with httpx.Client(timeout=httpx.Timeout(600, connect=30)) as http:
        api = ApiClient(url, token, http=http)
        while True:
            try:
                source = files.get_nowait()
            except queue.Empty:
                return
            try:
                ticket = api.request_upload(source.path, source.mime_type)
                body, _ = api.put(ticket, source.path)
                confirmed_at = time.monotonic()
                api.confirm(body)
                sent.append(_Sent(source, ticket["assetId"], confirmed_at))  # list.append is atomic
            except (BenchHttpError, httpx.HTTPError, OSError) as exc:
                errors.append(f"{source.name}: {type(exc).__name__}: {exc}")


def _wait_done(db: sqlite3.Connection, sent: list[_Sent], uploading: Callable[[], bool], deadline: float) -> None:
    """Polls until every confirmed asset is READY or FAILED and no client is still uploading."""
    while True:
        pending = {s.asset_id: s for s in list(sent) if s.status not in _DONE}
        if not pending and not uploading():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"batch: {len(pending)} assets not done by the deadline")
        if pending:
            # Every asset of the run (at most the batch's 500 and the warm-up): simpler than an IN list.
            rows = db.execute("SELECT id, processing_status FROM media_assets").fetchall()
            now = time.monotonic()
            for asset_id, status in rows:
                if status in _DONE and asset_id in pending:
                    pending[asset_id].status, pending[asset_id].finished_at = status, now
        time.sleep(_POLL_SECONDS)


def _wait_one(api: ApiClient, path: Path, mime_type: str, timeout: float) -> None:
    """The warm-up asset, through the same API: upload it and wait for it to be done."""
    _, body = api.upload(path, mime_type)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = api.http.get(f"{api.base_url}/api/assets/{body['assetId']}/status", headers=api.headers)
        if response.status_code == 200 and response.json()["data"]["processingStatus"] in _DONE:
            return
        time.sleep(0.2)
    raise RuntimeError("batch: the warm-up asset was not done in time")


def run_mediaingest(sources: list[Source], service: ServiceProcess, tokens: list[str]) -> dict[str, Any]:
    files: queue.Queue[Source] = queue.Queue()
    for source in sources:
        files.put(source)
    sent: list[_Sent] = []
    errors: list[str] = []
    db = sqlite3.connect(f"file:{service.database_path}?mode=ro", uri=True, isolation_level=None, timeout=30)
    meter = CpuMeter(service.pid)
    meter.start()
    started = time.monotonic()
    threads = [
        threading.Thread(target=_client, args=(service.url, token, files, sent, errors), daemon=True)
        for token in tokens
    ]
    for thread in threads:
        thread.start()
    media_seconds = sum(s.media_seconds for s in sources)
    try:
        deadline = started + 300 + 10 * len(sources) + 20 * media_seconds
        _wait_done(db, sent, lambda: any(t.is_alive() for t in threads), deadline)
        finished = max((s.finished_at for s in sent if s.finished_at), default=time.monotonic())
        timeline = meter.stop(Timeline(finished - started, None, None))
        failed = [s for s in sent if s.status == "FAILED"]
        reasons = {}
        for s in failed[:5]:
            (reasons[s.source.name],) = db.execute(
                "SELECT error FROM media_assets WHERE id = ?", (s.asset_id,)
            ).fetchone()
    finally:
        db.close()
    latencies = [s.finished_at - s.confirmed_at for s in sent if s.finished_at is not None]
    return {
        **_rates(len(sources), timeline),
        "ready": sum(s.status == "READY" for s in sent),
        "failed": len(failed),
        "failures": reasons,
        "upload_errors": errors[:5],
        "upload_error_count": len(errors),
        "uploads_done_s": round(max((s.confirmed_at for s in sent), default=started) - started, 2),
        "confirm_to_ready_p50": percentile(latencies, 0.5),
        "confirm_to_ready_p95": percentile(latencies, 0.95),
        "latencies": [round(v, 3) for v in latencies],
    }


def run_floor(
    sources: list[Source], metadata: dict[str, MediaMetadata], options: PipelineOptions, parallel: int
) -> dict[str, Any]:
    work = CACHE / "work" / "batch-floor"

    def one(source: Source) -> float:
        out = work / source.name
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        began = time.monotonic()
        command = floor_command(source, metadata[source.name], out, options)
        run_checked(ffmpeg_argv(command), floor_stdin(source, metadata[source.name]))
        check_outputs(command)
        took = time.monotonic() - began
        shutil.rmtree(out, ignore_errors=True)
        return took

    meter = CpuMeter(with_self=True)  # the HEIF decode runs in this process
    meter.start()
    started = time.monotonic()
    with ThreadPoolExecutor(parallel) as pool:
        walls = list(pool.map(one, sources))
    timeline = meter.stop(Timeline(time.monotonic() - started, None, None))
    shutil.rmtree(work, ignore_errors=True)
    return {**_rates(len(sources), timeline), "asset_p50": percentile(walls, 0.5), "asset_p95": percentile(walls, 0.95)}


def _rates(count: int, timeline: Timeline) -> dict[str, Any]:
    return {
        "wall": round(timeline.wall, 2),
        "assets_per_min": round(count / timeline.wall * 60, 2),
        "cpu": timeline.cpu,
        "cpu_per_asset": round((timeline.cpu or 0) / count, 3),
        "other_load": timeline.other_load,
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _summary(kind: str, sources: list[Source], mi: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": kind,
        "count": len(sources),
        "bytes": sum(s.path.stat().st_size for s in sources),
        "media_seconds": round(sum(s.media_seconds for s in sources), 1),
        "mediaingest": mi,
        "floor": floor,
        # ≥ 0.9 is the target; the CPU ratio is the one a busy shared machine moves least.
        "assets_per_min_mi_over_floor": _ratio(mi["assets_per_min"], floor["assets_per_min"]),
        "cpu_per_asset_mi_over_floor": _ratio(mi["cpu_per_asset"], floor["cpu_per_asset"]),
    }


def _overall(kinds: list[dict[str, Any]]) -> dict[str, Any]:
    count = sum(k["count"] for k in kinds)

    def total(approach: str) -> dict[str, Any]:
        wall = sum(k[approach]["wall"] for k in kinds)
        cpu = sum(k[approach]["cpu"] or 0 for k in kinds)
        row = {"wall": round(wall, 2), "assets_per_min": round(count / wall * 60, 2), "cpu": round(cpu, 2)}
        row["cpu_per_asset"] = round(cpu / count, 3)
        row["other_load"] = round(statistics.fmean(k[approach]["other_load"] or 0 for k in kinds), 2)
        return row

    mi, floor = total("mediaingest"), total("floor")
    latencies = [v for k in kinds for v in k["mediaingest"]["latencies"]]
    mi |= {
        "ready": sum(k["mediaingest"]["ready"] for k in kinds),
        "failed": sum(k["mediaingest"]["failed"] for k in kinds),
        "upload_error_count": sum(k["mediaingest"]["upload_error_count"] for k in kinds),
        "confirm_to_ready_p50": percentile(latencies, 0.5),
        "confirm_to_ready_p95": percentile(latencies, 0.95),
    }
    return {
        "kind": "all",
        "count": count,
        "bytes": sum(k["bytes"] for k in kinds),
        "media_seconds": round(sum(k["media_seconds"] for k in kinds), 1),
        "mediaingest": mi,
        "floor": floor,
        "assets_per_min_mi_over_floor": _ratio(mi["assets_per_min"], floor["assets_per_min"]),
        "cpu_per_asset_mi_over_floor": _ratio(mi["cpu_per_asset"], floor["cpu_per_asset"]),
    }


def run(scale: float, log: Callable[[str], None]) -> dict[str, Any]:
    log(f"batch sources (scale {scale:g}):")
    sources = ensure_batch_sources(scale, log=log)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    options = PipelineOptions.from_settings(settings)
    parallel = settings.worker_concurrency
    results: dict[str, Any] = {
        "scale": scale,
        "counts": counts(scale),
        "clients": CLIENTS,
        "service": "mediaingest serve --embedded-worker, TRANSCRIBE=off",
        "worker_concurrency": parallel,
        "kinds": [],
    }
    log(f"batch ({CLIENTS} clients; floor {parallel} at once):")
    with ServiceProcess("batch", embedded_worker=True, env={"TRANSCRIBE": "off"}) as service:
        tokens = service.create_tokens(CLIENTS + 1)
        service.start()
        with httpx.Client(timeout=60) as http:
            _wait_one(ApiClient(service.url, tokens[-1], http=http), ensure_upload_file(1_000_000), "audio/wav", 120)
        for kind in KINDS:
            batch = [s for s in sources if s.kind == kind]
            mi = run_mediaingest(batch, service, tokens[:CLIENTS])
            log(
                f"  {kind:<5} mediaingest {len(batch)} in {mi['wall']:.1f} s: {mi['assets_per_min']} assets/min, "
                f"{mi['cpu_per_asset']} CPU-s/asset, confirm→READY p50/p95 {mi['confirm_to_ready_p50']}/"
                f"{mi['confirm_to_ready_p95']} s, {mi['failed']} failed, others' load {mi['other_load']}"
            )
            for name, reason in mi["failures"].items():
                log(f"    FAILED {name}: {reason}")
            for error in mi["upload_errors"]:
                log(f"    upload error: {error}")
            with ThreadPoolExecutor(parallel) as pool:  # not timed: the floor's commands need the metadata
                probed = pool.map(lambda s: (s.name, probe(s.path, _MEDIA_TYPES[s.kind], options=options)), batch)
                metadata = dict(probed)
            floor = run_floor(batch, metadata, options, parallel)
            log(
                f"  {kind:<5} floor       {len(batch)} in {floor['wall']:.1f} s: {floor['assets_per_min']} assets/min, "
                f"{floor['cpu_per_asset']} CPU-s/asset, others' load {floor['other_load']}"
            )
            results["kinds"].append(_summary(kind, batch, mi, floor))
    results["overall"] = _overall(results["kinds"])
    return results
