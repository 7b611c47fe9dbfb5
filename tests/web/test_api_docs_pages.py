"""/docs and /redoc render in chromium with every request to another origin refused (a closed network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fixtures.live_server import LiveServer

pytestmark = [pytest.mark.browser]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _offline(page: Any, server: LiveServer) -> list[str]:
    """Refuses, and records, every request that leaves the service's own origin."""
    refused: list[str] = []

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if url.startswith(server.url + "/") or url.startswith(("data:", "blob:")):
            request_route.continue_()
        else:
            refused.append(url)
            request_route.abort()

    page.route("**/*", route)
    return refused


def test_swagger_ui_renders_every_route_offline(live_server: LiveServer, page: Any) -> None:
    refused = _offline(page, live_server)
    page.goto(live_server.url + "/docs")
    page.locator(".swagger-ui .info .title", has_text="mediaingest").wait_for()
    page.locator(".opblock-summary-path", has_text="/api/assets/upload-url").first.wait_for()
    assert page.get_by_text("Unable to render this definition").count() == 0
    assert page.locator(".opblock").count() >= 10
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(ARTIFACTS / f"docs-swagger-{width}.png"))
    assert refused == []


def test_redoc_renders_offline(live_server: LiveServer, page: Any) -> None:
    refused = _offline(page, live_server)
    console: list[str] = []  # a request the CSP blocks never reaches the route: it shows here
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    page.goto(live_server.url + "/redoc")
    page.locator("h1", has_text="mediaingest").wait_for()
    page.get_by_role("menuitem").first.wait_for()
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(ARTIFACTS / f"docs-redoc-{width}.png"))
    assert refused == []
    assert console == []
