"""Shared fixtures: settings, the app, users and tokens. Real databases, storage and ffmpeg throughout."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from mediaingest.api import create_app
from mediaingest.config import Settings
from mediaingest.db import create_db_engine, create_session_factory, session_scope
from mediaingest.models.enums import Plan
from mediaingest.users.service import create_user, issue_token

pytest_plugins = [
    "fixtures.database",
    "fixtures.media",
    "fixtures.speech",
    "fixtures.s3",
    "fixtures.storage",
    "fixtures.live_server",
    "fixtures.kube",
    "fixtures.browser",
]

SettingsFactory = Callable[..., Settings]


def build_settings(data_dir: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "public_url": "http://testserver",
        "local_storage_secret": "test-local-storage-secret",
        "storage_backend": "local",
        "executor": "local",
        "log_json": True,
        "work_dir": data_dir / "work",
        "worker_concurrency": 1,
        "worker_poll_interval_seconds": 0.1,
        "job_backoff_base_seconds": 0.2,
        "job_backoff_max_seconds": 1.0,
        "webhook_allow_private_networks": True,  # the tests' receivers listen on loopback
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str) -> SettingsFactory:
    def make(**overrides: Any) -> Settings:
        return build_settings(tmp_path / "var", database_url, **overrides)

    return make


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings()


@pytest.fixture
def wire() -> Iterator[httpx.Client]:
    """A plain HTTP client, for what the tests reach over the network (S3 URLs, live servers)."""
    with httpx.Client(timeout=30) as client:
        yield client


JWT_SECRET = "main-product-signing-secret-of-32-bytes!"


@pytest.fixture
def jwt_client(make_settings: SettingsFactory) -> TestClient:
    """The API trusting JWTs signed with JWT_SECRET, as the main product's tokens are."""
    return TestClient(create_app(make_settings(jwt_secret=JWT_SECRET), configure_logs=False))


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, configure_logs=False)) as test_client:
        yield test_client


class Users:
    """Creates tenants directly in the database and hands back their bearer headers."""

    def __init__(self, settings: Settings) -> None:
        self.engine = create_db_engine(settings.resolved_database_url, pool_size=1)
        self.session_factory = create_session_factory(self.engine)

    def create(self, plan: Plan = Plan.USER, email: str | None = None) -> tuple[str, dict[str, str]]:
        import uuid

        with session_scope(self.session_factory) as session:
            user = create_user(session, email=email or f"{uuid.uuid4().hex[:10]}@example.test", plan=plan)
            issued = issue_token(session, user=user)
            return user.id, {"Authorization": f"Bearer {issued.token}"}


@pytest.fixture
def users(settings: Settings) -> Iterator[Users]:
    registry = Users(settings)
    yield registry
    registry.engine.dispose()
