"""The OpenAPI document describes the errors the server really answers with: the envelope, not FastAPI's
`{detail: [...]}`, and schema names a client generator can use."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from conftest import Users
from mediaingest.api.errors import error_codes

# One request per route that validates its input, each invalid in the way clients most often get wrong.
INVALID_REQUESTS = [
    ("post", "/api/assets/upload-url", {"json": []}),
    ("post", "/api/assets/upload-url", {"json": {"filename": "a.mp4", "mimeType": "video/mp4", "fileSize": "5"}}),
    ("post", "/api/assets/upload-url", {"json": {"file_name": "a.mp4", "file_size": 5, "mime_type": "video/mp4"}}),
    ("post", "/api/assets/confirm-upload", {"json": {}}),
    ("post", "/api/assets/confirm-upload", {"json": {"asset_id": "x", "etag": "y"}}),
    ("get", "/api/assets", {"params": {"page": 0}}),
    ("get", "/api/assets", {"params": {"pageSize": 101}}),
    ("put", "/api/webhook", {"json": {"url": 5}}),
    ("get", "/api/webhook/deliveries", {"params": {"limit": 0}}),
]


@pytest.fixture
def spec(client: TestClient) -> dict[str, Any]:
    document: dict[str, Any] = client.get("/openapi.json").json()
    return document


def _documented_schema(spec: dict[str, Any], method: str, path: str, status: int) -> dict[str, Any]:
    answer = spec["paths"][path][method]["responses"][str(status)]
    schema = answer["content"]["application/json"]["schema"]
    # Refs are "#/components/...": resolvable when the components ride along at the schema's root.
    return {**schema, "components": spec["components"]}


def test_every_documented_422_is_the_envelope(spec: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    documented = [
        (method, path, operation["responses"]["422"])
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if "422" in operation["responses"]
    ]
    assert documented
    for method, path, answer in documented:
        schema = answer["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, (method, path)


def test_schema_names_are_readable(spec: dict[str, Any]) -> None:
    unreadable = [name for name in spec["components"]["schemas"] if "__" in name or name.endswith("_")]
    assert not [name for name in unreadable if not name.startswith("Envelope_")], unreadable
    assert not [name for name in unreadable if "dict_" in name or "Union" in name], unreadable


@pytest.mark.parametrize(("method", "path", "request_args"), INVALID_REQUESTS)
def test_invalid_requests_are_answered_as_documented(
    client: TestClient, users: Users, spec: dict[str, Any], method: str, path: str, request_args: dict[str, Any]
) -> None:
    _, headers = users.create()
    response = client.request(method, path, headers=headers, **request_args)
    assert response.status_code == 422, response.text
    jsonschema.validate(response.json(), _documented_schema(spec, method, path, 422))
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert f"`{error['code']}`" in spec["info"]["description"]
    assert error["details"]["errors"], "each invalid field is named"


@pytest.mark.parametrize(("method", "path"), [("get", "/api/assets/{asset_id}"), ("delete", "/api/assets/{asset_id}")])
def test_unknown_asset_is_answered_as_documented(
    client: TestClient, users: Users, spec: dict[str, Any], method: str, path: str
) -> None:
    _, headers = users.create()
    response = client.request(method, path.format(asset_id="no-such-asset"), headers=headers)
    assert response.status_code == 404
    jsonschema.validate(response.json(), _documented_schema(spec, method, path, 404))


def test_missing_credentials_are_answered_as_documented(client: TestClient, spec: dict[str, Any]) -> None:
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if "401" not in operation["responses"] or "{" in path:
                continue
            response = client.request(method, path)
            assert response.status_code == 401, (method, path)
            assert f"`{response.json()['error']['code']}`" in spec["info"]["description"]
            jsonschema.validate(response.json(), _documented_schema(spec, method, path, 401))


def test_not_found_is_documented_only_where_an_asset_is_named(spec: dict[str, Any]) -> None:
    documented = {
        (method, path)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if "404" in operation["responses"]
    }
    assert documented == {
        ("post", "/api/assets/confirm-upload"),
        ("get", "/api/assets/{asset_id}"),
        ("delete", "/api/assets/{asset_id}"),
        ("get", "/api/assets/{asset_id}/status"),
        ("get", "/api/assets/{asset_id}/upload"),
        ("post", "/api/assets/{asset_id}/upload/parts"),
        ("post", "/api/assets/{asset_id}/upload/abort"),
        ("get", "/api/assets/{asset_id}/events"),
        ("get", "/api/assets/{asset_id}/hls/{name}"),
        ("get", "/api/assets/{asset_id}/frame"),
        ("get", "/api/assets/{asset_id}/filmstrip"),
        ("post", "/api/assets/{asset_id}/clips"),
    }


def test_error_codes_are_listed_with_their_status(spec: dict[str, Any]) -> None:
    description = spec["info"]["description"]
    for status, code, meaning in error_codes():
        assert f"| {status} | `{code}` | {meaning} |" in description
        assert meaning, code
    listed = {code for _, code, _ in error_codes()}
    assert {"unauthorized", "not_found", "validation_error", "quota_exceeded", "body_too_large"} <= listed
    # Ingestion failures are reported on the job, never as an answer.
    assert not {"processing_failed", "media_unreadable"} & listed


def test_snake_case_bodies_are_refused_naming_the_camel_case_field(client: TestClient, users: Users) -> None:
    _, headers = users.create()
    body = {"file_name": "a.mp4", "file_size": 5, "mime_type": "video/mp4"}
    response = client.post("/api/assets/upload-url", json=body, headers=headers)
    assert response.status_code == 422
    named = {problem["field"] for problem in response.json()["error"]["details"]["errors"]}
    assert named == {"fileName", "fileSize", "mimeType"}
