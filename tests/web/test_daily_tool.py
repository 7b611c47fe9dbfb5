"""The page as a daily tool, in Debian's chromium: uploads over a throttled link that survive a pause, a
reload and an outage; a library that follows the event stream; portrait video shown as portrait; an
asset page with an address; axe-core clean on every view (screenshots of each at 1280 and 390 px)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.live_server import LiveServer, LiveServerFactory, wait_until
from fixtures.media import ffmpeg, make_video
from fixtures.page import (
    ARTIFACTS,
    READY_TIMEOUT_MS,
    assert_pinned,
    bearer_token,
    card,
    look,
    padded_video,
    settled_count,
    sign_in,
)
from mediaingest.config import MIB
from mediaingest.web import AXE_CORE_SHA256, AXE_CORE_VERSION

pytestmark = [pytest.mark.browser, pytest.mark.slow]

UPLOAD_BYTES_PER_SECOND = 2 * MIB  # a slow office uplink: a 5 MiB part takes 2.5 s


class Link:
    """Chromium's own network emulation (DevTools protocol) on one tab: the uplink slowed, or cut. One
    session for the tab's life (it stays attached across reloads; a second one would not override it)."""

    def __init__(self, page: Any) -> None:
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("Network.enable")
        self.set(offline=False)

    def set(self, *, offline: bool) -> None:
        conditions = {"offline": offline, "latency": 20, "downloadThroughput": -1}
        self.cdp.send("Network.emulateNetworkConditions", conditions | {"uploadThroughput": UPLOAD_BYTES_PER_SECOND})


def test_the_vendored_axe_core_is_the_pinned_release() -> None:
    bundle = assert_pinned("axe.min.js", AXE_CORE_SHA256, "axe-core.LICENSE", "Mozilla Public License, version 2.0")
    assert bundle.startswith(f"/*! axe v{AXE_CORE_VERSION}".encode())


def test_pause_reload_and_outage_on_a_slow_link_each_lose_at_most_one_part_and_keep_one_asset(
    live_server_factory: LiveServerFactory, page: Any, small_video: Path, tmp_path: Path
) -> None:
    server = live_server_factory(worker=False, multipart_threshold=MIB, multipart_part_size=5 * MIB)
    _, headers = server.create_user()
    video = padded_video(small_video, tmp_path / "rushes.mp4", 44)  # 9 parts of 5 MiB; over Golden Retriever's 10 MiB
    parts = -(-video.stat().st_size // (5 * MIB))
    received = server.record_parts()
    failed: list[str] = []  # part PUTs that never completed: the bytes they carried are lost
    page.on("requestfailed", lambda request: failed.append(request.url) if request.method == "PUT" else None)
    sign_in(page, server, bearer_token(headers))
    link = Link(page)
    page.set_input_files("#file-input", str(video))
    sending = card(page, video.name)
    wait_until(lambda: len(received) >= 2, timeout=60, message="parts should land")
    time.sleep(1.2)  # halfway through part 3

    # Pause: the part on its way is abandoned (one at most: one part at a time on this link), what
    # storage holds is what the card says.
    sending.get_by_role("button", name=f"Pause {video.name}").click()
    sending.and_(page.locator("[data-state='paused']")).wait_for()
    held = settled_count(received)
    lost = {"pause": len(failed)}
    assert sending.locator(".upload-meta").inner_text().startswith(f"{held * 5} MiB of 44.1 MiB stored")
    sending.get_by_role("button", name=f"Resume {video.name}").click()
    wait_until(lambda: len(received) >= held + 1, timeout=60, message="resume should send more parts")
    time.sleep(1.2)

    # Reload: the card comes back with what storage holds, and takes the file again.
    page.once("dialog", lambda dialog: dialog.accept())
    before = len(failed)
    page.reload()
    interrupted = card(page, video.name)
    interrupted.and_(page.locator("[data-state='interrupted']")).wait_for()
    held = settled_count(received)
    lost["reload"] = len(failed) - before
    wait_until(lambda: interrupted.locator(".upload-meta").inner_text().startswith(f"{held * 5} MiB of"), timeout=10)
    page.set_input_files("#file-input", str(video))
    wait_until(lambda: len(received) >= held + 1, timeout=60, message="the chosen file should resume")
    time.sleep(1.2)

    # Outage: the link drops mid-part; the card counts down and retries by itself once it is back.
    before = len(failed)
    link.set(offline=True)
    interrupted.locator(".upload-status", has_text="Connection lost — retrying in").wait_for(timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "upload-connection-lost-1280.png"))
    # Its own upload is a card here, not an unfinished one (the list leaves it out at its next refresh).
    page.locator("#reservations").wait_for(state="hidden", timeout=10_000)
    time.sleep(3)
    link.set(offline=False)
    interrupted.and_(page.locator("[data-state='processing']")).wait_for(timeout=120_000)
    lost["outage"] = len(failed) - before

    assert all(count <= 1 for count in lost.values()), lost
    assert len(received) - parts <= sum(lost.values()), f"parts stored twice: {received}"
    assets = httpx.get(f"{server.url}/api/assets", headers=headers).json()["data"]
    assert assets["total"] == 1, "an interruption created a second asset"
    detail = httpx.get(f"{server.url}/api/assets/{assets['items'][0]['id']}", headers=headers).json()["data"]
    assert detail["checksum"] == hashlib.sha256(video.read_bytes()).hexdigest()
    print(f"throttled link: part PUTs lost per event {lost}; {len(received)} part uploads for {parts} parts")


