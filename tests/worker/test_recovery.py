"""Failures the worker must survive: a worker SIGKILLed mid-encode, and an S3 peer that goes away."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from moto.server import ThreadedMotoServer

from conftest import SettingsFactory, Users
from fixtures.live_server import wait_until
from fixtures.media import make_video
from fixtures.s3 import MotoS3Server
from fixtures.storage import hls_files
from fixtures.uploads import status_of, upload
from mediaingest.api import create_app
from mediaingest.catalog import embedded_worker
from mediaingest.config import Settings
from mediaingest.models import AssetProxy, IngestionJob
from mediaingest.models.enums import IngestionJobStatus, IngestionJobType
from mediaingest.storage import build_storage

pytestmark = pytest.mark.slow


def _worker_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.resolved_database_url,
        "DATA_DIR": str(settings.data_dir),
        "PUBLIC_URL": settings.resolved_public_url,
        "LOCAL_STORAGE_SECRET": settings.storage_secret().decode(),
        "STORAGE_BACKEND": "local",
        "WORK_DIR": str(settings.work_dir),
        "WORKER_LEASE_SECONDS": str(settings.worker_lease_seconds),
        "WORKER_HEARTBEAT_SECONDS": str(settings.worker_heartbeat_seconds),
        "WORKER_POLL_INTERVAL_SECONDS": "0.2",
        "WORKER_METRICS_PORT": "0",
        "WORKER_CONCURRENCY": "1",
        "PROXY_HEIGHTS": "[360, 720]",
        "JOB_BACKOFF_BASE_SECONDS": "0.2",
    }


def _start_worker(settings: Settings, *, metrics_port: int = 0) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "mediaingest.cli", "worker", "--metrics-port", str(metrics_port)]
    return subprocess.Popen(command, env=_worker_env(settings), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_a_sigkilled_workers_job_is_taken_again_and_leaves_one_set_of_outputs(
    make_settings: SettingsFactory, users: Users, media_dir: Path
) -> None:
    settings = make_settings(worker_lease_seconds=3, worker_heartbeat_seconds=1, proxy_heights=[360, 720])
    source = make_video(media_dir / "crash.mp4", duration=30, size="1280x720", fps=25, video_codec="mpeg4")
    with TestClient(create_app(settings, configure_logs=False)) as api:
        user_id, headers = users.create()
        asset_id = upload(api, headers, source, mime_type="video/mp4")["assetId"]
        session_factory = api.app.state.session_factory  # type: ignore[attr-defined]

        def proxies_job() -> IngestionJob | None:
            with session_factory() as session:
                return session.scalar(
                    sa.select(IngestionJob).where(
                        IngestionJob.asset_id == asset_id, IngestionJob.type == IngestionJobType("PROXY_GENERATION")
                    )
                )

        first = _start_worker(settings)
        try:
            wait_until(
                lambda: (
                    (job := proxies_job()) is not None
                    and job.status == IngestionJobStatus.RUNNING
                    and job.progress >= 10
                ),
                timeout=120,
                interval=0.1,
            )
            first.send_signal(signal.SIGKILL)  # no finally, no cleanup, no lease release
            first.wait(timeout=10)
            assert any(settings.work_dir.glob("mediaingest-job-*"))  # the killed worker's temp folder
        finally:
            if first.poll() is None:
                first.kill()

        metrics_port = _free_port()
        second = _start_worker(settings, metrics_port=metrics_port)
        try:
            wait_until(
                lambda: status_of(api, headers, asset_id)["processingStatus"] in ("READY", "FAILED"), timeout=180
            )
            # The worker's own Prometheus endpoint counts what it ran.
            exported = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
            assert 'ingestion_jobs_total{status="completed",type="PROXY_GENERATION"} 1.0' in exported
            assert 'ingestion_jobs_duration_seconds_count{type="PROXY_GENERATION"} 1.0' in exported
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=60)

        status = status_of(api, headers, asset_id)
        assert status["processingStatus"] == "READY", status
        proxies = next(job for job in status["jobs"] if job["type"] == "PROXY_GENERATION")
        assert (proxies["attempts"], proxies["retries"]) == (2, 1)
        with session_factory() as session:
            rows = session.execute(
                sa.select(
                    AssetProxy.type, AssetProxy.resolution, AssetProxy.storage_bucket, AssetProxy.storage_key
                ).where(AssetProxy.asset_id == asset_id)
            ).all()
        videos = sorted(resolution for kind, resolution, _, _ in rows if kind == "VIDEO")
        assert videos == ["360p", "720p"]  # exactly one set
        storage = api.app.state.storage  # type: ignore[attr-defined]
        stored = {
            (bucket, key)
            for bucket in (settings.bucket_processed, settings.bucket_proxies)
            for key in storage.list_keys(bucket, f"assets/{user_id}/{asset_id}/")
        }
        # No stray objects: every one is a row's, or a file of the HLS tree its playlists name; the HLS the
        # killed attempt published was replaced, never left pointing at a segment that is gone.
        hls_tree = {(b, k) for b, k in stored if "/proxies/hls/" in k and not k.endswith("master.m3u8")}
        assert stored - hls_tree == {(bucket, key) for _, _, bucket, key in rows}
        assert hls_tree == hls_files(storage, settings.bucket_proxies, f"assets/{user_id}/{asset_id}/proxies/hls/")
        assert not any(settings.work_dir.glob("mediaingest-job-*"))  # the dead worker's folder was reaped


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def restartable_s3() -> Iterator[tuple[MotoS3Server, list[ThreadedMotoServer]]]:
    """A moto server of our own on a fixed port, so the test can stop and restart it (moto keeps its
    state in-process, so the buckets survive the restart)."""
    port = _free_port()
    servers = [ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)]
    servers[0].start()
    yield MotoS3Server(endpoint_url=f"http://127.0.0.1:{port}"), servers
    servers[-1].stop()


def test_s3_outage_is_retried_with_backoff_and_ingestion_completes(
    make_settings: SettingsFactory,
    users: Users,
    small_video: Path,
    restartable_s3: tuple[MotoS3Server, list[ThreadedMotoServer]],
) -> None:
    moto, servers = restartable_s3
    settings = make_settings(
        **moto.settings_overrides(), job_max_attempts=20, job_backoff_base_seconds=0.3, job_backoff_max_seconds=1.0
    )
    build_storage(settings).ensure_buckets(
        [settings.bucket_incoming, settings.bucket_processed, settings.bucket_proxies]
    )
    with TestClient(create_app(settings, configure_logs=False)) as api, httpx.Client(timeout=30) as http:
        _, headers = users.create()
        confirmed = upload(api, headers, small_video, mime_type="video/mp4", http=http)
        asset_id = confirmed["assetId"]
        assert confirmed["checksum"] is None  # S3 without a declared checksum: the probe computes it

        servers[0].stop()  # the peer goes away before the worker's first download
        with embedded_worker(settings):
            wait_until(lambda: status_of(api, headers, asset_id)["currentJob"]["retries"] >= 2, timeout=60)
            time.sleep(0.2)
            port = int(moto.endpoint_url.rsplit(":", 1)[1])
            servers.append(ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False))
            servers[-1].start()
            wait_until(lambda: status_of(api, headers, asset_id)["processingStatus"] in ("READY", "FAILED"), timeout=90)
        status = status_of(api, headers, asset_id)
        assert status["processingStatus"] == "READY", status
        probe = next(job for job in status["jobs"] if job["type"] == "METADATA_EXTRACTION")
        assert probe["retries"] >= 2 and probe["status"] == "COMPLETED"
        detail = api.get(f"/api/assets/{asset_id}", headers=headers).json()["data"]
        assert detail["checksum"] == hashlib.sha256(small_video.read_bytes()).hexdigest()
        assert {p["type"] for p in detail["proxies"]} >= {"VIDEO", "POSTER", "WAVEFORM"}
        with api.app.state.session_factory() as session:  # type: ignore[attr-defined]
            job = session.scalar(
                sa.select(IngestionJob).where(
                    IngestionJob.asset_id == asset_id, IngestionJob.type == IngestionJobType("METADATA_EXTRACTION")
                )
            )
            assert job is not None
            failures = [entry for entry in job.logs if entry["event"] == "job.attempt_failed"]
            assert len(failures) == job.retries and all(entry["retry"] for entry in failures)
            assert "storage" in failures[0]["error"].lower() or "connect" in failures[0]["error"].lower()
