"""A stage added as one module plus one registry entry runs like the built-in ones.

The module (`fixtures/midpoint_still.py`) registers its StageSpec when imported, and the STAGE_MODULES
setting names it: nothing else in the code base mentions it. It then runs through the local worker's
stage processes (which import it themselves), the operator's plan and its Jobs, and a stage pod; what it
declares (a measurement and a kind of output) reaches the database, the API, the OpenAPI document and the
page without a migration or a line of JavaScript.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import SettingsFactory, Users
from fixtures.kube import ThreadedApiServer
from fixtures.live_server import LiveServerFactory, wait_until
from fixtures.page import bearer_token, sign_in
from fixtures.stage_pods import pod_token, run_pod, start_attempts
from fixtures.uploads import upload
from mediaingest.catalog import embedded_worker
from mediaingest.config import Settings
from mediaingest.db import create_db_engine, create_session_factory, session_scope
from mediaingest.models import AssetMetadata
from mediaingest.models.enums import MediaType
from mediaingest.operator import naming
from mediaingest.operator.jobs import build_stage_job
from mediaingest.operator.settings import OperatorSettings
from mediaingest.pipeline import registry
from mediaingest.pipeline.plan import stages_for
from mediaingest.pipeline.registry import StageRole, StageSpec, load_stage_modules, spec_for, stage_with_role

pytestmark = pytest.mark.slow

TESTS_DIR = Path(__file__).resolve().parents[1]
MODULE = "fixtures.midpoint_still"  # imported only through the registry: importing it registers the stage


@pytest.fixture
def added_stage(monkeypatch: pytest.MonkeyPatch) -> Iterator[StageSpec]:
    """The stage registered in this process for one test (other processes import MODULE themselves)."""
    monkeypatch.setattr(registry, "_registered", dict(registry._registered))
    sys.modules.pop(MODULE, None)
    load_stage_modules([MODULE])
    yield spec_for("midpoint_still")
    sys.modules.pop(MODULE, None)


@pytest.fixture
def ingest_settings(make_settings: SettingsFactory, added_stage: StageSpec) -> Settings:
    return make_settings(
        worker_lease_seconds=5, worker_heartbeat_seconds=1, proxy_heights=[240], stage_modules=[MODULE]
    )


def _ready(api: TestClient, headers: dict[str, str], asset_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api.get(f"/api/assets/{asset_id}/status", headers=headers).json()["data"]
        assert status["processingStatus"] != "FAILED", status
        if status["processingStatus"] == "READY":
            return dict(status)
        time.sleep(0.1)
    raise AssertionError(f"{asset_id} not READY within {timeout} s")


def test_an_added_stage_runs_through_the_local_worker(
    api: TestClient, ingest_settings: Settings, users: Users, small_video: Path, added_stage: StageSpec
) -> None:
    assert stages_for(MediaType.VIDEO)[-1] == "midpoint_still" and "midpoint_still" not in stages_for(MediaType.AUDIO)
    _, headers = users.create()
    asset_id = upload(api, headers, small_video, mime_type="video/mp4")["assetId"]
    with embedded_worker(ingest_settings):
        status = _ready(api, headers, asset_id)

    jobs = {job["type"]: job for job in status["jobs"]}
    assert len(jobs) == 6 and all(job["status"] == "COMPLETED" for job in jobs.values()), jobs
    added = jobs["MIDPOINT_STILL"]
    assert (added["label"], added["progress"], added["message"]) == (
        "Taking the middle frame",
        100,
        "the frame at 1.0 s",
    )
    detail = api.get(f"/api/assets/{asset_id}", headers=headers).json()["data"]
    [still] = [proxy for proxy in detail["proxies"] if proxy["type"] == "MIDDLE_FRAME"]
    assert (still["width"], still["height"], still["details"]["positionSeconds"]) == (320, 240, 1.0)
    assert (still["label"], still["shownAs"]) == ("Middle frame", "image")
    fetched = api.get(still["url"])
    assert fetched.status_code == 200 and fetched.content[:3] == b"\xff\xd8\xff"
    assert len(fetched.content) == still["sizeBytes"]

    # Its measurement: stored as JSON under the stage's name (no column, no migration), returned by the API.
    engine = create_db_engine(ingest_settings.resolved_database_url)
    with session_scope(create_session_factory(engine)) as session:
        record = session.get(AssetMetadata, asset_id)
        assert record is not None and record.measurements is not None
        stored = record.measurements["midpoint_still"]
    engine.dispose()
    assert stored["position_seconds"] == 1.0 and 0.05 < stored["mean_luma"] < 0.95, stored
    measured = detail["metadata"]["measurements"]["midpoint_still"]
    assert measured == {"positionSeconds": 1.0, "meanLuma": stored["mean_luma"]}

    # The OpenAPI document follows the registered specs: the job type, the output kind and the measurement.
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["IngestionJobType"]["enum"][-1] == "MIDPOINT_STILL"
    assert schemas["ProxyType"]["enum"][-1] == "MIDDLE_FRAME"
    documented = schemas["MetadataOut"]["properties"]["measurements"]["properties"]["midpoint_still"]
    assert set(documented["properties"]) == {"positionSeconds", "meanLuma"}
    assert documented["properties"]["meanLuma"]["maximum"] == 1


def test_the_page_shows_the_added_stages_output_as_it_declares(
    added_stage: StageSpec, live_server_factory: LiveServerFactory, page: Any, small_video: Path
) -> None:
    """The asset view shows the new kind as its stage declares it (an image, labelled) and the new measurement
    among the facts: no JavaScript names either."""
    server = live_server_factory(stage_modules=[MODULE], proxy_heights=[240])
    _, headers = server.create_user()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        asset_id = upload(client, headers, small_video, mime_type="video/mp4")["assetId"]

        def ready() -> bool:
            status = client.get(f"/api/assets/{asset_id}/status", headers=headers).json()["data"]
            assert status["processingStatus"] != "FAILED", status
            return bool(status["processingStatus"] == "READY")

        wait_until(ready, timeout=120, interval=0.2)
    sign_in(page, server, bearer_token(headers))
    page.goto(f"{server.url}/assets/{asset_id}")
    viewer = page.locator("#viewer")
    figure = viewer.locator("figure", has=page.locator("figcaption", has_text="Middle frame"))
    figure.wait_for()
    image = figure.get_by_role("img", name=f"Middle frame of {small_video.name}")
    wait_until(lambda: image.evaluate("img => img.complete && img.naturalWidth") == 320, timeout=10)
    facts = viewer.locator("dl.facts").first
    named = facts.locator("dt").all_inner_texts()
    assert "Mean luma" in named and "Position seconds" in named, named
    assert facts.locator("dt:text-is('Position seconds') + dd").inner_text() == "1"


def test_under_kubernetes_the_added_stage_is_planned_sized_and_run_by_a_pod(
    added_stage: StageSpec,
    live_server_factory: LiveServerFactory,
    threaded_apiserver: ThreadedApiServer,
    small_video: Path,
    tmp_path: Path,
) -> None:
    """The one plan: the probe pod's report enqueues the added stage beside the built-in ones; the operator
    sizes its Job from its StageSpec; its pod runs it by name, reporting to an API that loaded it too."""
    server = live_server_factory(worker=False, executor="kubernetes", stage_modules=[MODULE])
    _, headers = server.create_user()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        asset_id = str(upload(client, headers, small_video, mime_type="video/mp4")["assetId"])
    pod_env = {"STAGE_MODULES": json.dumps([MODULE]), "PYTHONPATH": str(TESTS_DIR)}
    probe = start_attempts(server)[(asset_id, stage_with_role(StageRole.DESCRIBES_SOURCE))]
    finished = run_pod(server, tmp_path, attempt=probe, token=pod_token(threaded_apiserver, server, probe),
                       extra_env=pod_env)  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-3000:]
    started = start_attempts(server)
    assert sorted(stage for (_, stage) in started) == sorted(stages_for(MediaType.VIDEO)[1:])
    attempt = started[(asset_id, added_stage.stage)]

    settings = OperatorSettings(_env_file=None)  # type: ignore[call-arg]
    job = build_stage_job(attempt, namespace="media", settings=settings)
    assert job["metadata"]["name"] == naming.job_name(naming.asset_resource_name(asset_id), added_stage.stage, 1)
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["args"][-4:] == ["--stage", "midpoint_still", "--attempt", "1"]
    assert container["resources"]["requests"]["cpu"] == "100m" and job["spec"]["activeDeadlineSeconds"] == 600

    finished = run_pod(server, tmp_path, attempt=attempt, token=pod_token(threaded_apiserver, server, attempt),
                       extra_env=pod_env)  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-3000:]
    status = httpx.get(f"{server.url}/api/assets/{asset_id}/status", headers=headers, timeout=10).json()["data"]
    recorded = {job["type"]: job["status"] for job in status["jobs"]}
    assert recorded["METADATA_EXTRACTION"] == recorded["MIDPOINT_STILL"] == "COMPLETED", recorded
    detail = httpx.get(f"{server.url}/api/assets/{asset_id}", headers=headers, timeout=10).json()["data"]
    [still] = [proxy for proxy in detail["proxies"] if proxy["type"] == "MIDDLE_FRAME"]
    assert httpx.get(still["url"], timeout=10).content[:3] == b"\xff\xd8\xff"
    # The pod's report carried the measurement; the API checked it against the spec's model and stored it.
    assert detail["metadata"]["measurements"]["midpoint_still"]["positionSeconds"] == 1.0
