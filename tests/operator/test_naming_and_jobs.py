"""Deterministic names, the pure Job builder and the pure MediaAsset status, validated against the
official Kubernetes schemas and the CRD."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from mediaingest.models.enums import AssetProcessingStatus, IngestionJobStatus, JobPriority, Stage
from mediaingest.operator import naming
from mediaingest.operator.jobs import (
    PERMANENT_EXIT_CODE,
    StageAttempt,
    build_stage_job,
    deadline_seconds,
    memory_for,
    next_memory_scale,
    observe_job,
    parse_quantity,
)
from mediaingest.operator.model import KubeJobState
from mediaingest.operator.projection import AssetView, JobView, asset_status, merge_patch
from mediaingest.operator.settings import OperatorSettings, StageConfig
from mediaingest.pipeline.registry import stage_names

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
ASSET_ID = "0b5b4a3e-1111-2222-3333-444455556666"


def attempt_of(stage: Stage, **values: object) -> StageAttempt:
    fields: dict[str, object] = {
        "task_id": "5d1c-task", "asset_id": ASSET_ID, "owner_id": "auth0|tenant-7", "media_type": "VIDEO",
        "priority": JobPriority.NORMAL, "stage": stage, "attempt": 2,
    }  # fmt: skip
    return StageAttempt(**{**fields, **values})  # type: ignore[arg-type]


def test_asset_resource_name_is_deterministic_and_a_dns_label() -> None:
    assert naming.asset_resource_name(ASSET_ID) == f"asset-{ASSET_ID}"
    assert naming.asset_resource_name(ASSET_ID) == naming.asset_resource_name(ASSET_ID)
    for odd in ("ABC_def", "x" * 80, "--weird..id--"):
        name = naming.asset_resource_name(odd)
        assert DNS_LABEL.match(name) and len(name) <= 63, name
    assert naming.asset_resource_name("ABC_def") != naming.asset_resource_name("abc-def")


@pytest.mark.parametrize("stage", stage_names())
@pytest.mark.parametrize("attempt", [1, 9, 123])
def test_job_names_leave_room_for_their_pods_and_stay_distinct(stage: Stage, attempt: int) -> None:
    """At most 57 characters: a pod is `<job>-<5>`, from a prefix the API server cuts at 58, so a pod's name
    always holds its whole Job name — how the API ties a stage pod's token to its attempt."""
    for asset_name in (f"asset-{ASSET_ID}", "asset-" + "a" * 57):
        name = naming.job_name(asset_name, stage, attempt)
        assert len(name) <= 57 and DNS_LABEL.match(name), name
        assert name.endswith(f"-{naming.stage_slug(stage)}-{attempt}")
        assert name != naming.job_name(asset_name, stage, attempt + 1)
    long_a, long_b = "asset-" + "a" * 57, "asset-" + "a" * 56 + "b"
    assert naming.job_name(long_a, stage, attempt) != naming.job_name(long_b, stage, attempt)


@pytest.mark.parametrize("owner", ["user-1", "auth0|5f1c2b", "someone@example.com", "x" * 100, "|||"])
def test_label_values_are_valid_and_distinct(owner: str) -> None:
    value = naming.label_value(owner)
    assert len(value) <= 63 and LABEL_VALUE.match(value), value
    assert naming.label_value(owner + "!") != value


