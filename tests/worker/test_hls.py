"""Playable while ingesting: CMAF HLS from the proxies pass, published segment by segment, served with
every reference signed, on the local backend and on S3 (moto)."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.live_server import LiveServer, LiveServerFactory, wait_until
from fixtures.media import make_video
from fixtures.s3 import MotoS3Server
from fixtures.uploads import upload
from mediaingest.exceptions import ProcessingError
from mediaingest.pipeline.hls import HlsPublisher, HlsRung, parse_media_playlist

pytestmark = pytest.mark.slow

FFPROBE = "/usr/bin/ffprobe"


@pytest.fixture(params=["local", "s3"])
def server(request: pytest.FixtureRequest, live_server_factory: LiveServerFactory) -> LiveServer:
    if request.param == "local":
        return live_server_factory(proxy_heights=[360, 720])
    moto: MotoS3Server = request.getfixturevalue("moto_s3_server")
    return moto.live_server(live_server_factory, proxy_heights=[360, 720])


def _count_frames(url_or_path: str) -> tuple[int, float]:
    done = subprocess.run(
        [FFPROBE, "-v", "error", "-protocol_whitelist", "file,http,https,tcp,tls,crypto", "-select_streams", "v:0",
         "-count_frames", "-show_entries", "stream=nb_read_frames:format=duration", "-of", "json", url_or_path],
        capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    found = json.loads(done.stdout)
    return int(found["streams"][0]["nb_read_frames"]), float(found["format"].get("duration") or 0)


def _assert_valid_media_playlist(text: str, *, ended: bool) -> None:
    lines = text.strip().splitlines()
    assert lines[0] == "#EXTM3U" and "#EXT-X-VERSION:7" in lines
    target = int(next(line for line in lines if line.startswith("#EXT-X-TARGETDURATION:")).split(":")[1])
    durations = [float(m.group(1)) for line in lines if (m := re.match(r"#EXTINF:([\d.]+)", line))]
    assert durations and all(round(d) <= target for d in durations), (target, durations)
    assert any(line.startswith("#EXT-X-MAP:URI=") for line in lines)
    assert ("#EXT-X-ENDLIST" in lines) is ended
    if ended:
        assert lines[-1] == "#EXT-X-ENDLIST"  # only at the end


def test_video_plays_over_hls_before_it_is_ready_and_the_segments_join_to_the_mp4_rung(
    server: LiveServer, media_dir: Path, tmp_path: Path
) -> None:
    source = make_video(media_dir / "hls.mp4", duration=12, size="1280x720", fps=25, video_codec="mpeg4")
    _, headers = server.create_user()
    http = httpx.Client(base_url=server.url, timeout=30)
    asset_id = upload(http, headers, source, mime_type="video/mp4")["assetId"]

    def playable_mid_ingest() -> dict[str, Any] | None:
        status = http.get(f"/api/assets/{asset_id}/status", headers=headers).json()["data"]
        assert status["processingStatus"] != "FAILED", status
        return status if status["playback"] and status["playback"]["ready"] else None

    status = wait_until(playable_mid_ingest, timeout=120, interval=0.1)
    playback = status["playback"]
    assert status["processingStatus"] == "PROCESSING" and playback["complete"] is False
    assert 0 < playback["playableSeconds"] < 12
    # The master and a media playlist, fetched mid-ingest with no Bearer header, play what they list.
    master = httpx.get(playback["hlsUrl"], timeout=30)
    assert master.status_code == 200 and master.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    assert master.headers["cache-control"] == "no-store"
    media_url = next(line for line in master.text.splitlines() if line and not line.startswith("#"))
    early = httpx.get(media_url, timeout=30).text
    _assert_valid_media_playlist(early, ended=False)
    listed = parse_media_playlist(early)
    snapshot = tmp_path / "early.m3u8"
    snapshot.write_text(early + "#EXT-X-ENDLIST\n")  # as it was: play exactly what it listed
    frames, _ = _count_frames(str(snapshot))
    assert frames == round(listed.seconds * 25)

    wait_until(
        lambda: (
            http.get(f"/api/assets/{asset_id}/status", headers=headers).json()["data"]["processingStatus"] == "READY"
        ),
        timeout=180,
    )
    detail = http.get(f"/api/assets/{asset_id}", headers=headers).json()["data"]
    playback = detail["playback"]
    assert playback["complete"] is True and playback["playableSeconds"] == pytest.approx(12, abs=0.1)
    hls = next(p for p in detail["proxies"] if p["type"] == "HLS")
    assert hls["details"]["rungs"] == ["360p", "720p"]
    master = httpx.get(playback["hlsUrl"], timeout=30).text
    assert [line for line in master.splitlines() if line.startswith("#EXT-X-STREAM-INF")] == [
        "#EXT-X-STREAM-INF:BANDWIDTH=901120,RESOLUTION=640x360,FRAME-RATE=25.000",
        "#EXT-X-STREAM-INF:BANDWIDTH=3182080,RESOLUTION=1280x720,FRAME-RATE=25.000",
    ]
    mp4s = {p["resolution"]: p for p in detail["proxies"] if p["type"] == "VIDEO"}
    for media_url in (line for line in master.splitlines() if line and not line.startswith("#")):
        text = httpx.get(media_url, timeout=30).text
        _assert_valid_media_playlist(text, ended=True)
        rung = re.search(r"/hls/(\d+p)/index\.m3u8", media_url)
        assert rung is not None
        playlist = tmp_path / f"{rung.group(1)}.m3u8"
        playlist.write_text(text)
        frames, seconds = _count_frames(str(playlist))
        rung_frames, rung_seconds = _count_frames(mp4s[rung.group(1)]["url"])
        assert frames == rung_frames == 300  # the same 12 s at 25 fps, joined from the segments
        assert seconds == pytest.approx(rung_seconds, abs=0.05)

    # Signed, and only for this asset's playlists.
    good = httpx.URL(playback["hlsUrl"])
    tampered = good.copy_set_param("signature", "0" * 64)
    assert httpx.get(tampered, timeout=10).status_code == 401
    expired = good.copy_set_param("expires", str(int(time.time()) - 1))
    assert httpx.get(expired, timeout=10).json()["error"]["code"] == "unauthorized"
    other = str(good).replace(f"/{asset_id}/", "/not-this-asset/")
    assert httpx.get(other, timeout=10).status_code == 401
    assert httpx.get(str(good).replace("master.m3u8", "../poster.jpg"), timeout=10).status_code == 404


def test_a_stage_killed_mid_publish_never_leaves_a_playlist_pointing_at_a_missing_segment(tmp_path: Path) -> None:
    rung = tmp_path / "hls" / "360p"
    rung.mkdir(parents=True)
    (rung / "init.mp4").write_bytes(b"init")
    for index in range(4):
        (rung / f"seg_{index:05d}.m4s").write_bytes(b"segment")
    body = "".join(f"#EXTINF:2.000000,\nseg_{index:05d}.m4s\n" for index in range(4))
    (rung / "index.m3u8").write_text(f'#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MAP:URI="init.mp4"\n{body}')

    for killed_after in range(8):
        stored: dict[str, bytes] = {}

        def publish(path: Path, name: str, stored: dict[str, bytes] = stored, limit: int = killed_after) -> None:
            if len(stored) == limit:
                raise ProcessingError("killed")
            stored[name] = path.read_bytes()

        publisher = HlsPublisher(tmp_path, [HlsRung("360p", 640, 360, 1)], "25/1", publish=publish)
        with contextlib.suppress(ProcessingError):
            publisher.scan()
        for name, content in stored.items():
            if name.endswith("index.m3u8"):
                playlist = parse_media_playlist(content.decode())
                referenced = [playlist.init, *(segment for segment, _ in playlist.segments)]
                assert all(f"hls/360p/{file}" in stored for file in referenced), (killed_after, sorted(stored))
        assert ("hls/master.m3u8" in stored) <= ("hls/360p/index.m3u8" in stored)


def test_a_web_playable_source_plays_from_its_copy_before_any_encode_finishes(
    server: LiveServer, media_dir: Path
) -> None:
    source = make_video(media_dir / "web.mp4", duration=12, size="1280x720", fps=25)
    _, headers = server.create_user()
    http = httpx.Client(base_url=server.url, timeout=30)
    asset_id = upload(http, headers, source, mime_type="video/mp4")["assetId"]

    def playable() -> dict[str, Any] | None:
        status = http.get(f"/api/assets/{asset_id}/status", headers=headers).json()["data"]
        assert status["processingStatus"] != "FAILED", status
        return status if status["playback"] else None

    status = wait_until(playable, timeout=120, interval=0.05)
    proxies = next(job for job in status["jobs"] if job["type"] == "PROXY_GENERATION")
    # The copy ran first and alone: the whole length plays while the 360p encode is still going.
    assert proxies["status"] == "RUNNING" and status["playback"]["complete"] is False
    assert status["playback"]["playableSeconds"] == pytest.approx(12, abs=0.1)
    master = httpx.get(status["playback"]["hlsUrl"], timeout=30).text
    assert "720p" in master
    wait_until(
        lambda: (
            http.get(f"/api/assets/{asset_id}/status", headers=headers).json()["data"]["processingStatus"] == "READY"
        ),
        timeout=180,
    )
    detail = http.get(f"/api/assets/{asset_id}", headers=headers).json()["data"]
    remuxed = {p["resolution"]: p["details"]["remuxed"] for p in detail["proxies"] if p["type"] == "VIDEO"}
    assert remuxed == {"360p": False, "720p": True}
