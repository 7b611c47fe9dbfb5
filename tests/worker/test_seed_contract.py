"""The seed's contract: `GET /api/assets/{id}` speaks the seed's field names and types for MediaAsset,
AssetMetadata, AssetProxy and IngestionJob (the main product is written against them), with the richer
fields beside them, and the OpenAPI document says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import Users
from fixtures.live_server import wait_until
from fixtures.media import make_video
from fixtures.uploads import status_of, upload
from mediaingest.catalog import embedded_worker
from mediaingest.config import Settings

pytestmark = pytest.mark.slow

NUMBER = (int, float)
# name → the JSON types the seed allows (None where the field may be null)
SEED_ASSET = {
    "id": (str,), "userId": (str,), "name": (str,), "originalName": (str,), "type": (str,), "fileSize": (int,),
    "mimeType": (str,), "uploadStatus": (str,), "processingStatus": (str,), "storageBucket": (str,),
    "storageKey": (str,), "etag": (str,), "checksum": (str,), "projectId": (str, type(None)),
    "createdAt": (str,), "updatedAt": (str,), "metadata": (dict,), "proxies": (list,), "ingestionJobs": (list,),
}  # fmt: skip
SEED_METADATA = {
    "duration": NUMBER, "width": (int,), "height": (int,), "codecVideo": (str,), "codecAudio": (str,),
    "aspectRatio": (str,), "hasHDR": (bool,), "bitrateAudio": (int,), "exifData": (dict, type(None)),
    "iptcData": (dict, type(None)),
}  # fmt: skip
SEED_PROXY = {"id": (str,), "type": (str,), "resolution": (str, type(None)), "format": (str,), "isProcessed": (bool,)}
SEED_JOB = {
    "id": (str,), "type": (str,), "status": (str,), "priority": (str,), "progress": NUMBER,
    "message": (str, type(None)), "logs": (list,), "retries": (int,), "error": (str, type(None)),
}  # fmt: skip


def _check(obj: dict[str, Any], contract: dict[str, tuple[type, ...]], what: str) -> None:
    for name, types in contract.items():
        assert name in obj, f"{what} lacks the seed's {name}"
        assert isinstance(obj[name], types) and not (bool in types) ^ isinstance(obj[name], bool), (
            f"{what}.{name} is {obj[name]!r}"
        )


def test_asset_detail_speaks_the_seeds_names_beside_the_richer_ones(
    api: TestClient, ingest_settings: Settings, users: Users, media_dir: Path
) -> None:
    source = make_video(media_dir / "contract.mp4", duration=2, size="640x360", fps=25)
    user_id, headers = users.create()
    asset_id = upload(api, headers, source, mime_type="video/mp4")["assetId"]
    with embedded_worker(ingest_settings):
        wait_until(lambda: status_of(api, headers, asset_id)["processingStatus"] == "READY", timeout=120)

    asset = api.get(f"/api/assets/{asset_id}", headers=headers).json()["data"]
    _check(asset, SEED_ASSET, "MediaAsset")
    assert asset["userId"] == user_id
    metadata = asset["metadata"]
    _check(metadata, SEED_METADATA, "AssetMetadata")
    # Each seed name carries exactly its richer twin's value.
    twins = {
        "duration": "durationSeconds", "codecVideo": "videoCodec", "codecAudio": "audioCodec",
        "aspectRatio": "displayAspectRatio", "hasHDR": "hasHdr", "bitrateAudio": "audioBitrate",
        "exifData": "exif", "iptcData": "iptc",
    }  # fmt: skip
    assert {seed: metadata[seed] for seed in twins} == {seed: metadata[rich] for seed, rich in twins.items()}
    assert (metadata["codecVideo"], metadata["aspectRatio"], metadata["hasHDR"]) == ("h264", "16:9", False)
    for proxy in asset["proxies"]:
        _check(proxy, SEED_PROXY, "AssetProxy")
        assert proxy["isProcessed"] is True
    jobs = asset["ingestionJobs"]
    assert {job["type"] for job in jobs} == {
        "METADATA_EXTRACTION", "PROXY_GENERATION", "THUMBNAIL_GENERATION", "AUDIO_ANALYSIS", "TRANSCRIPTION"
    }  # fmt: skip
    for job in jobs:
        _check(job, SEED_JOB, "IngestionJob")
        assert (job["status"], job["progress"], job["retries"], job["error"]) == ("COMPLETED", 100, 0, None)
        assert job["priority"] == "NORMAL" and job["logs"], job

    # The list speaks the asset's seed names too, and the documented schema holds every seed name.
    listed = api.get("/api/assets", headers=headers).json()["data"]["items"][0]
    assert listed["userId"] == user_id
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    documented = {name: set(schemas[name]["properties"]) for name in ("AssetDetail", "MetadataOut", "ProxyOut")}
    assert set(SEED_ASSET) <= documented["AssetDetail"]
    assert set(SEED_METADATA) <= documented["MetadataOut"]
    assert set(SEED_PROXY) <= documented["ProxyOut"]
    assert set(SEED_JOB) <= set(schemas["IngestionJobOut"]["properties"])
