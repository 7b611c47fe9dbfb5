"""Credentials (API tokens and the main product's JWTs), health, metrics, logs and error hygiene."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import structlog
from fastapi.testclient import TestClient

from conftest import JWT_SECRET, SettingsFactory, Users
from fixtures.uploads import request_upload, upload
from mediaingest.api import create_app
from mediaingest.config import GIB
from mediaingest.db import session_scope, utcnow
from mediaingest.models import ApiToken
from mediaingest.models.enums import Plan
from mediaingest.users.service import hash_token


def _jwt(sub: str, plan: str = "PRO", *, expires_in: int = 300, secret: str = JWT_SECRET) -> str:
    claims = {"sub": sub, "plan": plan, "exp": int(time.time()) + expires_in}
    return jwt.encode(claims, secret, algorithm="HS256")


def test_jwt_users_are_provisioned_with_the_plan_from_their_claim(jwt_client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {_jwt('product-user-42', 'PRO')}"}
    # 10 GB fits a PRO quota but not a USER one: the claim's plan is what counts.
    assert request_upload(jwt_client, headers, size=4 * GIB).status_code == 201
    assert request_upload(jwt_client, headers, size=4 * GIB).status_code == 201
    assert jwt_client.get("/api/assets", headers=headers).json()["data"]["total"] == 2
    downgraded = {"Authorization": f"Bearer {_jwt('product-user-42', 'USER')}"}
    assert request_upload(jwt_client, downgraded, size=GIB).status_code == 413


@pytest.mark.parametrize(
    "token",
    [
        _jwt("u1", expires_in=-10),
        _jwt("u1", secret="another-secret-another-secret-another!"),
        _jwt("u1", plan="PLATINUM"),
        jwt.encode({"sub": "u1"}, JWT_SECRET, algorithm="HS256"),  # no expiry
    ],
    ids=["expired", "wrong-key", "unknown-plan", "no-exp"],
)
def test_bad_jwts_are_401(jwt_client: TestClient, token: str) -> None:
    response = jwt_client.get("/api/assets", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_expired_and_revoked_api_tokens_are_401(client: TestClient, users: Users) -> None:
    _, headers = users.create()
    assert client.get("/api/assets", headers=headers).status_code == 200
    token_hash = hash_token(headers["Authorization"].split()[1])
    with session_scope(users.session_factory) as session:
        record = session.query(ApiToken).filter_by(token_hash=token_hash).one()
        record.expires_at = utcnow()
    assert client.get("/api/assets", headers=headers).json()["error"]["message"] == "token expired"
    with session_scope(users.session_factory) as session:
        record = session.query(ApiToken).filter_by(token_hash=token_hash).one()
        record.expires_at, record.revoked_at = None, utcnow()
    assert client.get("/api/assets", headers=headers).json()["error"]["message"] == "token revoked"


def test_health_readiness_and_metrics(client: TestClient, users: Users, small_video: Path) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "storage": "ok"}}
    _, headers = users.create()
    upload(client, headers, small_video, mime_type="video/mp4")
    request_upload(client, headers, size=10, mime_type="text/plain")
    metrics = client.get("/metrics").text
    assert 'upload_requests_total{endpoint="upload-url",outcome="success"}' in metrics
    assert 'upload_requests_total{endpoint="upload-url",outcome="mime_type_not_allowed"}' in metrics
    assert 'upload_requests_total{endpoint="confirm-upload",outcome="success"}' in metrics
    assert f'storage_usage_bytes{{bucket_role="incoming"}} {float(small_video.stat().st_size)}' in metrics
    assert 'http_request_duration_seconds_bucket{le="0.005",method="POST",route="/api/assets/upload-url"' in metrics
    # The queue as it stands (no worker runs here): the confirmed upload's probe waits on the stages queue.
    assert 'mediaingest_tasks{queue="stages",state="waiting"} 1.0' in metrics
    assert 'mediaingest_tasks_oldest_waiting_seconds{queue="stages"}' in metrics


def test_readiness_reports_but_survives_a_storage_outage(make_settings: SettingsFactory) -> None:
    """A bucket blip must not take every replica out of the Service at once (only the database decides)."""
    settings = make_settings(storage_backend="s3", s3_endpoint_url="http://127.0.0.1:9", aws_access_key_id="k",
                             aws_secret_access_key="s")  # fmt: skip
    client = TestClient(create_app(settings, configure_logs=False))
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json()["status"] == "degraded"
    assert response.json()["checks"]["database"] == "ok"
    assert response.json()["checks"]["storage"].startswith("unavailable")


def test_readiness_fails_when_the_database_is_unreachable(tmp_path: Path) -> None:
    from conftest import build_settings

    settings = build_settings(tmp_path / "var", "postgresql+psycopg://nobody@127.0.0.1:9/none")
    response = TestClient(create_app(settings, configure_logs=False)).get("/readyz")
    assert response.status_code == 503 and response.json()["status"] == "not_ready"
    assert response.json()["checks"]["database"].startswith("unavailable")


def test_storage_outage_is_a_clean_502_and_leaves_no_row(make_settings: SettingsFactory, users: Users) -> None:
    settings = make_settings(
        storage_backend="s3", s3_endpoint_url="http://127.0.0.1:9", aws_access_key_id="AKIAEXAMPLE",
        aws_secret_access_key="very-secret-key", multipart_threshold=1024,
    )  # fmt: skip
    client = TestClient(create_app(settings, configure_logs=False))
    _, headers = users.create(Plan.PRO)
    response = request_upload(client, headers, size=10_000)  # multipart: the store must be asked
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "storage_error"
    assert "very-secret-key" not in response.text and "Traceback" not in response.text
    assert client.get("/api/assets", headers=headers).json()["data"]["total"] == 0


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging replaces the root handlers; later tests must not write to this test's capture."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_logging")
def test_logs_are_json_with_request_user_and_asset_ids_and_no_secrets(
    make_settings: SettingsFactory, users: Users, small_video: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # Configured inside the test, so the log handler writes to the stream capfd captures.
    client = TestClient(create_app(make_settings(log_json=True), configure_logs=True))
    user_id, headers = users.create()
    capfd.readouterr()
    confirmed = upload(client, headers, small_video, mime_type="video/mp4")
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    confirm_events = [line for line in lines if line["event"] == "asset.upload_confirmed"]
    assert confirm_events and confirm_events[0]["asset_id"] == confirmed["assetId"]
    assert confirm_events[0]["user_id"] == user_id and confirm_events[0]["request_id"]
    requests = [line for line in lines if line["event"] == "http.request"]
    assert {line["route"] for line in requests} >= {"/api/assets/upload-url", "/api/assets/confirm-upload"}
    everything = "\n".join(json.dumps(line) for line in lines)
    assert headers["Authorization"].split()[1] not in everything
    assert "X-Mi-Signature" not in everything and "X-Amz-Signature" not in everything


def test_request_id_is_returned_and_a_callers_id_is_kept(client: TestClient) -> None:
    assert len(client.get("/healthz").headers["x-request-id"]) == 32
    assert client.get("/healthz", headers={"X-Request-ID": "trace-abc"}).headers["x-request-id"] == "trace-abc"


def test_unknown_routes_use_the_error_envelope(client: TestClient) -> None:
    response = client.get("/api/nope")
    assert response.status_code == 404
    assert response.json() == {"success": False, "error": {"code": "not_found", "message": "Not Found"}}


def test_an_hs256_token_signed_with_a_jwks_style_key_is_refused(make_settings: SettingsFactory) -> None:
    """Algorithm confusion: with an HMAC secret configured, only HS* tokens verify, and vice versa."""
    from cryptography.hazmat.primitives.asymmetric import ec

    client = TestClient(create_app(make_settings(jwt_secret=JWT_SECRET), configure_logs=False))
    es256 = jwt.encode({"sub": "u1", "exp": int(time.time()) + 60}, ec.generate_private_key(ec.SECP256R1()), "ES256")
    assert client.get("/api/assets", headers={"Authorization": f"Bearer {es256}"}).status_code == 401


def test_the_generated_storage_secret_is_shared_by_every_process(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from mediaingest.config import Settings

    settings = [Settings(_env_file=None, data_dir=tmp_path) for _ in range(8)]  # type: ignore[call-arg]
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda s: s.storage_secret(), settings))
    assert len(secrets) == 1 and len(next(iter(secrets))) >= 48
    assert (tmp_path / "local-storage.secret").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["local-storage.secret"]
