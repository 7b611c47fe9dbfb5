"""/docs and /redoc work on a network with no internet: every file they load comes from this service."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from conftest import Users
from mediaingest.api.docs import ASSETS_PATH


def _referenced_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_reference_pages_load_nothing_from_another_origin(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    urls = _referenced_urls(response.text)
    assert urls, "the page references its script and the OpenAPI document"
    assert all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    assert "default-src 'self'" in response.headers["content-security-policy"]
    for url in urls:
        if url.startswith(ASSETS_PATH):
            asset = client.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 1000, url


def test_swagger_ui_is_version_5_which_renders_openapi_3_1(client: TestClient) -> None:
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
    bundle = client.get(f"{ASSETS_PATH}/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("text/javascript")
    # Swagger UI 4 answers "Unable to render this definition" for 3.1; 5 renders it.
    version = re.search(r'PACKAGE_VERSION:"(\d+)\.\d+\.\d+"', bundle.text)
    assert version is not None and int(version.group(1)) >= 5


@pytest.mark.parametrize("name", ["__init__.py", "core.py", "..%2Fcore.py", "missing.js"])
def test_only_the_named_files_are_served(client: TestClient, name: str) -> None:
    response = client.get(f"{ASSETS_PATH}/{name}")
    assert response.status_code == 404
    assert response.json()["success"] is False


def test_the_upload_example_swagger_offers_is_a_request_the_service_takes(client: TestClient, users: Users) -> None:
    """ "Try it out" starts from the schema's example: it must not be `"mimeType": "string"`."""
    _, headers = users.create()
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    example = schemas["UploadUrlRequest"]["examples"][0]
    assert client.post("/api/assets/upload-url", json=example, headers=headers).status_code == 201
    assert schemas["UploadUrlRequest"]["properties"]["mimeType"]["examples"] == ["video/mp4"]
    assert schemas["SignPartsRequest"]["examples"][0]["parts"][0] == {"partNumber": 1}
