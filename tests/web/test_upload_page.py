"""The upload page in Debian's chromium (Playwright, headless) against a live server with a worker.

No `playwright install`: the browser is the distribution's (`make test` installs the `chromium` package).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from fixtures.live_server import LiveServer, LiveServerFactory, wait_until
from fixtures.media import PDF_BYTES, make_video
from fixtures.page import (
    ARTIFACTS,
    READY_TIMEOUT_MS,
    assert_pinned,
    bearer_token,
    card,
    drop_file,
    padded_video,
    settled_count,
    sign_in,
)
from mediaingest.config import MIB
from mediaingest.db import session_scope, utcnow
from mediaingest.models import ApiToken
from mediaingest.web import UPPY_SHA256

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def page_video(media_dir: Path) -> Path:
    """4 s: two storyboard tiles (one every 2 s), so hovering has somewhere to go."""
    return make_video(media_dir / "page-clip.mp4", duration=4)


def test_video_chosen_and_image_dropped_reach_ready_with_poster_player_scrub_and_waveform(
    live_server: LiveServer, page: Any, page_video: Path, small_jpeg: Path
) -> None:
    small_video = page_video
    _, headers = live_server.create_user()
    sign_in(page, live_server, bearer_token(headers))
    page.set_input_files("#file-input", str(small_video))
    drop_file(page, small_jpeg, "image/jpeg")

    video_card = card(page, small_video.name)
    video_card.and_(page.locator("[data-state='ready']")).wait_for(timeout=READY_TIMEOUT_MS)
    image_card = card(page, small_jpeg.name)
    image_card.and_(page.locator("[data-state='ready']")).wait_for(timeout=READY_TIMEOUT_MS)

    # Finished cards stay one line each; the asset view has the player, the storyboard and the rest.
    thumb = video_card.get_by_role("img", name=f"Poster frame of {small_video.name}")
    wait_until(lambda: thumb.evaluate("img => img.complete && img.naturalWidth") == 320, timeout=10)
    assert video_card.locator("video").count() == 0
    video_card.get_by_role("link", name=f"Open {small_video.name}").click()
    viewer = page.locator("#viewer")
    poster = viewer.get_by_role("img", name=f"Poster frame of {small_video.name}")
    poster.wait_for()
    wait_until(lambda: poster.evaluate("img => img.complete && img.naturalWidth") == 320, timeout=10)
    video = viewer.locator("video.player")
    # Adaptive HLS through hls.js (Media Source Extensions), the MP4 renditions being the fallback.
    viewer.locator("figcaption", has_text="Web proxy · HLS").wait_for()
    wait_until(lambda: video.evaluate("v => v.readyState") >= 1, timeout=10)  # metadata loaded from the proxy
    assert video.evaluate("v => v.src.startsWith('blob:')")
    assert video.evaluate("v => Math.round(v.duration)") == 4
    waveform = viewer.get_by_role("img", name=f"Waveform of {small_video.name}")
    wait_until(lambda: waveform.evaluate("img => img.complete && img.naturalWidth") > 0, timeout=10)

    # The storyboard is the player's seek bar: pointing previews the frame above the pointer.
    scrub = viewer.get_by_role("slider")
    assert scrub.evaluate("(s, video) => s.previousElementSibling === video", video.element_handle())
    assert scrub.get_attribute("data-cue") == "sprite_000.jpg#xywh=0,0,120,90"  # 4:3, at its aspect
    scrub.scroll_into_view_if_needed()
    box = scrub.locator(".scrub-bar").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)
    wait_until(lambda: scrub.get_attribute("data-cue") == "sprite_000.jpg#xywh=120,0,120,90", timeout=5)
    assert scrub.get_attribute("aria-valuetext") == "0:03"
    frame = scrub.locator(".scrub-frame")
    assert "sprite_000.jpg" in frame.evaluate("f => f.style.backgroundImage")
    assert frame.evaluate("f => [f.offsetWidth, f.offsetHeight]") == [160, 120]  # shown larger, still 4:3
    assert frame.evaluate("f => f.style.backgroundPosition") == "-160px 0px"  # the second tile, scaled alike
    shown = scrub.locator(".scrub-preview").bounding_box()
    assert shown is not None and shown["y"] + shown["height"] <= box["y"] + 1  # above the bar
    assert shown["x"] <= box["x"] + box["width"] * 0.75 <= shown["x"] + shown["width"]  # at the pointer
    ARTIFACTS.mkdir(exist_ok=True)
    top = shown["y"] - 10
    around = {"x": box["x"] - 10, "y": top, "width": box["width"] + 20, "height": box["y"] - top + 30}
    page.screenshot(path=str(ARTIFACTS / "seek-bar-preview.png"), clip=around)  # no scrolling: the hover stays
    page.mouse.down()
    page.mouse.up()  # letting go seeks there
    wait_until(lambda: abs(video.evaluate("v => v.currentTime") - 3) < 0.3, timeout=5)
    scrub.focus()
    page.keyboard.press("Home")
    assert scrub.get_attribute("aria-valuenow") == "0"
    # The original: downloaded as it was uploaded, or a signed link that says how long it works.
    download = viewer.get_by_role("link", name="Download original")
    assert httpx.get(download.get_attribute("href"), timeout=10).content == small_video.read_bytes()
    viewer.get_by_role("button", name=f"Copy link to {small_video.name}").click()
    wait_until(lambda: "works until" in viewer.locator(".asset-actions .hint").inner_text(), timeout=5)

    # Back to the workspace. The dropped image: its thumbnail stands in for a poster; no player.
    page.go_back()
    image_card.wait_for()
    assert image_card.get_by_role("img", name=f"Poster frame of {small_jpeg.name}").is_visible()
    assert image_card.locator("video").count() == 0

    # Both are in the list, ready; the header tells who is signed in, the plan and the quota used.
    rows = page.locator("#assets-body tr")
    wait_until(lambda: rows.count() == 2 and rows.locator(".status-cell .badge.ready").count() == 2, timeout=10)
    label = page.locator("#account-label")
    header = r"\S+@\S+ · User plan · [\d.]+ [KM]iB of 5 GiB used"  # binary units, named as such
    wait_until(lambda: re.fullmatch(header, label.inner_text()), timeout=10, message=label.inner_text())
    assert card(page, small_video.name).locator(".upload-status").get_attribute("aria-live") == "polite"

    _screenshots(page, "upload-page")


def test_disallowed_type_and_quota_are_explained(
    live_server_factory: LiveServerFactory, page: Any, tmp_path: Path, small_video: Path
) -> None:
    server = live_server_factory(worker=False, quota_user=100_000)
    _, headers = server.create_user()
    sign_in(page, server, bearer_token(headers))
    document = tmp_path / "notes.pdf"
    document.write_bytes(PDF_BYTES)
    page.set_input_files("#file-input", str(document))
    rejected = card(page, "notes.pdf")
    rejected.and_(page.locator("[data-state='rejected']")).wait_for()
    assert rejected.locator(".upload-status").inner_text() == (
        "“notes.pdf” can't be uploaded: only video, audio and image files are accepted (this file is application/pdf)."
    )

    # Named like a video, but its first bytes say PDF: refused in the browser before anything is sent.
    disguised = tmp_path / "notes.mp4"
    disguised.write_bytes(PDF_BYTES)
    page.set_input_files("#file-input", str(disguised))
    refused = card(page, "notes.mp4")
    refused.and_(page.locator("[data-state='rejected']")).wait_for()
    assert refused.locator(".upload-status").inner_text() == (
        "“notes.mp4” is a PDF, not a video: upload a video, audio or image file."
    )
    assert refused.get_attribute("data-asset-id") is None  # no upload was even asked for

    page.set_input_files("#file-input", str(small_video))
    over = card(page, small_video.name)
    over.and_(page.locator("[data-state='rejected']")).wait_for()
    size_kib = round(small_video.stat().st_size / 1024)
    assert over.locator(".upload-status").inner_text() == (
        f"Not enough storage for “{small_video.name}”: it needs {size_kib} KiB, but only 97.7 KiB of your USER "
        "plan's 97.7 KiB is free (0 B stored, 0 B reserved by unfinished uploads)."
    )
    assert httpx.get(f"{server.url}/api/assets", headers=headers).json()["data"]["total"] == 0


def test_invalid_token_and_expired_session_return_to_sign_in(live_server_factory: LiveServerFactory, page: Any) -> None:
    server = live_server_factory(worker=False)
    user_id, headers = server.create_user()
    page.goto(server.url + "/")
    page.get_by_label("API token").fill("mi_this-is-not-a-token")
    page.get_by_role("button", name="Sign in").click()
    alert = page.locator("#sign-in-error")
    alert.wait_for()
    assert alert.inner_text() == "That token was not accepted: it is invalid, revoked or expired."
    assert alert.get_attribute("role") == "alert"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "sign-in.png"))
    assert page.locator("#workspace").is_hidden()
    assert page.evaluate("() => sessionStorage.getItem('mediaingest.token')") is None

    sign_in(page, server, bearer_token(headers))
    assert page.evaluate("() => sessionStorage.getItem('mediaingest.token')") == bearer_token(headers)
    page.locator("#account-label", has_text="@").wait_for()  # the first load is done
    # The token is revoked while the page is open: the next request returns the person to sign-in.
    with session_scope(server.app.state.session_factory) as session:
        session.execute(sa.update(ApiToken).where(ApiToken.user_id == user_id).values(revoked_at=utcnow()))
    page.get_by_role("button", name="Refresh").click()
    page.locator("#sign-in").wait_for(state="visible")
    assert "session has expired" in alert.inner_text()
    assert page.evaluate("() => sessionStorage.getItem('mediaingest.token')") is None


def test_deleting_an_asset_removes_it_from_the_list_and_from_storage(
    live_server: LiveServer, page: Any, small_video: Path
) -> None:
    user_id, headers = live_server.create_user()
    sign_in(page, live_server, bearer_token(headers))
    page.set_input_files("#file-input", str(small_video))
    uploaded = card(page, small_video.name)
    uploaded.and_(page.locator("[data-state='ready']")).wait_for(timeout=READY_TIMEOUT_MS)
    asset_id = uploaded.get_attribute("data-asset-id")
    row = page.locator(f"#assets-body tr[data-asset-id='{asset_id}']")
    row.wait_for()
    storage, settings = live_server.storage, live_server.settings
    derived = f"assets/{user_id}/{asset_id}/"
    assert storage.list_keys(settings.bucket_proxies, derived) and storage.list_keys(settings.bucket_processed, derived)
    assert storage.list_keys(settings.bucket_incoming, f"uploads/{user_id}/")

    # The name opens the asset's page, from the list; back returns to the library.
    row.get_by_role("link", name=small_video.name).click()
    viewer = page.locator("#viewer")
    viewer.get_by_role("img", name=f"Poster frame of {small_video.name}").wait_for()
    assert viewer.locator("#viewer-status").inner_text() == "Ready"
    assert page.url == f"{live_server.url}/assets/{asset_id}"
    page.go_back()
    row.wait_for()

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=f"Delete {small_video.name}").click()
    row.wait_for(state="detached")
    assert page.locator("#announcer").inner_text() == f"Deleted {small_video.name}."
    assert uploaded.get_attribute("data-state") == "deleted"
    assert viewer.is_hidden()
    for bucket, prefix in (
        (settings.bucket_incoming, f"uploads/{user_id}/"),
        (settings.bucket_proxies, derived),
        (settings.bucket_processed, derived),
    ):
        assert storage.list_keys(bucket, prefix) == []
    assert httpx.get(f"{live_server.url}/api/assets", headers=headers).json()["data"]["total"] == 0


def test_multipart_upload_through_the_page_with_a_part_retried(
    live_server_factory: LiveServerFactory, page: Any, small_video: Path, tmp_path: Path
) -> None:
    # Uppy cuts parts of at least 5 MiB: a real video padded to three of them.
    server = live_server_factory(multipart_threshold=MIB, multipart_part_size=5 * MIB)
    _, headers = server.create_user()
    video = padded_video(small_video, tmp_path / "long take.mp4", 11)
    sign_in(page, server, bearer_token(headers))
    failed_once: list[str] = []
    checksums: list[str] = []

    def flaky_part_two(route: Any) -> None:
        # The network drops part 2's first attempt (a 503 from a proxy): the page must retry that part.
        if route.request.method == "PUT":
            checksums.append(route.request.headers.get("x-amz-checksum-sha256", ""))
        if "partNumber=2" in route.request.url and not failed_once:
            failed_once.append(route.request.url)
            route.fulfill(status=503, body="<Error><Code>SlowDown</Code></Error>")
            return
        route.continue_()

    page.route("**/storage/**", flaky_part_two)
    page.set_input_files("#file-input", str(video))
    uploaded = card(page, video.name)
    uploaded.and_(page.locator("[data-state='ready']")).wait_for(timeout=READY_TIMEOUT_MS)
    assert uploaded.get_attribute("data-multipart") == "3"
    assert failed_once, "part 2 was never sent"
    # Every part went with its SHA-256, hashed in the browser and signed into its URL.
    assert len(checksums) == 4 and all(len(base64.b64decode(c)) == 32 for c in checksums)
    asset_id = uploaded.get_attribute("data-asset-id")
    detail = httpx.get(f"{server.url}/api/assets/{asset_id}", headers=headers).json()["data"]
    assert detail["etag"].endswith("-3")  # assembled from every part
    assert detail["checksum"] == hashlib.sha256(video.read_bytes()).hexdigest()
    assert uploaded.get_by_role("img", name=f"Poster frame of {video.name}").is_visible()


def test_the_queue_is_compact_and_finished_cards_can_be_cleared(
    live_server: LiveServer, page: Any, small_jpeg: Path, tmp_path: Path
) -> None:
    _, headers = live_server.create_user()
    sign_in(page, live_server, bearer_token(headers))
    document = tmp_path / "notes.mp4"
    document.write_bytes(PDF_BYTES)
    page.set_input_files("#file-input", [str(small_jpeg), str(document)])
    ready, refused = card(page, small_jpeg.name), card(page, "notes.mp4")
    ready.and_(page.locator("[data-state='ready']")).wait_for(timeout=READY_TIMEOUT_MS)
    refused.and_(page.locator("[data-state='rejected'], [data-state='failed']")).wait_for(timeout=READY_TIMEOUT_MS)
    wait_until(lambda: page.locator("#uploads-summary").inner_text() == "1 ready · 1 failed", timeout=10)
    # Advice that fits: what the file really is, and what to upload instead.
    assert refused.locator(".upload-status").inner_text() == (
        "“notes.mp4” is a PDF, not a video: upload a video, audio or image file."
    )
    # A failed card goes on its own; the rest with "Clear finished".
    refused.get_by_role("button", name="Dismiss notes.mp4").click()
    assert refused.count() == 0 and page.locator("#uploads-summary").inner_text() == "1 ready"
    page.get_by_role("button", name="Clear finished").click()
    assert page.locator("#uploads .upload").count() == 0 and page.locator("#uploads-bar").is_hidden()


def test_the_vendored_uppy_is_the_pinned_release() -> None:
    bundle = assert_pinned("uppy.min.mjs", UPPY_SHA256, "uppy.LICENSE", "Copyright (c) 2018 Transloadit")
    for plugin in (b"AwsS3", b"GoldenRetriever", b"Uppy"):
        assert plugin in bundle


def test_a_reload_mid_upload_resumes_without_sending_stored_parts_again(
    live_server_factory: LiveServerFactory, page: Any, small_video: Path, tmp_path: Path
) -> None:
    server = live_server_factory(worker=False, multipart_threshold=MIB, multipart_part_size=5 * MIB)
    _, headers = server.create_user()
    # Over Golden Retriever's 10 MiB: after the reload the browser has no copy, and asks for the file.
    video = padded_video(small_video, tmp_path / "interview.mp4", 95)
    parts = -(-video.stat().st_size // (5 * MIB))
    received = server.record_parts(delay=1.5)
    sign_in(page, server, bearer_token(headers))
    page.set_input_files("#file-input", str(video))
    sending = card(page, video.name)
    sending.and_(page.locator("[data-state='uploading']")).wait_for()
    wait_until(lambda: len(received) >= 2, timeout=30, message="parts should arrive")

    # Pause stops sending; what landed stays; Resume goes on from there.
    sending.get_by_role("button", name=f"Pause {video.name}").click()
    sending.and_(page.locator("[data-state='paused']")).wait_for()
    _screenshots(page, "upload-paused")
    settled = settled_count(received)
    time.sleep(2.0)
    assert len(received) == settled, "parts kept arriving while paused"
    sending.get_by_role("button", name=f"Resume {video.name}").click()
    sending.and_(page.locator("[data-state='uploading']")).wait_for()
    wait_until(lambda: len(received) >= settled + 2, timeout=30, message="resume should send more parts")

    # Leaving asks first; going anyway loses nothing.
    dialogs: list[str] = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.type), dialog.accept()))
    page.reload()
    assert dialogs == ["beforeunload"]
    held = set(received[: settled_count(received)])
    interrupted = card(page, video.name)
    interrupted.and_(page.locator("[data-state='interrupted']")).wait_for()
    assert f"Choose “{video.name}” again to resume" in interrupted.locator(".upload-status").inner_text()
    _screenshots(page, "upload-interrupted")

    before = len(received)
    page.set_input_files("#file-input", str(video))
    interrupted.and_(page.locator("[data-state='processing']")).wait_for(timeout=60_000)
    assert page.locator("#uploads .upload").count() == 1  # the interrupted card took the file
    resent = received[before:]
    assert sorted(resent) == sorted(set(range(1, parts + 1)) - held)  # only what storage lacked
    asset_id = interrupted.get_attribute("data-asset-id")
    detail = httpx.get(f"{server.url}/api/assets/{asset_id}", headers=headers).json()["data"]
    assert detail["etag"].endswith(f"-{parts}")
    assert detail["checksum"] == hashlib.sha256(video.read_bytes()).hexdigest()


def test_a_small_upload_resumes_by_itself_after_a_reload(
    live_server_factory: LiveServerFactory, page: Any, small_video: Path, tmp_path: Path
) -> None:
    """Under 10 MiB Golden Retriever keeps the file itself: no need to choose it again."""
    server = live_server_factory(worker=False, multipart_threshold=MIB, multipart_part_size=5 * MIB)
    _, headers = server.create_user()
    video = padded_video(small_video, tmp_path / "b-roll.mp4", 6)  # two parts
    received = server.record_parts()

    released: list[bool] = []

    def hold_part_two(route: Any) -> None:
        if route.request.method == "PUT" and "partNumber=2" in route.request.url and not released:
            return  # never answered: the connection hangs until the page goes away
        route.continue_()

    sign_in(page, server, bearer_token(headers))
    page.route("**/storage/**", hold_part_two)
    page.set_input_files("#file-input", str(video))
    for _ in range(300):  # Playwright's sync API runs the route handler only while it is called
        if received == [1]:
            break
        page.wait_for_timeout(100)
    assert received == [1], "part 1 should land"
    released.append(True)  # after the reload (the hanging PUT dies with the page)
    page.once("dialog", lambda dialog: dialog.accept())
    page.reload()
    resumed = card(page, video.name)
    resumed.and_(page.locator("[data-state='processing']")).wait_for(timeout=30_000)
    assert received == [1, 2]  # part 1 was not sent again
    detail = httpx.get(f"{server.url}/api/assets/{resumed.get_attribute('data-asset-id')}", headers=headers)
    assert detail.json()["data"]["checksum"] == hashlib.sha256(video.read_bytes()).hexdigest()


def test_an_upload_left_idle_too_long_says_to_upload_again(
    live_server_factory: LiveServerFactory, page: Any, small_video: Path, tmp_path: Path
) -> None:
    server = live_server_factory(
        worker=False, multipart_threshold=MIB, multipart_part_size=5 * MIB, upload_session_idle_seconds=1
    )
    _, headers = server.create_user()
    video = padded_video(small_video, tmp_path / "rushes.mp4", 6)
    received = server.record_parts()
    sign_in(page, server, bearer_token(headers))
    page.route("**/storage/**", lambda route: None if "partNumber=2" in route.request.url else route.continue_())
    page.set_input_files("#file-input", str(video))
    for _ in range(300):  # Playwright's sync API runs the route handler only while it is called
        if received == [1]:
            break
        page.wait_for_timeout(100)
    page.wait_for_timeout(2000)  # idle past the session's one second, part 2 still hanging
    page.once("dialog", lambda dialog: dialog.accept())
    page.reload()
    expired = card(page, video.name)
    expired.and_(page.locator("[data-state='rejected']")).wait_for(timeout=30_000)
    assert (
        expired.locator(".upload-status").inner_text() == "“rushes.mp4” waited too long and expired; upload it again."
    )
    assert received == [1]


def test_cancel_releases_the_quota_and_leaves_nothing(
    live_server_factory: LiveServerFactory, page: Any, small_video: Path, tmp_path: Path
) -> None:
    server = live_server_factory(worker=False, multipart_threshold=MIB, multipart_part_size=5 * MIB)
    _, headers = server.create_user()
    video = padded_video(small_video, tmp_path / "outtake.mp4", 30)
    server.record_parts(delay=0.5)
    sign_in(page, server, bearer_token(headers))
    page.set_input_files("#file-input", str(video))
    sending = card(page, video.name)
    sending.and_(page.locator("[data-state='uploading']")).wait_for()
    sending.get_by_role("button", name=f"Cancel {video.name}").click()
    sending.wait_for(state="detached")
    wait_until(
        lambda: httpx.get(f"{server.url}/api/me", headers=headers).json()["data"]["quota"]["reservedBytes"] == 0,
        timeout=10,
        message="the reservation should be released",
    )
    assert httpx.get(f"{server.url}/api/assets", headers=headers).json()["data"]["total"] == 0
    time.sleep(0.5)  # parts in flight when Cancel was pressed are refused once the asset is gone
    assert server.storage.list_keys(server.settings.bucket_incoming, "uploads/") == []
    assert list((server.settings.data_dir / "storage" / ".uploads").iterdir()) == []


def _screenshots(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 800})
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})


def test_a_photo_shows_its_camera_and_exposure(live_server: LiveServer, page: Any, tmp_path: Path) -> None:
    from PIL import Image

    photo = tmp_path / "harbour.jpg"
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0132] = "Fujifilm", "X-T4", "2026:11:30 07:15:00"  # Make, Model, DateTime
    exif.get_ifd(0x8769).update({0x829A: 1 / 250, 0x829D: 5.6, 0x8827: 400})  # ExposureTime, FNumber, ISO
    Image.new("RGB", (640, 480), (30, 90, 160)).save(photo, exif=exif)
    _, headers = live_server.create_user()
    sign_in(page, live_server, bearer_token(headers))
    page.set_input_files("#file-input", str(photo))
    item = card(page, photo.name)
    item.and_(page.locator("[data-state='ready']")).wait_for(timeout=READY_TIMEOUT_MS)
    item.get_by_role("link", name=f"Open {photo.name}").click()
    facts = page.locator("#viewer .facts").first
    facts.wait_for()
    text = facts.inner_text()
    assert "Fujifilm X-T4" in text and "2026-11-30 07:15:00" in text
    assert "1/250 s · f/5.6 · ISO 400" in text
    page.locator("#viewer summary", has_text="All EXIF fields").click()
    assert "ExposureTime" in page.locator("#viewer details.exif").inner_text()
    _screenshots(page, "photo-exif")
