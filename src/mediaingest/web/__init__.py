"""The page at `/`: plain HTML, CSS and native ES modules served as they are (no build step, no CDN).

    GET /                 index.html
    GET /assets/{id}      index.html too: an asset's page has an address (the page's router shows it)
    GET /ui/{file}        the page's modules (main.js imports the rest) and app.css
    GET /ui/vendor/{file} Uppy (sends the bytes), hls.js (loaded only to play HLS) and axe-core (the
                          accessibility check the browser tests run): pinned releases, each with its licence

The page talks to the same /api routes as every client, with the token the person signs in with (kept
in sessionStorage, so it ends with the tab), and sends the bytes straight to the signed storage URLs.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse

from mediaingest.exceptions import NotFoundError

WEB_DIR = Path(__file__).resolve().parent

# script-src 'self' with no inline script is what stops injected markup from running; media, images and
# uploads go to the storage's own origin (S3, or this service for the local backend), hence `*` there.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src * data: blob:; media-src * blob:; "
    "connect-src *; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


# hls.js, pinned: the light ES-module build of the npm package (no alternate audio, subtitles or DRM,
# which proxies do not have), checked against this digest by the tests.
HLS_JS_VERSION = "1.7.4"
HLS_JS_SHA256 = "3d82a88cf9ae0d9aaab3cbe9ff6ecbb64bb89c54a399c34ae9bf8b559baeb20f"

# Uppy, pinned: the bundle of the npm package `uppy` (core, the AwsS3 plugin driven by our own endpoints
# for parts, listing and completion, and Golden Retriever, which keeps uploads across a reload). Release
# 5.2.4 because Uppy 6's AwsS3 speaks the S3 API from the browser (it creates, lists and completes
# multipart uploads itself on URLs that carry no signed headers), where our server completes and
# verifies every upload and signs checksums and conditions into each URL.
UPPY_VERSION = "5.2.4"
UPPY_SHA256 = "e06d4c76ff37277f64ebb19986b85bb1de50f02b2fcaa84017ca523d6655a10a"

# axe-core (MPL-2.0), pinned: the npm package's axe.min.js, injected by the browser tests only (the page never
# loads it), checked against this digest by the tests.
AXE_CORE_VERSION = "4.14.1"
AXE_CORE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}

# Served by name, not as a directory: nothing else in this package (its Python files) is reachable.
_PAGE_FILES = {path.name: path for path in WEB_DIR.iterdir() if path.suffix in (".js", ".css")}
_VENDOR_FILES = {path.name: path for path in (WEB_DIR / "vendor").iterdir() if path.suffix in (".js", ".mjs")}


def _serve(files: dict[str, Path], name: str) -> FileResponse:
    path = files.get(name)
    if path is None:
        raise NotFoundError("no such file")
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=_PAGE_HEADERS)


def mount_web(app: FastAPI) -> None:
    def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

    app.get("/", include_in_schema=False)(index)
    app.get("/assets/{asset_id}", include_in_schema=False)(index)  # the page checks the id, via the API

    @app.get("/ui/{name}", include_in_schema=False)
    def page_file(name: str) -> FileResponse:
        return _serve(_PAGE_FILES, name)

    @app.get("/ui/vendor/{name}", include_in_schema=False)
    def vendor_file(name: str) -> FileResponse:
        return _serve(_VENDOR_FILES, name)
