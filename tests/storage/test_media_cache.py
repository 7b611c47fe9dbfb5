"""The API's disk copies of stored videos (ffmpeg in the images reads local files only): downloaded once,
a replaced object is a new copy, the least recently used go first, and local objects are read in place."""

from __future__ import annotations

import os
import time
from pathlib import Path

from conftest import SettingsFactory
from fixtures.s3 import MotoS3Server
from mediaingest.assets.media_cache import MediaCache
from mediaingest.storage import build_storage


def test_s3_objects_are_kept_on_disk_within_the_bound(
    make_settings: SettingsFactory, moto_s3_server: MotoS3Server, tmp_path: Path
) -> None:
    settings = moto_s3_server.settings(make_settings)
    storage = build_storage(settings)
    bucket = settings.bucket_proxies
    for name in ("a", "b", "c"):
        source = tmp_path / name
        source.write_bytes(name.encode() * 1000)
        storage.upload_file(bucket, f"assets/u/x/{name}.mp4", source, content_type="video/mp4")
    cache = MediaCache(storage, tmp_path / "cache", max_bytes=2500)

    first = cache.path(bucket, "assets/u/x/a.mp4")
    assert first.read_bytes() == b"a" * 1000 and cache.path(bucket, "assets/u/x/a.mp4") == first  # once
    os.utime(first, (time.time() - 60, time.time() - 60))  # the least recently used
    second = cache.path(bucket, "assets/u/x/b.mp4")
    third = cache.path(bucket, "assets/u/x/c.mp4")
    assert not first.exists() and second.exists() and third.exists()  # 3000 bytes > 2500: "a" went

    replaced = tmp_path / "b2"
    replaced.write_bytes(b"B" * 1000)
    storage.upload_file(bucket, "assets/u/x/b.mp4", replaced, content_type="video/mp4")
    again = cache.path(bucket, "assets/u/x/b.mp4")
    assert again != second and again.read_bytes() == b"B" * 1000
    assert not any(p.name.endswith(".partial") for p in (tmp_path / "cache").iterdir())


def test_local_objects_are_read_in_place(make_settings: SettingsFactory, tmp_path: Path) -> None:
    settings = make_settings()
    storage = build_storage(settings)
    storage.ensure_buckets([settings.bucket_proxies])
    source = tmp_path / "v.mp4"
    source.write_bytes(b"v" * 10)
    storage.upload_file(settings.bucket_proxies, "assets/u/x/v.mp4", source, content_type="video/mp4")
    path = MediaCache(storage, tmp_path / "cache", max_bytes=1).path(settings.bucket_proxies, "assets/u/x/v.mp4")
    assert path.read_bytes() == b"v" * 10 and not (tmp_path / "cache").exists()