def test_stage_job_for_every_stage_is_a_valid_hardened_job(operator_settings: OperatorSettings, kube_validate) -> None:
    for stage in stage_names():
        attempt = attempt_of(stage)
        job = build_stage_job(attempt, namespace="media", settings=operator_settings)
        kube_validate(job)
        spec = job["spec"]
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        config = operator_settings.stages[stage]
        assert job["metadata"]["name"] == attempt.job_name
        assert spec["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
        assert spec["activeDeadlineSeconds"] == config.active_deadline_seconds  # no length known: the floor
        assert spec["ttlSecondsAfterFinished"] == operator_settings.ttl_seconds_after_finished
        assert container["command"] + container["args"] == [
            "mediaingest", "run-stage", "--asset", ASSET_ID, "--stage", stage, "--attempt", "2",
        ]  # fmt: skip
        assert container["image"] == "registry.example/mediaingest:1.2.3"
        assert container["resources"]["requests"]["cpu"] == config.requests["cpu"]
        assert {"name": "WORK_DIR", "value": "/scratch"} in container["env"]
        # run-stage writes a failure's reason where Kubernetes reads the termination message.
        path = container["terminationMessagePath"]
        assert {"name": "TERMINATION_MESSAGE_PATH", "value": path} in container["env"]
        # The release's settings and a projected token for the API alone; no Secret of any kind.
        assert container["envFrom"] == [{"configMapRef": {"name": "mediaingest"}}]
        assert {"name": "STAGE_API_URL", "value": operator_settings.stage_api_url} in container["env"]
        assert not any("secretKeyRef" in item.get("valueFrom", {}) for item in container["env"])
        [projected] = [volume["projected"] for volume in pod["volumes"] if "projected" in volume]
        [source] = projected["sources"]
        assert source["serviceAccountToken"]["audience"] == operator_settings.stage_token_audience
        assert pod["serviceAccountName"] == operator_settings.stage_service_account
        assert pod["automountServiceAccountToken"] is False  # no token for the Kubernetes API
        # ffmpeg sizes its threads and memory from the container's limits (the downward API).
        downward = {item["name"]: item["valueFrom"]["resourceFieldRef"]["resource"]
                    for item in container["env"] if "resourceFieldRef" in item.get("valueFrom", {})}  # fmt: skip
        assert downward == {"FFMPEG_THREADS": "limits.cpu", "CONTAINER_MEMORY_LIMIT_MB": "limits.memory"}
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] and security["runAsNonRoot"]
        assert security["capabilities"] == {"drop": ["ALL"]} and not security["allowPrivilegeEscalation"]
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        rules = spec["podFailurePolicy"]["rules"]
        assert rules[0]["action"] == "FailJob" and rules[0]["onExitCodes"]["values"] == [PERMANENT_EXIT_CODE]
        assert rules[1] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
        labels = job["metadata"]["labels"]
        assert labels[naming.LABEL_STAGE] == stage and labels[naming.LABEL_ATTEMPT] == "2"
        assert labels[naming.LABEL_TASK] == "5d1c-task" and labels[naming.LABEL_COMPONENT] == "stage-job"
        assert labels[naming.LABEL_TENANT] == naming.label_value("auth0|tenant-7")
        assert all(len(value) <= 63 and LABEL_VALUE.match(value) for value in labels.values())
        assert spec["template"]["metadata"]["labels"] == labels


def test_stage_job_options_and_per_stage_scheduling_from_settings(kube_validate) -> None:
    settings = OperatorSettings(
        stages={
            "proxies": {
                "requests": {"cpu": "8", "memory": "16Gi"},
                "activeDeadlineSeconds": 42,
                "runtimeClassName": "gvisor",
                "nodeSelector": {"pool": "spot"},
                "tolerations": [{"key": "spot", "operator": "Exists"}],
            }
        },
        image_pull_secrets=["regcred"],
        node_selector={"zone": "a"},
        tolerations=[{"key": "transcode", "operator": "Exists", "effect": "NoSchedule"}],
        priority_class_names={"URGENT": "media-urgent"},
        job_config_map_name="cfg",
        kueue_queue_name="media",
    )
    job = build_stage_job(attempt_of(Stage("proxies"), priority=JobPriority.URGENT), namespace="ns", settings=settings)
    kube_validate(job)
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["activeDeadlineSeconds"] == 42
    assert pod["containers"][0]["resources"]["requests"]["cpu"] == "8"
    # Keys not given keep the stage's defaults.
    assert pod["volumes"][0]["emptyDir"]["sizeLimit"] == "20Gi"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}] and pod["runtimeClassName"] == "gvisor"
    assert pod["nodeSelector"] == {"zone": "a", "pool": "spot"} and pod["priorityClassName"] == "media-urgent"
    assert [t["key"] for t in pod["tolerations"]] == ["transcode", "spot"]
    assert pod["containers"][0]["envFrom"] == [{"configMapRef": {"name": "cfg"}}]
    # Under Kueue: created suspended, with its queue; its pod's token is minted when it starts.
    assert job["spec"]["suspend"] is True and job["metadata"]["labels"][naming.LABEL_KUEUE_QUEUE] == "media"
    assert isinstance(settings.stages[Stage("probe")], StageConfig)
    thumbnails = build_stage_job(attempt_of(Stage("thumbnails")), namespace="ns", settings=settings)
    assert "runtimeClassName" not in thumbnails["spec"]["template"]["spec"]


