"""Completion webhooks: the endpoint, the outbox, the claim, and real signed deliveries to a loopback server."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import SettingsFactory, Users
from fixtures.live_server import LiveServerFactory, wait_for_status, wait_until
from fixtures.uploads import upload
from mediaingest.catalog import REGISTRY
from mediaingest.db import session_scope, utcnow
from mediaingest.models import MediaAsset, User, WebhookDelivery, WebhookDeliveryStatus
from mediaingest.models.enums import MediaType
from mediaingest.tasks import queue
from mediaingest.tasks.maintenance import REAP
from mediaingest.tasks.registry import TaskRun
from mediaingest.webhooks import signing
from mediaingest.webhooks.delivery import new_delivery
from mediaingest.webhooks.service import ASSET_READY, record_asset_event, set_webhook
from mediaingest.worker.loop import Worker

FAST = {"webhook_timeout_seconds": 2, "webhook_backoff_base_seconds": 0.2, "webhook_allow_private_networks": True}


@pytest.fixture
def runner_for(make_settings: SettingsFactory) -> Iterator[Any]:
    """A runner of the default queue (deliveries), with these settings, that the test drives."""
    runners: list[Worker] = []

    def build(**overrides: Any) -> Worker:
        runner = Worker.from_settings(make_settings(**overrides), tasks=REGISTRY, queues=["default"])
        runners.append(runner)
        return runner

    yield build
    for runner in runners:
        runner.ctx.close()


# --- a receiver on loopback ----------------------------------------------------------------------------
@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each POST with the next scripted status (the last one repeats); records what came."""

    answers: list[int] = field(default_factory=lambda: [200])
    delay_seconds: float = 0.0
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        wait_until(lambda: len(self.requests) >= count, timeout=timeout, message=f"{count} deliveries expected")
        return self.requests


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                index = len(state.requests)
                state.requests.append(Received(headers=dict(self.headers.items()), body=body))
            time.sleep(state.delay_seconds)
            status = state.answers[min(index, len(state.answers) - 1)]
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/mediaingest?source=test"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


# --- the endpoint ----------------------------------------------------------------------------------------
def test_webhook_endpoint_sets_rotates_reads_and_clears(client: TestClient, users: Users) -> None:
    _, headers = users.create()
    assert client.get("/api/webhook").status_code == 401
    assert client.get("/api/webhook", headers=headers).json()["data"] == {
        "url": None, "hasSecret": False, "secretCreatedAt": None,
    }  # fmt: skip

    first = client.put("/api/webhook", json={"url": "https://hooks.example.com/in?x=1"}, headers=headers)
    assert first.status_code == 200, first.text
    data = first.json()["data"]
    assert data["url"] == "https://hooks.example.com/in?x=1" and data["hasSecret"] is True
    assert data["secret"].startswith("whsec_") and len(data["secret"]) > 40

    shown = client.get("/api/webhook", headers=headers).json()["data"]
    assert shown["url"] == data["url"] and shown["hasSecret"] is True
    assert "secret" not in shown  # shown once, when set

    again = client.put("/api/webhook", json={"url": "http://127.0.0.1:9000/hook"}, headers=headers).json()["data"]
    assert again["secret"] != data["secret"]  # setting again rotates

    cleared = client.delete("/api/webhook", headers=headers)
    assert cleared.status_code == 200
    assert client.get("/api/webhook", headers=headers).json()["data"]["url"] is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/hook", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("https:///nohost", "host"),
        ("https://user:pass@example.com/hook", "credentials"),
        ("https://example.com/hook#frag", "fragment"),
        ("https://exa mple.com/", "whitespace"),
        ("https://example.com:99999/", "valid URL"),
        ("https://example.com/" + "a" * 2100, None),
    ],
)
def test_webhook_url_must_be_plain_http_or_https(
    client: TestClient, users: Users, url: str, reason: str | None
) -> None:
    _, headers = users.create()
    response = client.put("/api/webhook", json={"url": url}, headers=headers)
    assert response.status_code == 422, response.text
    if reason:
        assert reason in response.json()["error"]["message"]
    assert client.get("/api/webhook", headers=headers).json()["data"]["url"] is None


