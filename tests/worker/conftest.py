"""An API on settings the worker tests share: short leases and two rungs, so ingestion is quick."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from conftest import SettingsFactory
from mediaingest.api import create_app
from mediaingest.config import Settings


@pytest.fixture
def ingest_settings(make_settings: SettingsFactory) -> Settings:
    return make_settings(worker_lease_seconds=5, worker_heartbeat_seconds=1, proxy_heights=[360, 720])


@pytest.fixture
def api(ingest_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(ingest_settings, configure_logs=False)) as client:
        yield client
