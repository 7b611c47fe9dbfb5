"""The asset view of a video with speech: captions on the player (the CC toggle), and the interactive
transcript beside it — the word being said marked, a click on a word seeks there, a selection shows its
in and out timecodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.live_server import LiveServerFactory, wait_until
from fixtures.page import bearer_token, look, sign_in
from fixtures.speech import Speech, speech_video
from fixtures.uploads import upload

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_captions_show_on_the_player_and_the_transcript_seeks_and_selects(
    live_server_factory: LiveServerFactory, page: Any, short_speech: Speech, tmp_path: Path
) -> None:
    server = live_server_factory(proxy_heights=[360])
    _, headers = server.create_user()
    http = httpx.Client(base_url=server.url, timeout=30)
    video = speech_video(short_speech, tmp_path / "briefing.mp4")
    asset_id = upload(http, headers, video, mime_type="video/mp4")["assetId"]

    def ready() -> bool:
        status = http.get(f"/api/assets/{asset_id}/status", headers=headers).json()["data"]
        assert status["processingStatus"] != "FAILED", status
        return bool(status["processingStatus"] == "READY")

    wait_until(ready, timeout=180, interval=0.2)
    page.route(lambda url: not url.startswith(server.url), lambda route: route.abort())  # no CDN, nothing else
    sign_in(page, server, bearer_token(headers))
    page.goto(f"{server.url}/assets/{asset_id}")
    viewer = page.locator("#viewer")
    player = viewer.locator("video.player")
    words = viewer.locator(".transcript-text .word")
    words.first.wait_for(timeout=30_000)
    assert viewer.locator(".player-row.with-transcript").count() == 1

    # Captions: off until the CC button is pressed; then the cue under the play head is on the picture.
    toggle = viewer.get_by_role("button", name="Captions")
    assert toggle.get_attribute("aria-pressed") == "false"
    toggle.click()
    assert toggle.get_attribute("aria-pressed") == "true"
    hospital = next(word for word in short_speech.words if word.text == "hospital")
    page.wait_for_function(
        """([video, at]) => {
            const track = [...video.textTracks].find((t) => t.kind === "captions");
            if (!track || track.mode !== "showing") return false;
            if (Math.abs(video.currentTime - at) > 0.05) { video.currentTime = at; return false; }
            return track.activeCues && track.activeCues.length > 0;
        }""",
        arg=[player.element_handle(), hospital.start + 0.1],
        timeout=30_000,
    )
    cue = player.evaluate("(v) => [...v.textTracks].find((t) => t.kind === 'captions').activeCues[0].text")
    assert "hospital" in cue.lower()

    # A click on a word seeks to where it is said, and marks it.
    target = words.filter(has_text="window").first
    target.click()
    at = player.evaluate("(v) => v.currentTime")
    window = next(word for word in short_speech.words if word.text == "window")
    assert abs(at - window.start) <= 0.3, (at, window.start)
    wait_until(lambda: "current" in (target.get_attribute("class") or ""), timeout=5)

    # Playing moves the mark along the words.
    player.evaluate("(v) => { v.muted = true; return v.play(); }")
    page.wait_for_function(
        "() => { const w = document.querySelector('.transcript-text .word.current'); "
        "return w && !w.textContent.includes('window'); }",
        timeout=10_000,
    )
    player.evaluate("(v) => v.pause()")

    # Selecting words (a drag across them) shows the span's in and out points.
    first, last = words.filter(has_text="brother").first, words.filter(has_text="hospital").first
    first_box, last_box = first.bounding_box(), last.bounding_box()
    page.mouse.move(first_box["x"] + 2, first_box["y"] + first_box["height"] / 2)
    page.mouse.down()
    page.mouse.move(last_box["x"] + last_box["width"] - 2, last_box["y"] + last_box["height"] / 2, steps=8)
    page.mouse.up()
    selection = viewer.locator(".transcript-selection")
    wait_until(lambda: selection.inner_text().startswith("In "), timeout=5)
    span_in, span_out = float(selection.get_attribute("data-in")), float(selection.get_attribute("data-out"))
    brother = next(word for word in short_speech.words if word.text == "brother")
    assert abs(span_in - brother.start) <= 0.3 and abs(span_out - hospital.end) <= 0.5, (span_in, span_out)
    assert "· Out " in selection.inner_text()

    player.evaluate(f"(v) => {{ v.currentTime = {hospital.start + 0.1}; }}")
    page.wait_for_function(
        "(v) => { const t = [...v.textTracks].find((t) => t.kind === 'captions');"
        " return t.activeCues && t.activeCues.length > 0; }",
        arg=player.element_handle(),
    )
    look(page, server, "transcript")

    # Search by what is said: the library row says where, and its link plays from there.
    page.goto(f"{server.url}/?q=works+at+the+local+hospital")
    said = page.locator("#assets-body .spoken-match")
    said.wait_for()
    assert said.inner_text().startswith("Said at 0:") and "hospital" in said.inner_text()
    look(page, server, "transcript-search")
    said.click()
    works = next(word for word in short_speech.words if word.text == "works")
    page.wait_for_function(
        "([video, at]) => video.readyState >= 1 && Math.abs(video.currentTime - at) < 0.35",
        arg=[page.locator("#viewer video.player").element_handle(), works.start],
        timeout=15_000,
    )