def test_webhooks_are_per_user(client: TestClient, users: Users) -> None:
    _, alice = users.create()
    _, bob = users.create()
    client.put("/api/webhook", json={"url": "https://alice.example.com/hook"}, headers=alice)
    assert client.get("/api/webhook", headers=bob).json()["data"]["url"] is None
    assert client.get("/api/webhook/deliveries", headers=bob).json()["data"] == []


# --- signatures ----------------------------------------------------------------------------------------
def test_signature_verifies_and_rejects_tampering_replays_and_other_secrets() -> None:
    body = b'{"type":"asset.ready"}'
    now = 1_800_000_000
    header = signing.signature_header("whsec_a", body, timestamp=now)
    # The documented scheme, computed independently: hex HMAC-SHA256 of "{t}.{body}".
    expected = hmac.new(b"whsec_a", f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    assert header == f"t={now},v1={expected}"
    assert signing.verify("whsec_a", header, body, now=now + 10) == now
    for secret, signed_body, at, bad_header in [
        ("whsec_b", body, now, header),  # another secret
        ("whsec_a", body + b" ", now, header),  # another body
        ("whsec_a", body, now + 301, header),  # too old: a replay
        ("whsec_a", body, now, header.replace(f"t={now}", f"t={now + 1}")),  # timestamp moved
        ("whsec_a", body, now, "v1=abc"),  # malformed
        ("whsec_a", body, now, None),
    ]:
        with pytest.raises(signing.SignatureMismatchError):
            signing.verify(secret, bad_header, signed_body, now=at)


# --- the outbox ----------------------------------------------------------------------------------------
def _asset(session: Any, owner_id: str) -> MediaAsset:
    now = utcnow()
    asset = MediaAsset(
        owner_id=owner_id, name="a.mp4", original_name="a.mp4", type=MediaType.VIDEO, file_size=10,
        mime_type="video/mp4", storage_bucket="incoming", storage_key=f"k/{now.timestamp()}-{id(session)}",
        upload_expires_at=now + timedelta(hours=1),
    )  # fmt: skip
    session.add(asset)
    session.flush()
    return asset


def test_event_is_recorded_only_with_the_transaction_and_only_once(users: Users) -> None:
    user_id, _ = users.create()
    other_id, _ = users.create()
    factory = users.session_factory
    with session_scope(factory) as session:
        set_webhook(session, user_id=user_id, url="https://example.com/hook")
        asset_id = _asset(session, user_id).id
        silent_id = _asset(session, other_id).id  # a user without a webhook

    # The status change rolls back: so does its announcement.
    with factory() as session:
        assert record_asset_event(session, session.get(MediaAsset, asset_id), ASSET_READY) is not None
        session.rollback()
    with session_scope(factory) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(WebhookDelivery)) == 0
        first = record_asset_event(session, session.get(MediaAsset, asset_id), ASSET_READY)
        again = record_asset_event(session, session.get(MediaAsset, asset_id), ASSET_READY)
        assert first is not None and again is None
        assert record_asset_event(session, session.get(MediaAsset, silent_id), ASSET_READY) is None
    with session_scope(factory) as session:
        [row] = session.scalars(sa.select(WebhookDelivery)).all()
        assert (row.asset_id, row.event, row.status, row.url) == (
            asset_id, "asset.ready", WebhookDeliveryStatus.PENDING, "https://example.com/hook",
        )  # fmt: skip
        assert row.payload["id"] == row.id and row.payload["data"]["asset"]["id"] == asset_id


def _pending_deliveries(factory: Any, user_id: str, count: int, *, url: str, max_attempts: int = 8) -> list[str]:
    with session_scope(factory) as session:
        # As if registered while its DNS still pointed elsewhere: each delivery checks it again.
        set_webhook(session, user_id=user_id, url=url, allow_private=True)
        ids = []
        for index in range(count):
            row = new_delivery(
                session, user_id=user_id, asset_id=f"asset-{index}", event="asset.ready", url=url,
                payload={"id": "x", "type": "asset.ready", "data": {"n": index}}, max_attempts=max_attempts,
            )  # fmt: skip
            ids.append(row.id)
    return ids


