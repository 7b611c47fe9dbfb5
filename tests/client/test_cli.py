"""The real `mediaingest` command (a subprocess) against a live server with a worker."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fixtures.live_server import LiveServer, LiveServerFactory, wait_until
from fixtures.media import PDF_BYTES
from mediaingest.client import MediaIngestClient
from mediaingest.client.errors import ClientError

pytestmark = pytest.mark.slow

COMMAND = str(Path(sys.executable).with_name("mediaingest"))


@pytest.fixture(autouse=True)
def _own_resume_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's CLI keeps its resume state (uploads.json) in the test's folder, not in ~/.local."""
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    return state


def run_cli(
    server: LiveServer | None, token: str | None, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MEDIAINGEST_")}
    if server is not None:
        env["MEDIAINGEST_SERVER"] = server.url
    if token is not None:
        env["MEDIAINGEST_TOKEN"] = token
    env["COLUMNS"] = "200"  # rich wraps at the terminal width; keep lines whole for the assertions
    return subprocess.run(
        [COMMAND, *args], env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def test_upload_wait_then_list_show_and_delete(live_server: LiveServer, small_video: Path, small_audio: Path) -> None:
    user_id, headers = live_server.create_user()
    token = _token(headers)

    uploaded = run_cli(live_server, token, "upload", str(small_video), str(small_audio), "--wait", "--json",
                       "--project", "cli-test")  # fmt: skip
    assert uploaded.returncode == 0, uploaded.stderr
    results: list[dict[str, Any]] = json.loads(uploaded.stdout)
    assert [Path(r["file"]).name for r in results] == [small_video.name, small_audio.name]
    video, audio = (r["asset"] for r in results)
    assert (video["processingStatus"], audio["processingStatus"]) == ("READY", "READY")
    assert video["projectId"] == "cli-test" and video["mimeType"] == "video/mp4"
    assert video["checksum"] == hashlib.sha256(small_video.read_bytes()).hexdigest()
    assert {"VIDEO", "POSTER", "SPRITE_SHEET", "STORYBOARD", "WAVEFORM"} <= {p["type"] for p in video["proxies"]}
    assert audio["mimeType"] in ("audio/wav", "audio/x-wav") and audio["metadata"]["hasAudio"] is True
    assert "ready" in uploaded.stderr  # the stage progress went to stderr, both files followed together
    assert f"{small_video.name}: ready" in uploaded.stderr and f"{small_audio.name}: ready" in uploaded.stderr

    listed = run_cli(live_server, token, "assets", "list", "--json", "--type", "video")
    assert listed.returncode == 0, listed.stderr
    assert [item["id"] for item in json.loads(listed.stdout)["items"]] == [video["id"]]
    table = run_cli(live_server, token, "assets", "list")
    # The table shows short ids, and show and delete take them as they are shown.
    assert video["id"][:8] in table.stdout and video["id"] not in table.stdout
    assert small_audio.name in table.stdout and "2 asset(s)" in table.stdout
    assert "project" in table.stdout and "cli-test" in table.stdout

    shown = run_cli(live_server, token, "assets", "show", video["id"][:8])
    assert shown.returncode == 0, shown.stderr
    assert small_video.name in shown.stdout and "READY" in shown.stdout and "320×240" in shown.stdout
    assert "h264/aac" in shown.stdout and "poster" in shown.stdout

    keys_before = live_server.storage.list_keys(live_server.settings.bucket_proxies, f"assets/{user_id}/{video['id']}/")
    assert keys_before
    deleted = run_cli(live_server, token, "assets", "delete", video["id"], "--yes")
    assert deleted.returncode == 0 and f"deleted {video['id']}" in deleted.stdout
    assert live_server.storage.list_keys(live_server.settings.bucket_proxies, f"assets/{user_id}/{video['id']}/") == []
    gone = run_cli(live_server, token, "assets", "show", video["id"])
    assert gone.returncode == 1 and f"No asset {video['id']}" in gone.stderr
    # Asked first, the question names what would go (no answer: nothing goes).
    asked = run_cli(live_server, token, "assets", "delete", audio["id"][:6])
    assert asked.returncode == 1 and "Delete 1 asset(s)" in asked.stdout and small_audio.name in asked.stdout
    # An unknown id among several is named, and the others are still deleted (by short id too).
    mixed = run_cli(live_server, token, "assets", "delete", video["id"][:8], audio["id"][:6], "--yes")
    assert mixed.returncode == 1
    assert f"No asset {video['id'][:8]}" in mixed.stderr and f"deleted {audio['id']}" in mixed.stdout

    # What is not an id is said before asking the server: too short, or a name.
    short = run_cli(live_server, token, "assets", "show", "4ed")
    assert short.returncode == 1 and "4ed is too short: give at least the first 4 characters" in short.stderr
    named = run_cli(live_server, token, "assets", "show", "phone.mov")
    assert named.returncode == 1 and "phone.mov is not an asset id: ids are hexadecimal" in named.stderr
    assert "String should match pattern" not in named.stderr


def test_big_file_goes_up_in_parallel_parts_with_flags_instead_of_env(
    live_server_factory: LiveServerFactory, small_video: Path
) -> None:
    server = live_server_factory(worker=False, multipart_threshold=64 * 1024, multipart_part_size=32 * 1024)
    _, headers = server.create_user()
    size = small_video.stat().st_size
    result = run_cli(None, None, "upload", str(small_video), "--server", server.url, "--token", _token(headers),
                     "--json", "--concurrency", "3")  # fmt: skip
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)
    asset = entry["asset"]
    parts = -(-size // (32 * 1024))
    assert parts > 3
    assert asset["uploadStatus"] == "UPLOADED" and asset["etag"].endswith(f"-{parts}")  # S3's multipart ETag
    assert asset["checksum"] == hashlib.sha256(small_video.read_bytes()).hexdigest()
    assert f"({parts} parts)" in result.stderr


def test_errors_a_person_understands(live_server_factory: LiveServerFactory, tmp_path: Path, small_video: Path) -> None:
    server = live_server_factory(worker=False, quota_user=100_000)
    _, headers = server.create_user()
    token = _token(headers)
    document = tmp_path / "notes.pdf"
    document.write_bytes(PDF_BYTES)

    rejected = run_cli(server, token, "upload", str(document))
    assert rejected.returncode == 1
    assert "“notes.pdf” can't be uploaded: only video, audio and image files are accepted" in rejected.stderr
    assert "application/pdf" in rejected.stderr

    over = run_cli(server, token, "upload", str(small_video))
    assert over.returncode == 1
    size = small_video.stat().st_size
    assert f"Not enough storage for “{small_video.name}”: it needs {round(size / 1024)} KiB" in over.stderr
    assert "only 97.7 KiB of your USER plan's 97.7 KiB is free (0 B stored, 0 B reserved" in over.stderr

    bad = run_cli(server, "mi_not-a-real-token", "assets", "list")
    assert bad.returncode == 1 and "did not accept the token" in bad.stderr
    missing = run_cli(server, None, "assets", "list")
    assert missing.returncode == 2 and "MEDIAINGEST_TOKEN" in missing.stderr


def test_library_waits_by_events_or_by_polling(live_server: LiveServer, small_video: Path) -> None:
    _, headers = live_server.create_user()
    seen: list[str] = []
    with MediaIngestClient(live_server.url, _token(headers)) as client:
        first = client.upload(small_video, project_id="lib")
        final = client.wait(first.asset_id, timeout=90, on_status=lambda s: seen.append(s.processing_status.value))
        assert final.processing_status.value == "READY" and seen[-1] == "READY"
        assert final.current_job is not None and final.current_job.progress == 100
        second = client.upload(small_video)
        polled = client.wait(second.asset_id, timeout=90, use_events=False, poll_interval=0.2)
        assert polled.processing_status.value == "READY"
        detail = client.get(first.asset_id)
        assert detail.metadata is not None and detail.metadata.width == 320
        page = client.list(project_id="lib")
        assert [item.id for item in page.items] == [first.asset_id] and page.total == 1
        client.delete(second.asset_id)
        assert client.list().total == 1


def test_an_interrupted_upload_resumes_sending_only_the_missing_parts(
    live_server_factory: LiveServerFactory, small_video: Path, tmp_path: Path
) -> None:
    """Ctrl-C, then a killed process: each run again sends only what storage does not hold."""
    server = live_server_factory(worker=False, multipart_threshold=64 * 1024, multipart_part_size=64 * 1024)
    _, headers = server.create_user()
    video = tmp_path / "long take.mp4"
    video.write_bytes(small_video.read_bytes() + bytes(1024 * 1024))  # a real header, padded to many parts
    parts = -(-video.stat().st_size // (64 * 1024))

    received = server.record_parts(delay=0.15)  # each part lands a little slowly: a run can be stopped
    env = {key: value for key, value in os.environ.items() if not key.startswith("MEDIAINGEST_")}
    env |= {"MEDIAINGEST_SERVER": server.url, "MEDIAINGEST_TOKEN": _token(headers), "COLUMNS": "200"}
    command = [COMMAND, "upload", str(video), "--concurrency", "2"]

    def stopped_after(count: int, sig: signal.Signals) -> subprocess.CompletedProcess[str]:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        before = len(received)
        wait_until(lambda: len(received) >= before + count, timeout=30, message="parts should arrive")
        process.send_signal(sig)
        out, err = process.communicate(timeout=30)
        return subprocess.CompletedProcess(command, process.returncode, out, err)

    interrupted = stopped_after(3, signal.SIGINT)
    assert interrupted.returncode == 130, interrupted.stderr
    assert "Interrupted." in interrupted.stderr and "again to resume" in interrupted.stderr
    first_run = set(received)

    killed = stopped_after(3, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    second_run = received[len(first_run) :]
    assert not first_run & set(second_run), "the second run sent parts storage already held"

    settled = -1
    while settled != len(received):  # parts whose bytes had all arrived before the kill still land
        settled = len(received)
        time.sleep(0.5)
    held = set(received)
    before_last = len(received)
    finished = subprocess.run([*command, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    last_run = received[before_last:]
    missing = set(range(1, parts + 1)) - held
    assert sorted(last_run) == sorted(missing)  # exactly the parts storage did not hold
    [entry] = json.loads(finished.stdout)
    asset = entry["asset"]
    assert asset["uploadStatus"] == "UPLOADED" and asset["etag"].endswith(f"-{parts}")
    assert asset["checksum"] == hashlib.sha256(video.read_bytes()).hexdigest()
    assert f"({parts} parts, {len(held)} already stored)" in finished.stderr


def test_naming_the_asset_resumes_it_only_with_the_same_file(
    live_server_factory: LiveServerFactory, small_video: Path, tmp_path: Path
) -> None:
    server = live_server_factory(worker=False, multipart_threshold=64 * 1024, multipart_part_size=64 * 1024)
    _, headers = server.create_user()
    video = tmp_path / "take.mp4"
    video.write_bytes(small_video.read_bytes() + bytes(256 * 1024))
    received = server.record_parts()

    class Dropped(BaseException):
        pass

    def drop_after_two_parts(_count: int) -> None:
        if len(received) >= 2:
            raise Dropped

    with MediaIngestClient(server.url, _token(headers), concurrency=1) as client:
        with pytest.raises(Dropped):
            client.upload(video, on_progress=drop_after_two_parts)
        [pending] = client.list(status="PENDING").items
        other = tmp_path / "other.mp4"  # same size, other bytes
        other.write_bytes(bytes(reversed(video.read_bytes())))
        with pytest.raises(ClientError, match=r"is not the same bytes as other\.mp4"):
            client.upload(other, asset_id=pending.id)
        before = len(received)
        result = client.upload(video, asset_id=pending.id)
    assert result.resumed and result.asset_id == pending.id
    assert sorted(received[before:]) == sorted(
        set(range(1, -(-video.stat().st_size // (64 * 1024)) + 1)) - set(received[:before])
    )
