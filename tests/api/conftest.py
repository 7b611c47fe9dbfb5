"""The API on either storage backend: each module defines `backend_settings` (parametrized over
"local" and "s3"), and gets the app and the HTTP client that reaches its signed URLs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from mediaingest.api import create_app
from mediaingest.config import Settings


@pytest.fixture
def api(backend_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(backend_settings, configure_logs=False)) as client:
        yield client


@pytest.fixture
def http(api: TestClient, backend_settings: Settings) -> Iterator[httpx.Client | TestClient]:
    """Local URLs are served by the app itself; S3 URLs by moto, over the wire."""
    if backend_settings.storage_backend == "local":
        yield api
        return
    with httpx.Client(timeout=30) as client:
        yield client
