"""Resumed uploads: after an interruption, the client sends only the parts storage does not hold.

The real service (`mediaingest serve`, local backend) and the real client (`MediaIngestClient`, as the
CLI uses it). Each repetition uploads the same file three ways and counts the part PUTs on the wire
(an httpx event hook on the client's storage connection):

- whole: one uninterrupted upload, the baseline for time;
- interrupted: the connection "drops" once a given share of the bytes has gone (the progress callback
  raises, as a dead socket would);
- resumed: the same file again with the same resume state: it must send at most the missing parts
  plus one (a part whose bytes had all arrived when the connection dropped may count as sent twice).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.service import ServiceProcess
from bench.sources import ensure_upload_file
from bench.upload_load import MB
from mediaingest.client import MediaIngestClient
from mediaingest.client.resume import ResumeStore

MIME = "audio/wav"  # ensure_upload_file writes real WAV files
PART = 16 * MB  # the service's default part size


class _Dropped(BaseException):
    """The simulated connection loss: not an error the client would retry."""


def _client(service: ServiceProcess, token: str, puts: list[int]) -> MediaIngestClient:
    client = MediaIngestClient(service.url, token, concurrency=4)

    def count(request: httpx.Request) -> None:
        if request.method == "PUT":
            puts.append(1)

    client.storage_http.event_hooks["request"].append(count)
    return client


def run(*, size: int, reps: int, drop_at: float, log: Callable[[str], None]) -> dict[str, Any]:
    path = ensure_upload_file(size)
    parts = -(-size // PART)
    rows: list[dict[str, Any]] = []
    with ServiceProcess("resume", embedded_worker=False) as service:
        tokens = service.create_tokens(1)
        service.start()
        for _ in range(reps):
            with tempfile.TemporaryDirectory() as state_dir:
                resume = ResumeStore(Path(state_dir) / "uploads.json")
                puts: list[int] = []
                with _client(service, tokens[0], puts) as client:
                    started = time.monotonic()
                    client.upload(path, mime_type=MIME)
                    whole = time.monotonic() - started
                whole_puts = len(puts)

                puts.clear()
                sent = 0

                def drop(count: int) -> None:
                    nonlocal sent
                    sent += count
                    if sent >= drop_at * size:
                        raise _Dropped

                with _client(service, tokens[0], puts) as client:
                    try:
                        client.upload(path, mime_type=MIME, resume=resume, on_progress=drop)
                        raise AssertionError("the upload was never interrupted")
                    except _Dropped:
                        pass
                    asset_id = resume.get(ResumeStore.key(service.url, path))
                    assert asset_id is not None
                    state = client.upload_state(asset_id)
                missing = len(state.parts)
                interrupted_puts = len(puts)

                puts.clear()
                with _client(service, tokens[0], puts) as client:
                    started = time.monotonic()
                    result = client.upload(path, mime_type=MIME, resume=resume)
                    resumed = time.monotonic() - started
                assert result.resumed and result.confirmed.upload_status.value == "UPLOADED"
            rows.append(
                {
                    "parts": parts,
                    "whole_puts": whole_puts,
                    "interrupted_puts": interrupted_puts,
                    "stored_at_interruption": parts - missing,
                    "missing": missing,
                    "resumed_puts": len(puts),
                    "whole_s": round(whole, 3),
                    "resumed_s": round(resumed, 3),
                }
            )
            log(
                f"  {size / MB:.0f} MB in {parts} parts: dropped after {parts - missing} stored; resumed run sent "
                f"{len(puts)} parts for {missing} missing (bound {missing + 1}); {resumed:.2f} s vs whole {whole:.2f} s"
            )
    worst = max(row["resumed_puts"] - row["missing"] for row in rows)
    ratio = statistics.median(row["resumed_s"] / row["whole_s"] for row in rows)
    share = statistics.median(row["missing"] / row["parts"] for row in rows)
    summary = {
        "size_mb": round(size / MB),
        "reps": reps,
        "drop_at": drop_at,
        "rows": rows,
        "extra_parts_worst": worst,
        "within_bound": worst <= 1,
        "resumed_over_whole_time_median": round(ratio, 3),
        "missing_share_median": round(share, 3),
    }
    log(
        f"  resumed runs sent at most {worst} part(s) beyond the missing ones (bound 1): "
        f"{'OK' if worst <= 1 else 'OVER'}; time resumed/whole median {ratio:.2f} for {share:.0%} of the parts missing"
    )
    return summary
