"""The CLI's resume state: which asset an interrupted upload of a file went to."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from mediaingest.client.resume import MAX_AGE_SECONDS, ResumeStore


def test_a_file_is_found_again_until_it_changes(tmp_path: Path) -> None:
    store = ResumeStore(tmp_path / "state" / "uploads.json")
    video = tmp_path / "take.mp4"
    video.write_bytes(b"first cut")
    key = ResumeStore.key("http://api.example/", video)
    assert store.get(key) is None
    store.remember(key, "asset-1")
    assert ResumeStore(store.path).get(ResumeStore.key("http://api.example", video)) == "asset-1"
    assert ResumeStore.key("http://other.example", video) != key  # another server, another upload

    os.utime(video, ns=(time.time_ns(), time.time_ns() + 10**9))  # edited since: a new upload
    assert store.get(ResumeStore.key("http://api.example", video)) is None
    store.forget(key)
    assert json.loads(store.path.read_text()) == {}
    assert not [p for p in store.path.parent.iterdir() if p.name != "uploads.json"]  # no temp files left


def test_unreadable_or_stale_state_starts_afresh(tmp_path: Path) -> None:
    store = ResumeStore(tmp_path / "uploads.json")
    store.path.write_text("{ not json")
    assert store.get("anything") is None
    store.path.write_text(json.dumps({"old": {"assetId": "a0", "savedAt": time.time() - MAX_AGE_SECONDS - 1}}))
    store.remember("new", "a1")
    assert set(json.loads(store.path.read_text())) == {"new"}  # a week-old entry is dropped on write