def test_a_delivery_whose_runner_died_is_sent_again(users: Users, receiver: Receiver, runner_for: Any) -> None:
    """At least once, never lost: the dead runner's lease lapses, the reaper queues it again."""
    user_id, _ = users.create()
    [delivery_id] = _pending_deliveries(users.session_factory, user_id, 1, url=receiver.url)
    runner = runner_for(**FAST, worker_lease_seconds=1)
    with session_scope(users.session_factory) as session:  # claimed by a runner that then dies
        queue.claim(session, worker_id="dead", queues=["default"], limit=1, lease_seconds=0.05, now=utcnow())
    time.sleep(0.2)
    assert runner.run_due() == 0  # still leased to the dead runner until the reaper runs
    REGISTRY[REAP].function(runner.ctx, TaskRun("r", REAP, {}, 1, 1, "reaper"))
    assert runner.run_due() == 1
    [received] = receiver.wait_for(1)
    assert received.headers[signing.ATTEMPT_HEADER] == "2"  # the dead runner's attempt counted
    with session_scope(users.session_factory) as session:
        row = session.get(WebhookDelivery, delivery_id)
        assert row is not None and row.status == WebhookDeliveryStatus.DELIVERED


def test_failing_receiver_is_retried_until_max_attempts_then_failed(
    users: Users, receiver: Receiver, runner_for: Any
) -> None:
    receiver.answers = [503]
    user_id, _ = users.create()
    [delivery_id] = _pending_deliveries(users.session_factory, user_id, 1, url=receiver.url, max_attempts=3)
    runner = runner_for(**FAST)
    for _ in range(3):
        wait_until(runner.run_due, timeout=5, interval=0.05)
    assert len(receiver.requests) == 3
    assert [r.headers[signing.ATTEMPT_HEADER] for r in receiver.requests] == ["1", "2", "3"]
    assert {r.headers[signing.DELIVERY_HEADER] for r in receiver.requests} == {delivery_id}
    with session_scope(users.session_factory) as session:
        row = session.get(WebhookDelivery, delivery_id)
        assert row is not None
        assert (row.status, row.attempts, row.last_status_code) == (WebhookDeliveryStatus.FAILED, 3, 503)
        assert [entry["statusCode"] for entry in row.attempt_log] == [503, 503, 503]
        assert row.delivered_at is None


def test_timeouts_are_recorded_and_retried_with_backoff(users: Users, receiver: Receiver, runner_for: Any) -> None:
    receiver.delay_seconds = 1.0
    user_id, _ = users.create()
    [delivery_id] = _pending_deliveries(users.session_factory, user_id, 1, url=receiver.url)
    runner = runner_for(
        webhook_timeout_seconds=0.3, webhook_backoff_base_seconds=60, webhook_allow_private_networks=True
    )
    assert runner.run_due() == 1
    assert runner.run_due() == 0  # not due again before its backoff
    with session_scope(users.session_factory) as session:
        row = session.get(WebhookDelivery, delivery_id)
        assert row is not None
        assert row.status == WebhookDeliveryStatus.PENDING and row.attempts == 1
        assert row.last_error == "timed out after 0.3 s" and row.last_status_code is None
        delay = (row.next_attempt_at - row.updated_at).total_seconds()
        assert 60 * 0.8 - 1 <= delay <= 60 * 1.2 + 1


def test_clearing_the_webhook_cancels_waiting_deliveries(client: TestClient, users: Users) -> None:
    user_id, headers = users.create()
    _pending_deliveries(users.session_factory, user_id, 2, url="https://example.com/hook")
    assert client.delete("/api/webhook", headers=headers).status_code == 200
    listed = client.get("/api/webhook/deliveries", headers=headers).json()["data"]
    assert [item["status"] for item in listed] == ["CANCELLED", "CANCELLED"]
    with session_scope(users.session_factory) as session:
        user = session.get(User, user_id)
        assert user is not None and user.webhook_url is None


# --- end to end: the worker announces READY and FAILED --------------------------------------------------
def _verified(received: Received, secret: str) -> dict[str, Any]:
    signing.verify(secret, received.headers.get(signing.SIGNATURE_HEADER), received.body)
    assert received.headers["Content-Type"] == "application/json"
    return json.loads(received.body)


