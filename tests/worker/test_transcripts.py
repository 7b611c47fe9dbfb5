"""Speech through the whole service: captions listed and signed, the HLS master's SUBTITLES rendition,
and search by what is said (on SQLite's FTS5 and PostgreSQL's full text: `database_url` runs both)."""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.live_server import LiveServer, LiveServerFactory, wait_until
from fixtures.speech import Speech, music_only, silence, speech_video
from fixtures.uploads import upload

pytestmark = pytest.mark.slow


def _ready(http: httpx.Client, headers: dict[str, str], asset_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        status = http.get(f"/api/assets/{asset_id}/status", headers=headers).json()["data"]
        assert status["processingStatus"] != "FAILED", status
        return status if status["processingStatus"] == "READY" else None

    wait_until(done, timeout=180, interval=0.2)
    detail: dict[str, Any] = http.get(f"/api/assets/{asset_id}", headers=headers).json()["data"]
    return detail


def _search(http: httpx.Client, headers: dict[str, str], q: str) -> list[dict[str, Any]]:
    response = http.get("/api/assets", params={"q": q}, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["data"]["items"]
    return items


@pytest.fixture
def server(live_server_factory: LiveServerFactory) -> LiveServer:
    return live_server_factory(proxy_heights=[360])


def test_speech_gets_captions_subtitles_and_is_found_by_what_is_said(
    live_server_factory: LiveServerFactory, database_url: str, short_speech: Speech, tmp_path: Path
) -> None:
    server = live_server_factory(proxy_heights=[360], database_url=database_url)  # FTS5 and PostgreSQL
    video = speech_video(short_speech, tmp_path / "interview.mp4")
    _, headers = server.create_user()
    http = httpx.Client(base_url=server.url, timeout=30)
    asset_id = upload(http, headers, video, mime_type="video/mp4")["assetId"]
    detail = _ready(http, headers, asset_id)

    outputs = {proxy["type"]: proxy for proxy in detail["proxies"]}
    assert {"TRANSCRIPT", "CAPTIONS", "TRANSCRIPT_TEXT"} <= set(outputs)
    assert detail["metadata"]["transcriptLanguage"] == "en"
    captions = httpx.get(outputs["CAPTIONS"]["url"], timeout=30)
    assert captions.status_code == 200 and captions.text.startswith("WEBVTT")
    document = httpx.get(outputs["TRANSCRIPT"]["url"], timeout=30).json()
    assert document["language"] == "en" and document["segments"][0]["words"][0].keys() >= {"start", "end", "word"}
    assert "hospital" in httpx.get(outputs["TRANSCRIPT_TEXT"]["url"], timeout=30).text.lower()

    # The master lists the captions as a SUBTITLES rendition; ffprobe (a real HLS reader) finds the WebVTT.
    master = httpx.get(detail["playback"]["hlsUrl"], timeout=30).text
    assert '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs"' in master and 'LANGUAGE="en"' in master
    assert all('SUBTITLES="subs"' in line for line in master.splitlines() if line.startswith("#EXT-X-STREAM-INF"))
    probed = subprocess.run(
        # -strict experimental: without it ffmpeg's HLS reader skips subtitle renditions
        ["ffprobe", "-v", "error", "-strict", "experimental", "-show_entries", "stream=codec_name", "-of", "json",
         detail["playback"]["hlsUrl"]],
        capture_output=True, check=True, timeout=60, text=True,
    )  # fmt: skip
    assert "webvtt" in {stream["codec_name"] for stream in json.loads(probed.stdout)["streams"]}
    _check_apple_subtitle_rules(master)

    # Search by a spoken phrase finds it, and says when it is said; words not said in that order do not.
    [found] = _search(http, headers, "works at the local HOSPITAL")
    truth = next(word.start for word in short_speech.words if word.text == "works")
    assert found["id"] == asset_id and abs(found["spokenMatch"]["seconds"] - truth) <= 0.3
    assert "hospital" in found["spokenMatch"]["text"].lower()
    assert _search(http, headers, "hospital local") == []
    assert _search(http, headers, "interview")[0]["spokenMatch"] is None  # by its name
    assert _search(http, headers, '"the local" OR hosp*') == []  # words, never query syntax
    other_user = server.create_user()[1]
    assert _search(http, other_user, "local hospital") == []


_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def _attributes(line: str) -> dict[str, str]:
    return {key: value.strip('"') for key, value in _ATTRIBUTE.findall(line.split(":", 1)[1])}


def _check_apple_subtitle_rules(master: str) -> None:
    """What Apple's HLS authoring rules ask of a WebVTT SUBTITLES rendition, which Safari enforces (we cannot
    run Safari here): the rendition's attributes, every variant naming its group, a finished media playlist,
    and segments whose X-TIMESTAMP-MAP maps cue time 0 to where the video is presented from."""
    lines = master.splitlines()
    [media] = [_attributes(line) for line in lines if line.startswith("#EXT-X-MEDIA:")]
    assert media.keys() >= {"TYPE", "GROUP-ID", "NAME", "LANGUAGE", "DEFAULT", "AUTOSELECT", "URI"}, media
    assert media["TYPE"] == "SUBTITLES" and media["DEFAULT"] in {"YES", "NO"} and media["AUTOSELECT"] == "YES"
    variants = [index for index, line in enumerate(lines) if line.startswith("#EXT-X-STREAM-INF:")]
    assert variants and all(_attributes(lines[index]).get("SUBTITLES") == media["GROUP-ID"] for index in variants)

    playlist = httpx.get(media["URI"], timeout=30)
    assert playlist.status_code == 200 and playlist.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    tags = playlist.text.splitlines()
    assert tags[0] == "#EXTM3U" and "#EXT-X-PLAYLIST-TYPE:VOD" in tags and tags[-1] == "#EXT-X-ENDLIST"
    [target] = [int(tag.split(":")[1]) for tag in tags if tag.startswith("#EXT-X-TARGETDURATION:")]
    durations = [float(tag.split(":")[1].rstrip(",")) for tag in tags if tag.startswith("#EXTINF:")]
    segments = [tag for tag in tags if tag and not tag.startswith("#")]
    assert durations and len(segments) == len(durations) and all(round(d) <= target for d in durations)

    # The video as a real HLS reader sees it: when its first frame is presented (x264's B-frames put it
    # after 0). The cues must be mapped there, or every caption shows that much early.
    rung = next(line for line in lines[variants[0] + 1 :] if line and not line.startswith("#"))
    probed = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=start_time", "-of", "json", rung],
        capture_output=True, check=True, timeout=60, text=True,
    )  # fmt: skip
    video_start = float(json.loads(probed.stdout)["streams"][0]["start_time"])
    assert video_start > 0
    for uri in segments:
        vtt = httpx.get(uri, timeout=30)
        assert vtt.status_code == 200 and vtt.headers["content-type"].startswith("text/vtt")
        header = vtt.text.split("\n\n", 1)[0].splitlines()
        assert header[0] == "WEBVTT"
        [mapping] = [line for line in header if line.startswith("X-TIMESTAMP-MAP=")]
        found = re.fullmatch(r"X-TIMESTAMP-MAP=MPEGTS:(\d+),LOCAL:00:00:00\.000", mapping)
        assert found is not None, mapping
        assert math.isclose(int(found.group(1)) / 90000, video_start, abs_tol=0.002), (mapping, video_start)


@pytest.mark.parametrize("make", [music_only, silence], ids=["music", "silence"])
def test_speechless_audio_ends_ready_without_captions(server: LiveServer, make: Any, tmp_path: Path) -> None:
    _, headers = server.create_user()
    http = httpx.Client(base_url=server.url, timeout=30)
    asset_id = upload(http, headers, make(tmp_path / "sound.wav"), mime_type="audio/wav")["assetId"]
    detail = _ready(http, headers, asset_id)
    kinds = {proxy["type"] for proxy in detail["proxies"]}
    assert "TRANSCRIPT" in kinds and not {"CAPTIONS", "TRANSCRIPT_TEXT"} & kinds
    job = next(job for job in detail["ingestionJobs"] if job["type"] == "TRANSCRIPTION")
    assert (job["status"], job["message"]) == ("COMPLETED", "transcript: no speech")
    assert detail["metadata"]["transcriptLanguage"] is None