def test_a_stage_named_in_stage_images_runs_in_its_own_image(monkeypatch: pytest.MonkeyPatch) -> None:
    # As the chart renders it: one JSON object in OPERATOR_STAGE_IMAGES.
    monkeypatch.setenv("OPERATOR_WORKER_IMAGE", "registry.example/mediaingest-stage:1")
    monkeypatch.setenv("OPERATOR_STAGE_IMAGES", '{"transcript": "registry.example/mediaingest-speech:1"}')
    settings = OperatorSettings()
    images = {
        stage: build_stage_job(attempt_of(Stage(stage)), namespace="ns", settings=settings)["spec"]["template"]["spec"][
            "containers"
        ][0]["image"]
        for stage in stage_names()
    }
    assert images.pop("transcript") == "registry.example/mediaingest-speech:1"
    assert set(images.values()) == {"registry.example/mediaingest-stage:1"}


def test_stage_images_naming_no_registered_stage_are_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="transcripts"):
        OperatorSettings(stage_images={"transcripts": "registry.example/mediaingest-speech:1"})


@pytest.mark.parametrize(
    ("quantity", "value"),
    [("2Gi", 2 * 2**30), ("768Mi", 768 * 2**20), ("1.5Ki", 1536), ("500m", "0.5"), ("2", 2), (2, 2),
     ("1.5G", 1_500_000_000), ("100k", 100_000), ("1e3", 1000), ("5E-1", "0.5"), ("3E", 3 * 10**18), ("1n", "1e-9")],
)  # fmt: skip
def test_quantities_read_as_kubernetes_reads_them(quantity: str | int, value: int | str) -> None:
    assert parse_quantity(quantity) == Decimal(value)


@pytest.mark.parametrize("text", ["", "Mi", "2Gx", "2 Gi", "two", "1.2.3"])
def test_a_string_that_is_no_quantity_is_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError, match="is not a Kubernetes quantity"):
        parse_quantity(text)