@pytest.mark.slow
def test_ready_asset_is_announced_with_a_signed_post_retried_after_a_500(
    live_server_factory: LiveServerFactory, database_url: str, receiver: Receiver, small_video: Path
) -> None:
    receiver.answers = [500, 200]
    server = live_server_factory(database_url=database_url, **FAST)
    _, headers = server.create_user()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        secret = http.put("/api/webhook", json={"url": receiver.url}, headers=headers).json()["data"]["secret"]
        asset_id = upload(http, headers, small_video, mime_type="video/mp4")["assetId"]
        assert wait_for_status(server, headers, asset_id) == "READY"
        first, second = receiver.wait_for(2)

        bodies = [_verified(first, secret), _verified(second, secret)]
        assert first.body == second.body  # a retry is the same delivery, re-signed
        assert bodies[0]["type"] == "asset.ready" and bodies[0]["data"]["asset"]["id"] == asset_id
        assert bodies[0]["data"]["asset"]["processingStatus"] == "READY"
        assert [r.headers[signing.ATTEMPT_HEADER] for r in (first, second)] == ["1", "2"]
        assert first.headers[signing.EVENT_HEADER] == "asset.ready"
        assert first.headers[signing.DELIVERY_HEADER] == second.headers[signing.DELIVERY_HEADER] == bodies[0]["id"]
        assert first.headers["User-Agent"].startswith("mediaingest-webhooks/")
        with pytest.raises(signing.SignatureMismatchError):
            _verified(first, "whsec_someone-else")

        def delivered() -> dict[str, Any] | None:
            [item] = http.get("/api/webhook/deliveries", headers=headers).json()["data"]
            return item if item["status"] == "DELIVERED" else None

        item = wait_until(delivered, timeout=10)
        assert (item["attempts"], item["lastStatusCode"], item["lastError"]) == (2, 200, None)
        assert item["deliveredAt"] is not None
    with session_scope(server.app.state.session_factory) as session:
        row = session.get(WebhookDelivery, item["id"])
        assert row is not None
        assert [entry["statusCode"] for entry in row.attempt_log] == [500, 200]
        assert row.attempt_log[0]["error"] == "HTTP 500"
    time.sleep(0.5)
    assert len(receiver.requests) == 2  # delivered once, never again


@pytest.mark.slow
def test_failed_asset_is_announced(
    live_server_factory: LiveServerFactory, receiver: Receiver, small_video: Path, tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(small_video.read_bytes()[:64] + bytes(range(256)) * 64)
    server = live_server_factory()
    _, headers = server.create_user()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        secret = http.put("/api/webhook", json={"url": receiver.url}, headers=headers).json()["data"]["secret"]
        asset_id = upload(http, headers, corrupt, mime_type="video/mp4")["assetId"]
        assert wait_for_status(server, headers, asset_id) == "FAILED"
        [received] = receiver.wait_for(1)
    body = _verified(received, secret)
    assert body["type"] == "asset.failed" and received.headers[signing.EVENT_HEADER] == "asset.failed"
    assert body["data"]["asset"]["id"] == asset_id
    assert body["data"]["asset"]["error"].startswith("probe stage failed")


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:{port}/hook", "http://localhost:{port}/hook", "http://169.254.169.254/latest/meta-data/"],
    ids=["loopback", "localhost", "cloud-metadata"],
)
def test_non_public_destinations_are_refused_by_default(
    users: Users, receiver: Receiver, url: str, runner_for: Any
) -> None:
    """A tenant's URL must not reach this machine, the cluster's services or the metadata endpoint."""
    user_id, _ = users.create()
    port = receiver.url.rsplit(":", 1)[1].split("/")[0]
    [delivery_id] = _pending_deliveries(users.session_factory, user_id, 1, url=url.format(port=port))
    assert runner_for(webhook_timeout_seconds=1, webhook_allow_private_networks=False).run_due() == 1
    assert receiver.requests == []
    with session_scope(users.session_factory) as session:
        row = session.get(WebhookDelivery, delivery_id)
        assert row is not None and row.attempts == 1 and row.last_status_code is None
        # Refused once is refused for good: failed at once, with its reason, never retried.
        assert row.status == WebhookDeliveryStatus.FAILED
        assert row.last_error is not None and "is not a public address" in row.last_error
