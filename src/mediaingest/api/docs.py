"""The API reference pages, served with no internet: /docs (Swagger UI) and /redoc (ReDoc).

FastAPI's own pages load Swagger UI, ReDoc, a favicon and Google Fonts from CDNs, so on a closed network they
are blank. These are the same pages with their files taken from the `fastapi-offline` package, which ships
Swagger UI 5 and ReDoc (both render OpenAPI 3.1, the version FastAPI writes; swagger-ui-bundle's Swagger UI 4
cannot), served by name under /docs/assets/.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, Response

from mediaingest.exceptions import NotFoundError

ASSETS_PATH = "/docs/assets"
_ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
# The pages run one inline script (FastAPI's bootstrap); everything else comes from this origin only.
# ReDoc builds its workers from blobs and styles inline, hence blob: and 'unsafe-inline' for styles.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
_PAGE_HEADERS = {"Content-Security-Policy": DOCS_CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff"}
# Immutable for a given package version; the URLs carry no version, so caches revalidate daily.
_ASSET_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=86400"}


def _assets_dir() -> Path:
    return Path(str(files("fastapi_offline").joinpath("static")))


def mount_docs(app: FastAPI) -> None:
    """Call with an app created with `docs_url=None, redoc_url=None` (the CDN pages)."""
    assets_dir = _assets_dir()
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = "/docs/oauth2-redirect"

    def _page(response: HTMLResponse) -> HTMLResponse:
        response.headers.update(_PAGE_HEADERS)
        return response

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _page(
            get_swagger_ui_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} — API reference",
                swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
                oauth2_redirect_url=root + oauth2_redirect_url,
                swagger_ui_parameters=app.swagger_ui_parameters,
            )
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    def swagger_ui_oauth2_redirect() -> HTMLResponse:
        return _page(get_swagger_ui_oauth2_redirect_html())

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _page(
            get_redoc_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} — API reference",
                redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
                with_google_fonts=False,
            )
        )

    # Served by name, not as a directory: only these four files are reachable.
    @app.get(ASSETS_PATH + "/{name}", include_in_schema=False)
    def docs_asset(name: str) -> Response:
        media_type = _ASSET_TYPES.get(name)
        if media_type is None:
            raise NotFoundError("no such file")
        if name == "redoc.standalone.js":
            return Response(_redoc_without_cdn_logo(assets_dir), media_type=media_type, headers=_ASSET_HEADERS)
        return FileResponse(assets_dir / name, media_type=media_type, headers=_ASSET_HEADERS)


# ReDoc's sidebar footer loads its maker's logo from a CDN, which the page's CSP refuses (a console error
# on every visit). With an empty source the image fails at once, and ReDoc then leaves it out.
_REDOC_CDN_LOGO = b'src:"https://cdn.redoc.ly/redoc/logo-mini.svg"'


@functools.cache
def _redoc_without_cdn_logo(assets_dir: Path) -> bytes:
    return (assets_dir / "redoc.standalone.js").read_bytes().replace(_REDOC_CDN_LOGO, b'src:""')
