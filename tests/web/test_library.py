"""The library on the page: search by name, filters, order and pages beyond the first, with a poster and
a duration on each row, at 1280 and 390 px wide without sideways scrolling."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.live_server import LiveServerFactory, wait_until
from fixtures.page import ARTIFACTS, bearer_token, sign_in
from fixtures.uploads import upload

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_search_filter_sort_and_page_the_library(
    live_server_factory: LiveServerFactory, page: Any, small_jpeg: Path, small_video: Path, tmp_path: Path
) -> None:
    server = live_server_factory()
    _, headers = server.create_user()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for number in range(22):
            named = tmp_path / f"still-{number:02d}.jpg"
            shutil.copy(small_jpeg, named)
            upload(http, headers, named, mime_type="image/jpeg")
        interview = tmp_path / "interview.mp4"
        shutil.copy(small_video, interview)
        upload(http, headers, interview, mime_type="video/mp4")
        wait_until(
            lambda: (
                http.get("/api/assets", params={"processingStatus": "READY", "pageSize": 1}, headers=headers).json()[
                    "data"
                ]["total"]
                == 23
            ),
            timeout=180,
            interval=0.5,
        )
    sign_in(page, server, bearer_token(headers))
    rows = page.locator("#assets-body tr")
    wait_until(lambda: rows.count() == 20, timeout=10)
    assert page.locator("#page-info").inner_text() == "Page 1 of 2 · 23 assets"
    first = rows.first
    assert first.locator("th").inner_text() == "interview.mp4"  # newest first
    assert first.locator("td").nth(1).inner_text() == "0:02"  # its duration
    poster = first.locator("img.row-poster")
    wait_until(lambda: poster.evaluate("img => img.complete && img.naturalWidth") > 0, timeout=10)

    page.locator("#page-next").click()
    wait_until(lambda: rows.count() == 3, timeout=10)
    assert page.locator("#page-info").inner_text() == "Page 2 of 2 · 23 assets"

    page.locator("#library-search").fill("STILL-1")  # any case, anywhere in the name
    wait_until(lambda: rows.count() == 10, timeout=10)
    assert page.locator("#library-pager").is_hidden()  # back to page 1, and one page is all
    page.locator("#library-search").fill("")
    page.locator("#library-type").select_option("VIDEO")
    wait_until(lambda: rows.count() == 1, timeout=10)
    page.locator("#library-status").select_option("FAILED")
    wait_until(lambda: rows.count() == 0, timeout=10)
    assert page.locator("#assets-empty").inner_text() == "No asset matches."
    page.locator("#library-status").select_option("")
    page.locator("#library-type").select_option("")
    page.locator("#library-sort").select_option("name")
    # Newest first also starts with interview.mp4: wait for the order by name itself (and its address).
    wait_until(lambda: rows.count() == 20 and rows.nth(1).locator("th").inner_text() == "still-00.jpg", timeout=10)
    assert rows.first.locator("th").inner_text() == "interview.mp4"
    assert page.url.endswith("/?sort=name")

    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.locator("#assets-title").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / f"library-{width}.png"))
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"the page scrolls sideways at {width} px"
        table_overflow = page.evaluate("(() => { const w = document.querySelector('.table-wrap'); "
                                       "return w.scrollWidth - w.clientWidth; })()")  # fmt: skip
        assert table_overflow <= 0, f"the library scrolls sideways at {width} px"
