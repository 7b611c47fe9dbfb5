"""Requests are bounded before anything is parsed or authenticated, and every bound answers precisely."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from conftest import Users


def _error(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == code
    return body["error"]


def test_oversized_body_is_refused_before_authentication(client: TestClient) -> None:
    """No token at all: a body over the limit is answered 413 (not 401), by its declared length."""
    limit = client.app.state.settings.max_request_body_bytes  # type: ignore[attr-defined]
    body = b'{"fileName": "' + b"a" * limit + b'"}'
    response = client.post("/api/assets/upload-url", content=body, headers={"Content-Type": "application/json"})
    error = _error(response, 413, "body_too_large")
    assert error["details"]["limit"] == limit


def test_chunked_body_is_counted_while_it_arrives(client: TestClient, users: Users) -> None:
    """Without Content-Length the body is counted as it is read, and reading stops at the limit."""
    _, headers = users.create()
    limit = client.app.state.settings.max_request_body_bytes  # type: ignore[attr-defined]
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(limit // 65536 + 50):
            sent += 65536
            yield b" " * 65536

    response = client.post(
        "/api/assets/confirm-upload", content=chunks(), headers={**headers, "Content-Type": "application/json"}
    )
    _error(response, 413, "body_too_large")


def test_body_under_the_limit_still_works(client: TestClient, users: Users) -> None:
    _, headers = users.create()
    response = client.post(
        "/api/assets/upload-url",
        json={"fileName": "a.mp4", "fileSize": 10, "mimeType": "video/mp4"},
        headers=headers,
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("page", ["10000000000000000000", "100001", "0", "-1"])
def test_page_out_of_bounds_is_422(client: TestClient, users: Users, page: str) -> None:
    _, headers = users.create()
    error = _error(client.get("/api/assets", params={"page": page}, headers=headers), 422, "validation_error")
    assert error["details"]["errors"][0]["field"] == "page"


@pytest.mark.parametrize("size", ["0", "101", "99999999999999999999999"])
def test_page_size_out_of_bounds_is_422(client: TestClient, users: Users, size: str) -> None:
    _, headers = users.create()
    _error(client.get("/api/assets", params={"pageSize": size}, headers=headers), 422, "validation_error")


def test_last_allowed_page_answers_empty(client: TestClient, users: Users) -> None:
    _, headers = users.create()
    response = client.get("/api/assets", params={"page": 100_000, "pageSize": 100}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["items"] == []


def test_method_not_allowed_keeps_the_allow_header(client: TestClient) -> None:
    response = client.put("/api/assets/upload-url")
    _error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("field", "value"),
    [("fileSize", True), ("fileSize", "10"), ("fileSize", 10.5), ("fileName", 7), ("mimeType", ["video/mp4"])],
)
def test_request_bodies_are_strict_about_types(client: TestClient, users: Users, field: str, value: object) -> None:
    _, headers = users.create()
    body = {"fileName": "a.mp4", "fileSize": 10, "mimeType": "video/mp4", field: value}
    error = _error(client.post("/api/assets/upload-url", json=body, headers=headers), 422, "validation_error")
    assert error["details"]["errors"][0]["field"] == field


def test_confirm_part_numbers_must_be_integers(client: TestClient, users: Users) -> None:
    _, headers = users.create()
    body = {"assetId": "x", "parts": [{"partNumber": "1", "etag": "abc"}]}
    _error(client.post("/api/assets/confirm-upload", json=body, headers=headers), 422, "validation_error")
