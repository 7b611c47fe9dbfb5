"""With INTERNAL_PORT and METRICS_PORT (as the chart sets them), the stage pods' reports and the metrics
leave the public port: a NetworkPolicy can then admit only stage pods to the one and Prometheus to the
other. `mediaingest serve` runs both servers; a SIGTERM stops both."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from conftest import SettingsFactory
from mediaingest.api import create_app

MEDIAINGEST = str(Path(sys.executable).parent / "mediaingest")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_stage_reports_and_metrics_leave_the_public_port(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings(internal_port=8001, metrics_port=9100), configure_logs=False)
    with TestClient(app) as public, TestClient(app.state.internal_app) as internal:
        assert public.post("/internal/stage-run/start").status_code == 404
        assert public.get("/metrics").status_code == 404
        refused = internal.post("/internal/stage-run/start")
        assert refused.status_code == 401 and refused.json()["error"]["message"] == "a stage token is required"
        assert internal.get("/healthz").json() == {"status": "ok"}
        assert internal.get("/api/assets").status_code == 404  # nothing of the public API there
    # One machine: everything on PORT, as before.
    with TestClient(create_app(make_settings(), configure_logs=False)) as single:
        assert single.post("/internal/stage-run/start").status_code == 401
        assert single.get("/metrics").status_code == 200


def test_serve_runs_the_three_ports_and_a_sigterm_stops_them(tmp_path: Path) -> None:
    port, internal, metrics = _free_port(), _free_port(), _free_port()
    env = {**os.environ, "PORT": str(port), "INTERNAL_PORT": str(internal), "METRICS_PORT": str(metrics),
           "DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}  # fmt: skip
    subprocess.run([MEDIAINGEST, "db", "upgrade"], env=env, check=True, capture_output=True)
    server = subprocess.Popen([MEDIAINGEST, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        probes = ((port, "/healthz"), (internal, "/healthz"), (metrics, "/metrics"))
        while True:
            try:
                answers = [httpx.get(f"http://127.0.0.1:{p}{path}", timeout=2).status_code for p, path in probes]
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "mediaingest serve did not start"
                time.sleep(0.2)
        assert answers == [200, 200, 200]
        assert httpx.post(f"http://127.0.0.1:{port}/internal/stage-run/start", timeout=2).status_code == 404
        server.send_signal(signal.SIGTERM)
        assert server.wait(20) == 0
    finally:
        if server.poll() is None:
            server.kill()
