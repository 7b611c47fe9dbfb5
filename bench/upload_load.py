"""Upload load: N concurrent clients, each asking for an upload URL, uploading and confirming.

The service runs as `make run` starts it (`mediaingest serve`, SQLite, its own DATA_DIR), WITHOUT the
embedded worker: what is measured is the upload path, and 50 assets being processed on 2 cores
would only add noise to it (confirmed assets wait, PENDING, for a worker that never comes). Each
case gets a fresh service process, so its VmHWM is the peak of that case alone; one warm-up upload
of 1 MB comes first, as a running service would have had.

Local backend: the bytes go through the service (its storage endpoints stream them to disk). S3: they
go to moto, in its own process; the service only signs URLs, completes multipart uploads and sniffs
the head of each object. Files above MULTIPART_THRESHOLD (100 MB) take the multipart path.

Figures per case: uploads/s and HTTP requests/s over the whole run; upload-url and confirm latency
(p50/p99) and their rate (count / first start to last end of that endpoint); MB/s of file bytes over
the run; errors; the service's RSS before the run and its peak (VmHWM) after it.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.client import ApiClient, BenchHttpError, Upload
from bench.service import MotoProcess, ServiceProcess
from bench.sources import ensure_upload_file

MB = 1000 * 1000
MIME = "audio/wav"


@dataclass(frozen=True)
class LoadCase:
    backend: str  # "local" or "s3"
    size: int  # bytes per file
    clients: int
    note: str = ""


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))  # nearest rank
    return round(ordered[index], 4)


def _rate(spans: list[tuple[float, float]]) -> float | None:
    if not spans:
        return None
    elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
    return round(len(spans) / elapsed, 1) if elapsed > 0 else None


def _client(
    url: str, token: str, path: Path, barrier: threading.Barrier, uploads: list[Upload], errors: list[str]
) -> None:
    with httpx.Client(timeout=httpx.Timeout(600, connect=30)) as http:
        api = ApiClient(url, token, http=http)
        barrier.wait()
        try:
            upload, _ = api.upload(path, MIME)
            uploads.append(upload)
        except BenchHttpError as exc:
            errors.append(str(exc))
        except (httpx.HTTPError, OSError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")


def run_case(case: LoadCase, moto: MotoProcess | None, log: Callable[[str], None]) -> dict[str, Any]:
    path = ensure_upload_file(case.size)
    warm_up = ensure_upload_file(1 * MB)
    env = moto.service_env(f"b{case.size // MB}") if moto is not None else {}
    with ServiceProcess(f"upload-{case.backend}-{case.size // MB}mb", embedded_worker=False, env=env) as service:
        tokens = service.create_tokens(case.clients + 1)
        service.start()
        with httpx.Client(timeout=60) as http:
            ApiClient(service.url, tokens[-1], http=http).upload(warm_up, MIME)
        rss_before = service.rss_kib()
        uploads: list[Upload] = []
        errors: list[str] = []
        barrier = threading.Barrier(case.clients + 1)
        threads = [
            threading.Thread(target=_client, args=(service.url, tokens[i], path, barrier, uploads, errors), daemon=True)
            for i in range(case.clients)
        ]
        for thread in threads:
            thread.start()
        barrier.wait()  # every client has its connection pool ready; go
        started = time.monotonic()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - started
        peak = service.peak_rss_kib()
    requests = sum(u.requests for u in uploads)
    upload_url = [u.upload_url_seconds for u in uploads]
    confirm = [u.confirm_seconds for u in uploads]
    put = [u.put_seconds for u in uploads]
    result = {
        "backend": case.backend,
        "file_mb": round(case.size / MB, 1),
        "clients": case.clients,
        "multipart": any(u.multipart for u in uploads),
        "note": case.note,
        "ok": len(uploads),
        "errors": len(errors),
        "error_samples": errors[:5],
        "wall": round(wall, 3),
        "uploads_per_s": round(len(uploads) / wall, 2),
        "requests_per_s": round(requests / wall, 1),
        "mb_per_s": round(sum(u.size for u in uploads) / MB / wall, 1),
        "upload_url_p50": percentile(upload_url, 0.5),
        "upload_url_p99": percentile(upload_url, 0.99),
        "upload_url_rate": _rate([(u.started_at, u.started_at + u.upload_url_seconds) for u in uploads]),
        "confirm_p50": percentile(confirm, 0.5),
        "confirm_p99": percentile(confirm, 0.99),
        "confirm_rate": _rate([(u.confirmed_at, u.confirmed_at + u.confirm_seconds) for u in uploads]),
        "put_p50": percentile(put, 0.5),
        "put_mean_mb_per_s_per_client": round(statistics.mean(case.size / MB / p for p in put), 1) if put else None,
        "service_rss_before_mib": round(rss_before / 1024, 1) if rss_before else None,
        "service_peak_rss_mib": round(peak / 1024, 1) if peak else None,
    }
    log(
        f"  {case.backend:<5} {case.clients:>3} × {case.size / MB:>5.0f} MB: {result['ok']} ok, "
        f"{result['errors']} errors, {result['mb_per_s']} MB/s, confirm p99 {result['confirm_p99']} s, "
        f"peak RSS {result['service_peak_rss_mib']} MiB"
    )
    for sample in errors[:3]:
        log(f"    error: {sample}")
    return result


def run(cases: list[LoadCase], log: Callable[[str], None]) -> list[dict[str, Any]]:
    results = [run_case(case, None, log) for case in cases if case.backend == "local"]
    s3_cases = [case for case in cases if case.backend == "s3"]
    if s3_cases:
        with MotoProcess() as moto:
            for case in s3_cases:
                results.append(run_case(case, moto, log))
                moto.reset()  # moto keeps every object: free its memory and temp files between cases
            for result in results[-len(s3_cases) :]:
                result["moto_peak_rss_mib"] = round((moto.peak_rss_kib() or 0) / 1024, 1)
    return results
