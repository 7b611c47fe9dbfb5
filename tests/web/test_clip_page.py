"""The asset page's timeline: a filmstrip of the video whose tiles seek, and a clip made with I and O."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.live_server import LiveServerFactory, wait_until
from fixtures.media import make_video
from fixtures.page import bearer_token, look, sign_in
from fixtures.uploads import upload

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_in_and_out_keys_make_a_clip_and_the_filmstrip_seeks(
    live_server_factory: LiveServerFactory, page: Any, media_dir: Path
) -> None:
    source = make_video(media_dir / "timeline.mp4", duration=6, size="640x360", fps=25)
    server = live_server_factory(proxy_heights=[360])
    _, headers = server.create_user()
    http = httpx.Client(base_url=server.url, timeout=30)
    asset_id = upload(http, headers, source, mime_type="video/mp4")["assetId"]
    wait_until(
        lambda: (
            http.get(f"/api/assets/{asset_id}/status", headers=headers).json()["data"]["processingStatus"] == "READY"
        ),
        timeout=120,
    )
    page.route(lambda url: not url.startswith(server.url), lambda route: route.abort())  # nothing from elsewhere
    sign_in(page, server, bearer_token(headers))
    page.goto(f"{server.url}/assets/{asset_id}")
    tiles = page.locator(".timeline-strip .filmstrip-tile")
    tiles.first.wait_for(state="visible", timeout=30_000)
    assert tiles.count() == 12
    tiles.nth(6).click()  # 6 of 12 over 6 s: the tile at 3 s
    video = page.locator("video.player")
    assert video.evaluate("(v) => v.currentTime") == pytest.approx(3.0, abs=0.05)

    page.locator(".scrub.timeline").wait_for(state="visible", timeout=30_000)  # the seek bar shows the range
    video.evaluate("(v) => { v.currentTime = 1.23; }")
    video.focus()
    page.keyboard.press("i")
    video.evaluate("(v) => { v.currentTime = 4.5; }")
    page.keyboard.press("o")
    assert page.locator(".clip-in").inner_text() == "00:00:01:05"  # the frame showing at 1.23 s, at 25 fps
    assert page.locator(".clip-out").inner_text() == "00:00:04:12"
    band = page.locator(".scrub-bar .clip-range")
    assert band.evaluate("(b) => [b.style.left, b.style.width]") == ["20%", "54.6667%"]  # 1.2 s to 4.48 s of 6 s
    page.locator(".clip-preview .filmstrip-tile").first.wait_for(state="visible", timeout=30_000)
    look(page, server, "asset-timeline")  # 1280 and 390 px: no sideways scrolling, no axe-core finding
    page.get_by_role("button", name="Make clip").click()
    status = page.locator(".clip-status")
    status.get_by_text("Clip made").wait_for(timeout=30_000)
    assert "82 frames" in status.inner_text()  # frames 30 to 111
    clip_id = status.locator("a").get_attribute("data-asset-id")
    clip = http.get(f"/api/assets/{clip_id}", headers=headers).json()["data"]
    assert clip["parentId"] == asset_id and clip["clip"]["inFrame"] == 30 and clip["clip"]["outFrame"] == 112
