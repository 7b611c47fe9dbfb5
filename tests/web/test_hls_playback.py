"""The page plays a video over HLS (hls.js, served by the service) while it is still being ingested."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.live_server import LiveServerFactory, wait_until
from fixtures.media import make_video
from fixtures.page import ARTIFACTS, READY_TIMEOUT_MS, assert_pinned, bearer_token, card, sign_in
from mediaingest.web import HLS_JS_SHA256, HLS_JS_VERSION

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_vendored_hls_js_is_the_pinned_release() -> None:
    bundle = assert_pinned("hls.light.min.mjs", HLS_JS_SHA256, "hls.js.LICENSE", "Copyright (c) 2017 Dailymotion")
    assert f'"{HLS_JS_VERSION}"'.encode() in bundle


def test_the_page_plays_the_video_before_it_is_ready(
    live_server_factory: LiveServerFactory, page: Any, media_dir: Path
) -> None:
    # MPEG-4 Part 2 is never remuxed: every rung is encoded, so READY is seconds away when the first
    # segments are out.
    source = make_video(media_dir / "early.mp4", duration=16, size="1280x720", fps=25, video_codec="mpeg4")
    server = live_server_factory(proxy_heights=[360, 720])
    _, headers = server.create_user()
    page.route(lambda url: not url.startswith(server.url), lambda route: route.abort())  # no CDN, nothing else
    sign_in(page, server, bearer_token(headers))
    page.set_input_files("#file-input", str(source))
    item = card(page, "early.mp4")
    player = item.locator("video.early-player")
    player.wait_for(state="visible", timeout=READY_TIMEOUT_MS)
    logs: list[str] = []
    page.on("console", lambda message: logs.append(message.text))
    try:
        page.wait_for_function(
            """(video) => { video.muted = true; video.play().catch(() => {}); return video.currentTime > 0.5; }""",
            arg=player.element_handle(),
            timeout=30_000,
        )
    except Exception:
        state = player.evaluate(
            """(v) => JSON.stringify({
                time: v.currentTime, readyState: v.readyState, paused: v.paused, error: v.error && v.error.code,
                buffered: [...Array(v.buffered.length).keys()].map((i) => [v.buffered.start(i), v.buffered.end(i)]),
            })"""
        )
        raise AssertionError(f"the early player never played: {state} {logs}") from None
    assert item.get_attribute("data-state") == "processing"  # playing, and not READY yet
    assert "Playable while processing:" in item.locator(".playable").inner_text()
    assert "of 0:16" in item.locator(".playable").inner_text()
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(ARTIFACTS / f"early-playback-{width}.png"))
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        wide = page.evaluate(
            """() => [...document.querySelectorAll('body *')]
                .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
                .slice(0, 8)
                .map((e) => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`)"""
        )
        assert overflow <= 0, f"the page scrolls sideways at {width} px: {wide}"

    item.locator(".upload-status", has_text="Ready").wait_for(timeout=READY_TIMEOUT_MS)
    # The card stays a compact line (the early player, still playing, stays too); the asset opens in
    # the asset view.
    item.get_by_role("link", name="Open early.mp4").click()
    viewer = page.locator("#viewer")
    final = viewer.locator("video.player")
    final.wait_for(state="visible")
    viewer.locator("figcaption", has_text="Web proxy · HLS").wait_for()
    assert viewer.locator("figcaption", has_text="Web proxy").inner_text() == "Web proxy · HLS, 360p, 720p"
    page.wait_for_function(
        """(video) => { video.muted = true; video.play().catch(() => {}); return video.currentTime > 0.5; }""",
        arg=final.element_handle(),
        timeout=30_000,
    )
    # The player's bar: the timecode where the video is, and a rendition switch over the HLS levels.
    timecode = viewer.get_by_label("Timecode")
    wait_until(lambda: re.fullmatch(r"00:00:\d\d:\d\d", timecode.inner_text()) is not None, timeout=10)
    rendition = viewer.locator("select.rendition")
    wait_until(lambda: rendition.locator("option").all_inner_texts() == ["Auto", "360p", "720p"], timeout=10)
    rendition.select_option(label="360p")
    assert final.evaluate("v => v.hls.currentLevel") == 0
    spectrogram = viewer.get_by_role("img", name="Spectrogram of early.mp4")
    wait_until(lambda: spectrogram.evaluate("img => img.complete && img.naturalWidth") > 0, timeout=10)
    page.set_viewport_size({"width": 1280, "height": 900})
    viewer.screenshot(path=str(ARTIFACTS / "asset-results-1280.png"))
    page.set_viewport_size({"width": 390, "height": 900})
    viewer.screenshot(path=str(ARTIFACTS / "asset-results-390.png"))
    # hls.js came from this service, pinned: never from a CDN.
    assert httpx.get(f"{server.url}/ui/vendor/hls.light.min.mjs", timeout=10).status_code == 200