def test_the_library_shows_a_cli_upload_within_two_seconds_of_its_events(
    live_server: LiveServer, page: Any, small_video: Path, tmp_path: Path
) -> None:
    _, headers = live_server.create_user()
    sign_in(page, live_server, bearer_token(headers))
    page.locator("#assets-empty").wait_for()
    clip = tmp_path / "from-the-cli.mp4"
    clip.write_bytes(small_video.read_bytes())
    env = {key: value for key, value in os.environ.items() if not key.startswith("MEDIAINGEST_")}
    env |= {
        "MEDIAINGEST_SERVER": live_server.url,
        "MEDIAINGEST_TOKEN": bearer_token(headers),
        "XDG_STATE_HOME": str(tmp_path),
    }
    command = str(Path(sys.executable).with_name("mediaingest"))
    cli = subprocess.Popen([command, "upload", str(clip), "--project", "launch"], env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    row = page.locator("#assets-body tr", has=page.get_by_role("link", name=clip.name))
    row.wait_for(timeout=30_000)
    shown_at = time.time()
    assert cli.wait(timeout=60) == 0
    asset = httpx.get(f"{live_server.url}/api/assets", headers=headers).json()["data"]["items"][0]
    created = datetime.fromisoformat(asset["createdAt"]).timestamp()
    assert shown_at - created <= 2.0, f"listed {shown_at - created:.1f} s after the upload began"
    assert row.locator(".project-tag").inner_text() == "launch"  # projects are shown
    row.locator(".status-cell .badge.ready").wait_for(timeout=READY_TIMEOUT_MS)
    ready_shown = time.time()
    processed = httpx.get(f"{live_server.url}/api/assets/{asset['id']}", headers=headers).json()["data"]["processedAt"]
    assert ready_shown - datetime.fromisoformat(processed).timestamp() <= 2.0
    # Projects filter, and the filter is in the address.
    page.locator("#library-project").fill("nothing-here")
    page.locator("#assets-empty", has_text="No asset matches.").wait_for()
    assert "project=nothing-here" in page.url
    page.reload()
    assert page.locator("#library-project").input_value() == "nothing-here"


def test_a_portrait_clip_is_labelled_and_previewed_as_portrait_on_a_page_that_survives_reload(
    live_server: LiveServer, page: Any, tmp_path: Path
) -> None:
    plain = make_video(tmp_path / "upright-plain.mp4", duration=4, size="640x360", fps=25)
    phone = tmp_path / "phone.mov"
    # Stored landscape with a display matrix turning it upright, as a phone held upright writes it.
    ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=270", "-f", "mov", str(phone))
    _, headers = live_server.create_user()
    sign_in(page, live_server, bearer_token(headers))
    look(page, live_server, "workspace-empty")
    page.set_input_files("#file-input", str(phone))
    item = card(page, phone.name)
    item.and_(page.locator("[data-state='ready']")).wait_for(timeout=READY_TIMEOUT_MS)
    assert item.locator(".ready-summary .hint").inner_text() == "0:04 · 360×640 · portrait · video"
    look(page, live_server, "workspace-ready")

    item.get_by_role("link", name=f"Open {phone.name}").click()
    asset_id = item.get_attribute("data-asset-id")
    assert page.url == f"{live_server.url}/assets/{asset_id}"
    viewer = page.locator("#viewer")
    assert page.evaluate("document.activeElement.id") == "viewer-title"  # focus moved to the opened view
    facts = viewer.locator(".facts").first
    facts.wait_for()
    assert "360×640 · portrait (stored 640×360, turned" in facts.inner_text()
    video = viewer.locator("video.player")
    wait_until(lambda: video.evaluate("v => v.readyState") >= 1, timeout=15)
    box = video.bounding_box()
    assert box is not None and box["height"] > box["width"] * 1.5, f"the player is not upright: {box}"
    rendition = viewer.locator("select.rendition")
    wait_until(lambda: rendition.locator("option").count() > 1, timeout=10)
    detail = httpx.get(f"{live_server.url}/api/assets/{asset_id}", headers=headers).json()["data"]
    rungs = {f"{min(p['width'], p['height'])}p" for p in detail["proxies"] if p["type"] == "VIDEO"}
    labels = rendition.locator("option").all_inner_texts()[1:]
    assert set(labels) == rungs and all(p["height"] > p["width"] for p in detail["proxies"] if p["type"] == "VIDEO")
    assert viewer.locator("figcaption", has_text="Web proxy").inner_text().endswith(", ".join(sorted(rungs)))
    scrub = viewer.get_by_role("slider")
    scrub.wait_for()
    assert scrub.get_attribute("data-cue").endswith("#xywh=0,0,90,160")  # tiles at the display aspect
    scrub.focus()
    page.keyboard.press("End")
    frame = scrub.locator(".scrub-frame").bounding_box()
    assert frame is not None and (frame["width"], frame["height"]) == (90, 160)
    look(page, live_server, "asset-portrait")

    page.reload()  # the address keeps the place
    viewer.locator(".facts").first.wait_for()
    assert page.locator("#viewer-title").inner_text() == phone.name
    page.go_back()
    page.locator("#library-panel").wait_for()
    assert page.url == f"{live_server.url}/"
    assert page.locator("#viewer").is_hidden()


def test_sign_in_is_clean_and_focus_lands_on_the_work(live_server: LiveServer, page: Any) -> None:
    page.goto(live_server.url + "/")
    look(page, live_server, "sign-in")
    _, headers = live_server.create_user()
    page.get_by_label("API token").fill(bearer_token(headers))
    page.get_by_role("button", name="Sign in").click()
    page.locator("#workspace").wait_for(state="visible")
    assert page.evaluate("document.activeElement.id") == "upload-title"  # not the body


def test_an_upload_left_by_a_closed_tab_is_listed_and_can_be_released(
    live_server_factory: LiveServerFactory, page: Any, small_video: Path, tmp_path: Path
) -> None:
    server = live_server_factory(worker=False, multipart_threshold=MIB, multipart_part_size=5 * MIB)
    _, headers = server.create_user()
    left_behind = {"fileName": "left-behind.mov", "fileSize": 300 * MIB, "mimeType": "video/quicktime"}
    ticket = httpx.post(f"{server.url}/api/assets/upload-url", headers=headers, timeout=10, json=left_behind)
    assert ticket.status_code == 201, ticket.text
    sign_in(page, server, bearer_token(headers))
    left = page.locator("#reservations li", has_text="left-behind.mov")
    left.wait_for()
    assert "300 MiB" in left.inner_text()
    look(page, server, "workspace-reservation")
    left.get_by_role("button", name="Release left-behind.mov").click()
    page.locator("#reservations").wait_for(state="hidden")
    me = httpx.get(f"{server.url}/api/me", headers=headers).json()["data"]
    assert me["quota"]["reservedBytes"] == 0


def test_storage_failing_for_a_while_is_retried_on_the_same_asset(
    live_server_factory: LiveServerFactory, page: Any, small_video: Path, tmp_path: Path
) -> None:
    """Past Uppy's own retries a part fails for good: the upload must stay (not be aborted, which would
    delete the asset and make the retry a new upload) and go on by itself once storage answers again."""
    server = live_server_factory(worker=False, multipart_threshold=MIB, multipart_part_size=5 * MIB)
    _, headers = server.create_user()
    video = padded_video(small_video, tmp_path / "b-roll.mp4", 6)  # two parts
    sign_in(page, server, bearer_token(headers))
    refusing_until = [float("inf")]

    def flaky_storage(route: Any) -> None:
        if route.request.method == "PUT" and time.monotonic() < refusing_until[0]:
            route.fulfill(status=503, body="<Error><Code>SlowDown</Code></Error>")
        else:
            route.continue_()

    page.route("**/storage/**", flaky_storage)
    page.set_input_files("#file-input", str(video))
    sending = card(page, video.name)
    status = sending.locator(".upload-status")
    for _ in range(300):  # Playwright's sync API runs the route handler only while it is called
        if "Connection lost — retrying in" in status.inner_text():
            break
        page.wait_for_timeout(100)
    assert "Connection lost — retrying in" in status.inner_text()
    asset_id = sending.get_attribute("data-asset-id")
    refusing_until[0] = time.monotonic()  # storage is back
    for _ in range(600):
        if sending.get_attribute("data-state") == "processing":
            break
        page.wait_for_timeout(100)
    assert sending.get_attribute("data-state") == "processing"
    assets = httpx.get(f"{server.url}/api/assets", headers=headers).json()["data"]
    assert [item["id"] for item in assets["items"]] == [asset_id]


def test_a_big_upload_never_holds_up_a_small_one(
    live_server_factory: LiveServerFactory, page: Any, small_video: Path, small_jpeg: Path, tmp_path: Path
) -> None:
    server = live_server_factory(worker=False, multipart_threshold=MIB, multipart_part_size=5 * MIB)
    _, headers = server.create_user()
    big = padded_video(small_video, tmp_path / "feature.mp4", 70)  # over 64 MiB: the bulk lane, 35 s on this link
    received = server.record_parts()
    sign_in(page, server, bearer_token(headers))
    Link(page)
    page.set_input_files("#file-input", str(big))
    wait_until(lambda: len(received) >= 1, timeout=60, message="the big upload should be under way")
    small = tmp_path / "still.jpg"
    small.write_bytes(small_jpeg.read_bytes())
    page.set_input_files("#file-input", str(small))
    card(page, small.name).and_(page.locator("[data-state='processing']")).wait_for(timeout=10_000)
    assert card(page, big.name).get_attribute("data-state") == "uploading"  # still going, not waited for
    assert len(received) < 14