def test_the_deadline_grows_with_the_media_and_memory_doubles_after_an_oom_kill_up_to_the_cap() -> None:
    settings = OperatorSettings()
    proxies = settings.stages[Stage("proxies")]
    assert deadline_seconds(proxies, None) == 900
    assert deadline_seconds(proxies, 3600) == 900 + 3 * 3600  # three times real time
    assert memory_for(proxies, 1) == ("2048Mi", "4096Mi")
    assert memory_for(proxies, 2) == ("4096Mi", "8192Mi")
    assert memory_for(proxies, 8) == ("16384Mi", "16384Mi")  # the cap, 16Gi
    assert next_memory_scale(proxies, 1) == 2 and next_memory_scale(proxies, 4) is None
    job = build_stage_job(attempt_of(Stage("proxies"), memory_scale=2, duration_seconds=60.0), namespace="n",
                          settings=settings)  # fmt: skip
    resources = job["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert (resources["requests"]["memory"], resources["limits"]["memory"]) == ("4096Mi", "8192Mi")
    assert job["spec"]["activeDeadlineSeconds"] == 900 + 180


def _job(conditions=None, **status):
    labels = {naming.LABEL_STAGE: "probe", naming.LABEL_ATTEMPT: "1", naming.LABEL_TASK: "t1"}
    return {"metadata": {"name": "asset-a-probe-1", "labels": labels},
            "status": {**status, **({"conditions": conditions} if conditions else {})}}  # fmt: skip


def test_observe_job_reads_state_from_conditions() -> None:
    running = observe_job(_job(active=1, startTime="2030-01-01T00:00:00Z"))
    assert running is not None and running.state == KubeJobState.ACTIVE and running.task_id == "t1"
    done = observe_job(_job([{"type": "Complete", "status": "True"}], succeeded=1))
    assert done is not None and done.state == KubeJobState.SUCCEEDED
    failed = observe_job(_job([{"type": "Failed", "status": "True", "reason": "PodFailurePolicy",
                                "message": "exit code 3"}], failed=1))  # fmt: skip
    assert failed is not None and failed.state == KubeJobState.FAILED
    assert (failed.reason, failed.message) == ("PodFailurePolicy", "exit code 3")
    # A FailureTarget condition alone (pods still terminating) is not the end yet.
    terminating = observe_job(_job([{"type": "FailureTarget", "status": "True"}], active=1))
    assert terminating is not None and terminating.state == KubeJobState.ACTIVE
    suspended = observe_job({**_job(), "spec": {"suspend": True}})
    assert suspended is not None and suspended.suspended
    assert observe_job({"metadata": {"name": "foreign", "labels": {}}}) is None


T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _view(status: AssetProcessingStatus, *jobs: JobView, error: str | None = None) -> AssetView:
    processed = T0 + timedelta(seconds=42) if status == AssetProcessingStatus.READY else None
    return AssetView("a1", status, error, T0, processed, jobs)


def _jobview(stage: str, status: IngestionJobStatus, progress: float = 0.0, **values: object) -> JobView:
    fields: dict[str, object] = {"attempts": 1, "message": None, "error": None, "started_at": T0, "finished_at": None}
    return JobView(stage, status, progress=progress, **{**fields, **values})  # type: ignore[arg-type]


def test_the_media_asset_status_is_what_the_rows_say(validate_status) -> None:
    running = asset_status(_view(
        AssetProcessingStatus.PROCESSING,
        _jobview("probe", IngestionJobStatus.COMPLETED, 100, finished_at=T0),
        _jobview("proxies", IngestionJobStatus.RUNNING, 50, message="Making web proxies"),
        _jobview("thumbnails", IngestionJobStatus.RETRYING, 0, error="the stage pod was killed for memory"),
    ))  # fmt: skip
    validate_status(running)
    assert (running["phase"], running["stage"], running["progress"]) == ("Running", "proxies,thumbnails", 50)
    assert running["stages"]["thumbnails"] == {"phase": "Retrying", "attempts": 1, "startedAt": "2030-01-01T00:00:00Z",
                                               "message": "the stage pod was killed for memory"}  # fmt: skip
    assert running["conditions"][0]["status"] == "Unknown" and "tookSeconds" not in running
    ready = asset_status(_view(AssetProcessingStatus.READY, _jobview("probe", IngestionJobStatus.COMPLETED, 100)))
    validate_status(ready)
    assert (ready["phase"], ready["progress"], ready["tookSeconds"]) == ("Ready", 100, 42)
    assert ready["conditions"][0]["status"] == "True"
    failed = asset_status(_view(
        AssetProcessingStatus.FAILED,
        _jobview("probe", IngestionJobStatus.FAILED, 0, error="unreadable", finished_at=T0 + timedelta(seconds=3)),
        error="probe stage failed: unreadable",
    ))  # fmt: skip
    validate_status(failed)
    assert (failed["phase"], failed["stage"], failed["message"]) == (
        "Failed",
        "probe",
        "probe stage failed: unreadable",
    )
    # The same rows, the same status: a projection writes nothing when nothing changed.
    assert merge_patch(ready, asset_status(_view(AssetProcessingStatus.READY, _jobview(
        "probe", IngestionJobStatus.COMPLETED, 100)))) == {}  # fmt: skip
