"""Webhook destinations: every IPv4-in-IPv6 form and numeric spelling judged by the address it reaches,
private URLs refused at registration, and deliveries connected to the address that was checked."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import SettingsFactory, Users
from mediaingest.api import create_app
from mediaingest.catalog import REGISTRY
from mediaingest.db import session_scope
from mediaingest.models import WebhookDelivery, WebhookDeliveryStatus
from mediaingest.webhooks.delivery import new_delivery
from mediaingest.webhooks.destinations import RefusedDestination, literal_address, refusal, resolve
from mediaingest.webhooks.service import set_webhook
from mediaingest.worker.loop import Worker

REFUSED_HOSTS = [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0", "100.64.0.1",  # noqa: S104
    "[::1]", "[::]", "[fe80::1]", "[fc00::1]",
    "[::127.0.0.1]",  # IPv4-compatible
    "[::ffff:127.0.0.1]", "[::ffff:a9fe:a9fe]",  # IPv4-mapped
    "[64:ff9b::a9fe:a9fe]", "[64:ff9b::127.0.0.1]", "[64:ff9b:1::a9fe:a9fe]",  # NAT64
    "[2002:7f00:1::]", "[2002:a9fe:a9fe::1]",  # 6to4
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo whose client is 127.0.0.1
    "[::ffff:0:7f00:1]",  # SIIT
    "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.1", "2852039166",  # 169.254.169.254 as decimal
    "224.0.0.1", "[ff02::1]",
]  # fmt: skip


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_non_public_spellings_are_refused(host: str) -> None:
    with pytest.raises(RefusedDestination):
        resolve(f"http://{host}/hook")


@pytest.mark.parametrize("host", ["93.184.216.34", "[2606:2800:220:1:248:1893:25c8:1946]", "[64:ff9b::5db8:d822]",
                                  "1572395042", "[::ffff:5db8:d822]"])  # fmt: skip
def test_public_addresses_in_any_spelling_pass(host: str) -> None:
    destination = resolve(f"https://{host}/hook")
    assert len(destination.addresses) == 1 and destination.port == 443


def test_numeric_spellings_normalize_to_the_address_the_resolver_uses() -> None:
    for spelling in ("2130706433", "0x7f000001", "0177.0.0.1", "127.1"):
        assert literal_address(spelling) == ipaddress.IPv4Address("127.0.0.1")
        assert socket.getaddrinfo(spelling, 80)[0][4][0] == "127.0.0.1"  # what a client would connect to
    assert literal_address("example.com") is None and literal_address("1.2.3.4.5") is None


def test_embedded_addresses_are_named_in_the_reason() -> None:
    reason = refusal(ipaddress.IPv6Address("64:ff9b::a9fe:a9fe"))
    assert reason is not None and "169.254.169.254" in reason


@pytest.mark.parametrize("url", ["http://[::127.0.0.1]/", "http://[64:ff9b::a9fe:a9fe]/", "http://2130706433/x",
                                 "http://localhost:9/hook"])  # fmt: skip
def test_private_urls_are_refused_at_registration(make_settings: SettingsFactory, users: Users, url: str) -> None:
    client = TestClient(create_app(make_settings(webhook_allow_private_networks=False), configure_logs=False))
    _, headers = users.create()
    response = client.put("/api/webhook", json={"url": url}, headers=headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error" and "refused" in error["message"]
    assert client.get("/api/webhook", headers=headers).json()["data"]["url"] is None


def test_an_unresolvable_name_may_be_registered(make_settings: SettingsFactory, users: Users) -> None:
    """Its DNS may not be live yet; each delivery checks it again."""
    client = TestClient(create_app(make_settings(webhook_allow_private_networks=False), configure_logs=False))
    _, headers = users.create()
    response = client.put("/api/webhook", json={"url": "https://hooks.invalid/in"}, headers=headers)
    assert response.status_code == 200, response.text


@pytest.fixture
def host_recorder() -> Iterator[tuple[str, list[str]]]:
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            hosts.append(self.headers["Host"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"{server.server_address[1]}", hosts
    server.shutdown()
    server.server_close()


def test_delivery_connects_to_the_address_it_checked(
    users: Users, host_recorder: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch, make_settings: SettingsFactory
) -> None:
    """DNS rebinding: the name answers 127.0.0.1 once, then an address where nothing listens. The
    delivery resolves once and connects to what it checked, sending the original Host header."""
    port, hosts = host_recorder
    real_getaddrinfo = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            lookups.append(host)
            host = "127.0.0.1" if len(lookups) == 1 else "127.0.0.2"
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    user_id, _ = users.create()
    url = f"http://rebind.test:{port}/hook"
    with session_scope(users.session_factory) as session:
        set_webhook(session, user_id=user_id, url=url, allow_private=True)
        delivery = new_delivery(session, user_id=user_id, asset_id="a" * 36, event="asset.ready", url=url,
                                payload={"x": 1}, max_attempts=3)  # fmt: skip
        delivery_id = delivery.id
    lookups.clear()
    runner = Worker.from_settings(
        make_settings(webhook_allow_private_networks=True), tasks=REGISTRY, queues=["default"]
    )
    assert runner.run_due() == 1
    assert lookups == ["rebind.test"]  # resolved once for the attempt
    assert hosts == [f"rebind.test:{port}"]
    with session_scope(users.session_factory) as session:
        row = session.get(WebhookDelivery, delivery_id)
        assert row is not None and row.status == WebhookDeliveryStatus.DELIVERED, row.last_error
